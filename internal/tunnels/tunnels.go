// Package tunnels manages the relay's tunnel definitions (tunnels.json): who
// owns each tunnel, which relay port it holds, how it is exposed through
// nginx, and what each agent may bind on the tunnel server.
//
// It is the logic behind the panel's /api/tunnels routes (contract §7). Every
// change runs its side effects in a fixed order (certificate, vhost, access
// rules, state, tunnel ACL) and undoes the earlier steps when a later one
// fails, so a failed request leaves nothing half-applied. Changes are
// serialised by one lock. The transport itself (chisel) lives in
// internal/tunnel; this package only writes what it reads.
package tunnels

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/portlama/portlama/internal/store"
	"github.com/portlama/portlama/internal/validate"
)

// Tunnel types and access modes (contract §7.1).
const (
	TypeApp   = "app"
	TypePanel = "panel"

	AccessAuthenticated = "authenticated"
	AccessRestricted    = "restricted"
	AccessPublic        = "public"
)

// Tunnel is one entry of tunnels.json (contract §7.1).
type Tunnel struct {
	ID            string    `json:"id"`
	Subdomain     string    `json:"subdomain"`
	FQDN          string    `json:"fqdn"`
	AgentLabel    string    `json:"agentLabel"`
	Port          int       `json:"port"`
	TargetHost    string    `json:"targetHost"`
	RelayPort     int       `json:"relayPort"`
	Description   *string   `json:"description"`
	Type          string    `json:"type"`
	AccessMode    string    `json:"accessMode,omitempty"`
	AllowedUsers  *[]string `json:"allowedUsers,omitempty"`
	AllowedGroups *[]string `json:"allowedGroups,omitempty"`
	Enabled       *bool     `json:"enabled,omitempty"`
	CreatedAt     string    `json:"createdAt"`
}

// IsEnabled reports whether the tunnel is enabled; a missing value counts as
// enabled (contract §7.1).
func (t Tunnel) IsEnabled() bool { return t.Enabled == nil || *t.Enabled }

// VhostName is the nginx vhost file name of the tunnel.
func (t Tunnel) VhostName() string {
	if t.Type == TypePanel {
		return "portlama-agent-panel-" + t.Subdomain
	}
	return "portlama-app-" + t.Subdomain
}

// Caller is who asks for a change: an admin, or an agent with capabilities.
type Caller struct {
	Admin        bool
	Label        string // agent label; empty for admins
	Capabilities []string
}

func (c Caller) has(cap string) bool { return c.Admin || slices.Contains(c.Capabilities, cap) }

// Kind classifies an Error so the HTTP layer can pick the status.
type Kind int

const (
	Invalid   Kind = iota + 1 // 400
	Forbidden                 // 403
	NotFound                  // 404
	Conflict                  // 409
	Failed                    // 500 with details
)

// Error is a refusal or failure with the contract's message.
type Error struct {
	Kind    Kind
	Message string
	Details string // for Failed: "<step>: <message>"
}

func (e *Error) Error() string {
	if e.Details != "" {
		return e.Message + ": " + e.Details
	}
	return e.Message
}

func errorf(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// Vhosts writes and toggles the nginx vhost of a tunnel, using nginx's safe
// write / test / reload / rollback procedure. WriteTunnel links the vhost
// into sites-enabled only when the tunnel is enabled.
type Vhosts interface {
	WriteTunnel(ctx context.Context, t Tunnel, cert CertPaths) error
	RemoveTunnel(ctx context.Context, t Tunnel) error
	SetTunnelEnabled(ctx context.Context, t Tunnel, enabled bool) error
}

// CertPaths locate the TLS certificate and key for a vhost.
type CertPaths struct {
	Name     string // certificate name in the store (<certs>/<name>/)
	Cert     string
	Key      string
	Wildcard bool
}

// Certificates finds (or obtains) the TLS certificate for an fqdn (contract
// §11.1) and deletes individual ones when their tunnel goes away.
type Certificates interface {
	ForHost(ctx context.Context, fqdn string) (CertPaths, error)
	// DeleteIndividual removes the fqdn's own certificate, if any; wildcard
	// certificates are never deleted.
	DeleteIndividual(ctx context.Context, fqdn string) error
}

// ACL sets the relay ports an agent may bind on the tunnel server.
type ACL interface {
	SetPorts(ctx context.Context, label string, ports []int) error
}

// AccessRules receives every tunnel whenever the restricted tunnels' rules
// or the set of tunnel hosts change (create, delete, access changes).
type AccessRules interface {
	SyncTunnels(ctx context.Context, tunnels []Tunnel) error
}

// AgentDirectory answers which agents exist.
type AgentDirectory interface {
	// ActiveLabels lists the labels of non-revoked agents.
	ActiveLabels() ([]string, error)
}

// Settings are the relay values tunnels depend on.
type Settings struct {
	Domain       string // base domain; empty before onboarding
	Email        string
	RelayPortMin int
	RelayPortMax int
}

// Config configures a Service.
type Config struct {
	File     string // tunnels.json
	Settings func() (Settings, error)
	Agents   AgentDirectory
	Vhosts   Vhosts
	Certs    Certificates
	ACL      ACL
	Rules    AccessRules // may be nil until the auth server is configured
	Now      func() time.Time
	// PortFree reports whether nothing listens on 127.0.0.1:port; nil uses a
	// real listen probe.
	PortFree func(port int) bool
}

// Service manages tunnels.json and its side effects.
type Service struct {
	cfg Config
	doc *store.Doc[[]Tunnel]
	mu  sync.Mutex
}

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PortFree == nil {
		cfg.PortFree = portFree
	}
	return &Service{cfg: cfg, doc: store.NewDoc[[]Tunnel](cfg.File, 0o600)}
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// All returns every tunnel in createdAt order.
func (s *Service) All() ([]Tunnel, error) {
	ts, err := s.doc.Load()
	if err != nil {
		return nil, err
	}
	sort.SliceStable(ts, func(i, j int) bool { return ts[i].CreatedAt < ts[j].CreatedAt })
	return ts, nil
}

// List returns the tunnels the caller may see, newest first.
func (s *Service) List(c Caller) ([]Tunnel, error) {
	all, err := s.All()
	if err != nil {
		return nil, err
	}
	out := []Tunnel{}
	for i := len(all) - 1; i >= 0; i-- {
		if c.Admin || all[i].AgentLabel == c.Label {
			out = append(out, all[i])
		}
	}
	return out, nil
}

// EnabledFor returns the agent's enabled tunnels in createdAt order.
func (s *Service) EnabledFor(label string) ([]Tunnel, error) {
	all, err := s.All()
	if err != nil {
		return nil, err
	}
	var out []Tunnel
	for _, t := range all {
		if t.AgentLabel == label && t.IsEnabled() {
			out = append(out, t)
		}
	}
	return out, nil
}

// PortsFor returns the relay ports of the agent's enabled tunnels.
func PortsFor(all []Tunnel, label string) []int {
	ports := []int{}
	for _, t := range all {
		if t.AgentLabel == label && t.IsEnabled() {
			ports = append(ports, t.RelayPort)
		}
	}
	sort.Ints(ports)
	return ports
}

// CreateRequest is a validated POST /api/tunnels body (schema checks are the
// HTTP layer's; defaults not yet applied are empty).
type CreateRequest struct {
	Subdomain     string
	Port          int
	TargetHost    string
	Description   string
	Type          string
	AgentLabel    string
	AccessMode    string
	AllowedUsers  []string
	AllowedGroups []string
}

// Create adds a tunnel after the contract's checks (§7.3), in order, and
// applies its side effects, undoing them all if one fails.
func (s *Service) Create(ctx context.Context, c Caller, r CreateRequest) (Tunnel, error) {
	s.mu.Lock()
	defer s.mu.Unlock()

	if r.Type == "" {
		r.Type = TypeApp
	}
	if r.TargetHost == "" {
		r.TargetHost = "127.0.0.1"
	}
	if r.AccessMode == "" {
		r.AccessMode = AccessAuthenticated
	}
	if validate.IsReservedSubdomain(r.Subdomain) {
		return Tunnel{}, errorf(Invalid, "Subdomain '%s' is reserved", r.Subdomain)
	}
	if validate.HasAgentPanelPrefix(r.Subdomain) && r.Type != TypePanel {
		return Tunnel{}, errorf(Invalid, "Subdomain prefix 'agent-' is reserved for agent panel tunnels")
	}
	if r.Type == TypeApp && r.AccessMode == AccessPublic && !c.Admin {
		return Tunnel{}, errorf(Forbidden, "Only administrators can set tunnel access mode to public")
	}
	if r.Type == TypePanel && !c.Admin {
		if !c.has("panel:expose") {
			return Tunnel{}, errorf(Forbidden, "Cannot create panel tunnel without panel:expose capability")
		}
		if r.Subdomain != "agent-"+c.Label {
			return Tunnel{}, errorf(Forbidden, "Agents can only create panel tunnels for their own label")
		}
	}

	owner, err := s.owner(c, r.AgentLabel)
	if err != nil {
		return Tunnel{}, err
	}
	if c.Admin && r.Type == TypePanel && r.Subdomain != "agent-"+owner {
		return Tunnel{}, errorf(Invalid, "Panel tunnel subdomain must be 'agent-%s'", owner)
	}

	all, err := s.All()
	if err != nil {
		return Tunnel{}, &Error{Kind: Failed, Message: "Failed to create tunnel", Details: "state: " + err.Error()}
	}
	set, err := s.cfg.Settings()
	if err != nil {
		return Tunnel{}, &Error{Kind: Failed, Message: "Failed to create tunnel", Details: "state: " + err.Error()}
	}
	fqdn := r.Subdomain + "." + set.Domain
	for _, t := range all {
		if t.Subdomain == r.Subdomain || (set.Domain != "" && t.FQDN == fqdn) {
			return Tunnel{}, errorf(Invalid, "Subdomain '%s' is already in use", r.Subdomain)
		}
	}
	for _, t := range all {
		if t.AgentLabel == owner && t.Port == r.Port {
			return Tunnel{}, errorf(Invalid, "Port %d is already in use by another tunnel", r.Port)
		}
	}
	if set.Domain == "" || set.Email == "" {
		return Tunnel{}, errorf(Invalid, "Domain and email must be configured before creating tunnels")
	}
	relayPort, ok := s.allocatePort(all, set)
	if !ok {
		return Tunnel{}, errorf(Conflict, "No free relay port in the configured range")
	}

	enabled := true
	t := Tunnel{
		ID:         uuid.NewString(),
		Subdomain:  r.Subdomain,
		FQDN:       fqdn,
		AgentLabel: owner,
		Port:       r.Port,
		TargetHost: r.TargetHost,
		RelayPort:  relayPort,
		Type:       r.Type,
		Enabled:    &enabled,
		CreatedAt:  s.cfg.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
	}
	if r.Description != "" {
		d := r.Description
		t.Description = &d
	}
	if r.Type == TypeApp {
		t.AccessMode = r.AccessMode
		users, groups := nonNil(r.AllowedUsers), nonNil(r.AllowedGroups)
		t.AllowedUsers, t.AllowedGroups = &users, &groups
	}

	fail := func(step string, err error) (Tunnel, error) {
		return Tunnel{}, &Error{Kind: Failed, Message: "Failed to create tunnel", Details: step + ": " + err.Error()}
	}

	// 1. certificate
	cert, err := s.cfg.Certs.ForHost(ctx, fqdn)
	if err != nil {
		return fail("certificate", err)
	}
	// 2. vhost
	if err := s.cfg.Vhosts.WriteTunnel(ctx, t, cert); err != nil {
		s.dropCert(ctx, cert)
		return fail("nginx", err)
	}
	undoVhost := func() {
		s.cfg.Vhosts.RemoveTunnel(context.WithoutCancel(ctx), t)
		s.dropCert(ctx, cert)
	}
	// 3. access rules (they list every tunnel's host) and state
	next := append(slices.Clone(all), t)
	if err := s.syncRules(ctx, next); err != nil {
		undoVhost()
		return fail("state", err)
	}
	if _, err := s.doc.Update(func(ts *[]Tunnel) error { *ts = append(*ts, t); return nil }); err != nil {
		s.syncRules(context.WithoutCancel(ctx), all)
		undoVhost()
		return fail("state", err)
	}
	// 4. tunnel ACL
	if err := s.cfg.ACL.SetPorts(ctx, owner, PortsFor(next, owner)); err != nil {
		s.doc.Update(func(ts *[]Tunnel) error {
			*ts = slices.DeleteFunc(*ts, func(x Tunnel) bool { return x.ID == t.ID })
			return nil
		})
		s.syncRules(context.WithoutCancel(ctx), all)
		undoVhost()
		return fail("tunnel-acl", err)
	}
	return t, nil
}

// dropCert deletes an individual certificate obtained for a tunnel that did
// not come to be (or is gone); shared wildcard certificates stay.
func (s *Service) dropCert(ctx context.Context, c CertPaths) {
	if !c.Wildcard {
		s.cfg.Certs.DeleteIndividual(context.WithoutCancel(ctx), c.Name)
	}
}

func (s *Service) syncRules(ctx context.Context, ts []Tunnel) error {
	if s.cfg.Rules == nil {
		return nil
	}
	return s.cfg.Rules.SyncTunnels(ctx, ts)
}

func nonNil(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}

// owner decides who owns a new tunnel (contract §7.3 check 5).
func (s *Service) owner(c Caller, requested string) (string, error) {
	if !c.Admin {
		if requested != "" && requested != c.Label {
			return "", errorf(Forbidden, "Agents can only create tunnels for their own label")
		}
		return c.Label, nil
	}
	active, err := s.cfg.Agents.ActiveLabels()
	if err != nil {
		return "", &Error{Kind: Failed, Message: "Failed to create tunnel", Details: "state: " + err.Error()}
	}
	if requested != "" {
		if !slices.Contains(active, requested) {
			return "", errorf(Invalid, "Unknown agent '%s'", requested)
		}
		return requested, nil
	}
	if len(active) != 1 {
		return "", errorf(Invalid, "agentLabel is required unless exactly one active agent exists")
	}
	return active[0], nil
}

// allocatePort picks the lowest port in the range that no tunnel holds and
// nothing listens on.
func (s *Service) allocatePort(all []Tunnel, set Settings) (int, bool) {
	held := map[int]bool{}
	for _, t := range all {
		held[t.RelayPort] = true
	}
	for p := set.RelayPortMin; p <= set.RelayPortMax && p > 0; p++ {
		if !held[p] && s.cfg.PortFree(p) {
			return p, true
		}
	}
	return 0, false
}

// find returns the tunnel with id if the caller may see it.
func find(all []Tunnel, c Caller, id string) (Tunnel, bool) {
	for _, t := range all {
		if t.ID == id && (c.Admin || t.AgentLabel == c.Label) {
			return t, true
		}
	}
	return Tunnel{}, false
}

// Patch is a validated PATCH /api/tunnels/:id body; nil fields are absent.
type Patch struct {
	Enabled       *bool
	AccessMode    *string
	AllowedUsers  *[]string
	AllowedGroups *[]string
}

// Update applies a PATCH (contract §7.4). Only what changed is touched; state
// is saved last.
func (s *Service) Update(ctx context.Context, c Caller, id string, p Patch) (Tunnel, error) {
	s.mu.Lock()
	defer s.mu.Unlock()

	failMsg := "Failed to update tunnel"
	if p.Enabled != nil {
		failMsg = "Failed to toggle tunnel"
	}
	all, err := s.All()
	if err != nil {
		return Tunnel{}, &Error{Kind: Failed, Message: failMsg, Details: err.Error()}
	}
	old, ok := find(all, c, id)
	if !ok {
		return Tunnel{}, errorf(NotFound, "Tunnel not found")
	}
	if old.Type == TypePanel && !c.has("panel:expose") {
		return Tunnel{}, errorf(Forbidden, "Cannot toggle panel tunnel without panel:expose capability")
	}
	if old.Type == TypePanel && (p.AccessMode != nil || p.AllowedUsers != nil || p.AllowedGroups != nil) {
		return Tunnel{}, errorf(Invalid, "Panel tunnels have no access mode")
	}
	if p.AccessMode != nil && *p.AccessMode == AccessPublic && !c.Admin {
		return Tunnel{}, errorf(Forbidden, "Only administrators can set tunnel access mode to public")
	}

	t := old
	if p.Enabled != nil {
		v := *p.Enabled
		t.Enabled = &v
	}
	if p.AccessMode != nil {
		t.AccessMode = *p.AccessMode
	}
	if p.AllowedUsers != nil {
		v := nonNil(*p.AllowedUsers)
		t.AllowedUsers = &v
	}
	if p.AllowedGroups != nil {
		v := nonNil(*p.AllowedGroups)
		t.AllowedGroups = &v
	}

	enabledChanged := t.IsEnabled() != old.IsEnabled()
	wasProtected, isProtected := old.AccessMode != AccessPublic, t.AccessMode != AccessPublic
	vhostChanged := old.Type == TypeApp && wasProtected != isProtected
	rulesChanged := old.AccessMode != t.AccessMode && (old.AccessMode == AccessRestricted || t.AccessMode == AccessRestricted) ||
		!slices.Equal(deref(old.AllowedUsers), deref(t.AllowedUsers)) ||
		!slices.Equal(deref(old.AllowedGroups), deref(t.AllowedGroups))
	if !enabledChanged && !vhostChanged && !rulesChanged {
		return old, nil
	}

	fail := func(err error) (Tunnel, error) {
		return Tunnel{}, &Error{Kind: Failed, Message: failMsg, Details: err.Error()}
	}
	next := replace(all, t)
	var undo []func()
	rollback := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	bg := context.WithoutCancel(ctx)

	if vhostChanged {
		cert, err := s.cfg.Certs.ForHost(ctx, t.FQDN)
		if err != nil {
			return fail(fmt.Errorf("certificate: %w", err))
		}
		if err := s.cfg.Vhosts.WriteTunnel(ctx, t, cert); err != nil {
			return fail(fmt.Errorf("nginx: %w", err))
		}
		undo = append(undo, func() { s.cfg.Vhosts.WriteTunnel(bg, old, cert) })
	}
	if enabledChanged {
		if err := s.cfg.Vhosts.SetTunnelEnabled(ctx, t, t.IsEnabled()); err != nil {
			rollback()
			return fail(fmt.Errorf("nginx: %w", err))
		}
		undo = append(undo, func() { s.cfg.Vhosts.SetTunnelEnabled(bg, old, old.IsEnabled()) })
		if err := s.cfg.ACL.SetPorts(ctx, t.AgentLabel, PortsFor(next, t.AgentLabel)); err != nil {
			rollback()
			return fail(fmt.Errorf("tunnel-acl: %w", err))
		}
		undo = append(undo, func() { s.cfg.ACL.SetPorts(bg, t.AgentLabel, PortsFor(all, t.AgentLabel)) })
	}
	if rulesChanged {
		if err := s.syncRules(ctx, next); err != nil {
			rollback()
			return fail(fmt.Errorf("access rules: %w", err))
		}
		undo = append(undo, func() { s.syncRules(bg, all) })
	}
	if _, err := s.doc.Update(func(ts *[]Tunnel) error { *ts = replace(*ts, t); return nil }); err != nil {
		rollback()
		return fail(fmt.Errorf("state: %w", err))
	}
	return t, nil
}

func deref(p *[]string) []string {
	if p == nil {
		return nil
	}
	return *p
}

func replace(all []Tunnel, t Tunnel) []Tunnel {
	out := slices.Clone(all)
	for i := range out {
		if out[i].ID == t.ID {
			out[i] = t
		}
	}
	return out
}

// Delete removes a tunnel (contract §7.5).
func (s *Service) Delete(ctx context.Context, c Caller, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()

	all, err := s.All()
	if err != nil {
		return &Error{Kind: Failed, Message: "Failed to delete tunnel", Details: err.Error()}
	}
	t, ok := find(all, c, id)
	if !ok {
		return errorf(NotFound, "Tunnel not found")
	}
	if t.Type == TypePanel && !c.has("panel:expose") {
		return errorf(Forbidden, "Cannot delete panel tunnel without panel:expose capability")
	}
	if err := s.cfg.Vhosts.RemoveTunnel(ctx, t); err != nil {
		return &Error{Kind: Failed, Message: "Failed to delete tunnel", Details: err.Error()}
	}
	next := slices.DeleteFunc(slices.Clone(all), func(x Tunnel) bool { return x.ID == t.ID })
	if err := s.syncRules(ctx, next); err != nil {
		return &Error{Kind: Failed, Message: "Failed to delete tunnel", Details: "access rules: " + err.Error()}
	}
	if _, err := s.doc.Update(func(ts *[]Tunnel) error {
		*ts = slices.DeleteFunc(*ts, func(x Tunnel) bool { return x.ID == t.ID })
		return nil
	}); err != nil {
		return &Error{Kind: Failed, Message: "Failed to delete tunnel", Details: "state: " + err.Error()}
	}
	if err := s.cfg.ACL.SetPorts(ctx, t.AgentLabel, PortsFor(next, t.AgentLabel)); err != nil {
		return &Error{Kind: Failed, Message: "Failed to delete tunnel", Details: "tunnel-acl: " + err.Error()}
	}
	// Certificate deletion failures are not the caller's problem (§7.5).
	s.cfg.Certs.DeleteIndividual(context.WithoutCancel(ctx), t.FQDN)
	return nil
}

// SyncACL rewrites the agent's allowed relay ports from tunnels.json, e.g.
// after the agent enrolls again under a label whose tunnels were kept.
func (s *Service) SyncACL(ctx context.Context, label string) error {
	all, err := s.All()
	if err != nil {
		return err
	}
	return s.cfg.ACL.SetPorts(ctx, label, PortsFor(all, label))
}

// IsError reports whether err is an *Error and returns it.
func IsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
