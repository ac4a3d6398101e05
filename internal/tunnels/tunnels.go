// Package tunnels manages the relay's tunnel definitions (tunnels.json): who
// owns each tunnel, which relay port it holds, how it is exposed through
// nginx, and what each agent may bind on the tunnel server. A tunnel is an
// api.Tunnel: tunnels.json stores exactly what the API returns.
//
// It is the logic behind the panel's /api/tunnels routes (docs/api.md, "Tunnels"). Every
// change runs its side effects in a fixed order (certificate, vhost, access
// rules, state, tunnel ACL) and undoes the earlier steps when a later one
// fails, so a failed request leaves nothing half-applied. Changes are
// serialised by one lock, which is never held while a certificate is
// obtained (an ACME order takes minutes) or nginx reloads: Create reserves
// the subdomain and the relay port under the lock, obtains the certificate
// and writes the vhost without it (so concurrent creates share nginx
// reloads), and commits under the lock again. Refusals and failures are errkind errors
// whose message is the contract's. The transport itself (chisel) lives in
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
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/portlama/portlama/internal/acme"
	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/errkind"
	"github.com/portlama/portlama/internal/hostnames"
	"github.com/portlama/portlama/internal/manage"
	"github.com/portlama/portlama/internal/store"
	"github.com/portlama/portlama/internal/validate"
)

// Caller is who asks for a change: an admin, or an agent with capabilities.
type Caller struct {
	Admin        bool
	Label        string // agent label; empty for admins
	Capabilities []string
}

func (c Caller) has(cap string) bool { return c.Admin || slices.Contains(c.Capabilities, cap) }

// VhostName is the nginx vhost file name of a tunnel.
func VhostName(t api.Tunnel) string {
	if t.Type == api.TypePanel {
		return "portlama-agent-panel-" + t.Subdomain
	}
	return "portlama-app-" + t.Subdomain
}

// Vhosts writes and toggles the nginx vhost of a tunnel, using nginx's safe
// write / test / reload / rollback procedure. WriteTunnel links the vhost
// into sites-enabled only when the tunnel is enabled.
type Vhosts interface {
	WriteTunnel(ctx context.Context, t api.Tunnel, cert acme.Files) error
	RemoveTunnel(ctx context.Context, t api.Tunnel) error
	SetTunnelEnabled(ctx context.Context, t api.Tunnel, enabled bool) error
}

// Certificates finds (or obtains) the TLS certificate for an fqdn
// (docs/operations.md, "Certificates") and deletes individual ones when their tunnel goes away;
// *acme.Store is one.
type Certificates interface {
	ForHost(ctx context.Context, fqdn string) (acme.Files, error)
	// DeleteIndividual removes the fqdn's own certificate, if any; wildcard
	// certificates are never deleted.
	DeleteIndividual(ctx context.Context, fqdn string) error
}

// ACL sets the relay ports an agent may bind on the tunnel server. An
// error wrapping manage.ErrNotConfirmed means the ports are saved but the
// tunnel server did not confirm them: the change stands and the API
// answers with a warning. Any other error fails the change.
type ACL interface {
	SetPorts(ctx context.Context, label string, ports []int) error
}

// AccessRules receives every tunnel whenever the restricted tunnels' rules
// or the set of tunnel hosts change (create, delete, access changes).
// Errors as ACL's.
type AccessRules interface {
	SyncTunnels(ctx context.Context, tunnels []api.Tunnel) error
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
	// MaxTunnelsPerAgent bounds the tunnels one agent label may own;
	// zero is DefaultMaxTunnelsPerAgent.
	MaxTunnelsPerAgent int
}

// DefaultMaxTunnelsPerAgent is the tunnel limit per agent when the
// settings give none (config.DefaultAgentTunnels).
const DefaultMaxTunnelsPerAgent = 50

// Result is the outcome of a change: the tunnel, and a warning when the
// change is saved but a daemon did not confirm it is in force.
type Result struct {
	api.Tunnel
	Warning string
}

// warnings collects the warnings of one change's steps.
type warnings []string

// step classifies a side effect's error: an unconfirmed change stands and
// its warning is kept; any other error is returned.
func (w *warnings) step(err error) error {
	warn, rest := manage.Warning(err)
	if warn != "" {
		*w = append(*w, warn)
	}
	return rest
}

func (w warnings) String() string { return manage.JoinWarnings(w...) }

// Config configures a Service.
type Config struct {
	File     string // tunnels.json
	Settings func() (Settings, error)
	Agents   AgentDirectory
	Vhosts   Vhosts
	Certs    Certificates
	ACL      ACL
	Rules    AccessRules // may be nil until the auth server is configured
	// Names is the relay's name space shared with sites; nil gives the
	// tunnels a name space of their own.
	Names *hostnames.Registry
	Now   func() time.Time
	// PortFree reports whether nothing listens on 127.0.0.1:port; nil uses a
	// real listen probe.
	PortFree func(port int) bool
}

// Service manages tunnels.json and its side effects.
type Service struct {
	cfg Config
	doc *store.Doc[[]api.Tunnel]

	cache atomic.Pointer[snapshot] // see shared

	mu sync.Mutex
	// reserved holds the tunnels being created (between the checks and the
	// commit, while their certificate is obtained without the lock): their
	// subdomain, local port and relay port count as taken.
	reserved map[string]api.Tunnel // by id
}

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PortFree == nil {
		cfg.PortFree = portFree
	}
	if cfg.Names == nil {
		cfg.Names = hostnames.New()
	}
	s := &Service{cfg: cfg, doc: store.NewDoc[[]api.Tunnel](cfg.File, 0o600), reserved: map[string]api.Tunnel{}}
	cfg.Names.AddSource(s.hostNames)
	return s
}

// hostNames lists the stored tunnels' names for the shared name space.
func (s *Service) hostNames() ([]hostnames.Name, error) {
	ts, err := s.shared()
	if err != nil {
		return nil, err
	}
	out := make([]hostnames.Name, 0, len(ts))
	for _, t := range ts {
		out = append(out, hostnames.Name{Kind: hostnames.Tunnel, Label: t.Subdomain, FQDN: t.FQDN})
	}
	return out, nil
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// All returns every tunnel in createdAt order, the caller's to modify.
func (s *Service) All() ([]api.Tunnel, error) {
	ts, err := s.doc.Load()
	if err != nil {
		return nil, err
	}
	sortByCreation(ts)
	return ts, nil
}

func sortByCreation(ts []api.Tunnel) {
	sort.SliceStable(ts, func(i, j int) bool { return ts[i].CreatedAt < ts[j].CreatedAt })
}

// snapshot is tunnels.json as last parsed, in createdAt order. It is
// shared by the readers and never modified.
type snapshot struct {
	ver store.Version
	all []api.Tunnel
}

// shared returns every tunnel in createdAt order for reading only: the
// slice and what its tunnels point to are shared with other callers. The
// file is parsed again only when it changed (store.Version), so the lists
// (GET /api/tunnels, which the web UI polls) cost a stat, not a parse of
// 1,000 tunnels.
func (s *Service) shared() ([]api.Tunnel, error) {
	prev := s.cache.Load()
	var since store.Version
	if prev != nil {
		since = prev.ver
	}
	all, ver, changed, err := s.doc.LoadChanged(since)
	if err != nil {
		return nil, err
	}
	if !changed {
		return prev.all, nil
	}
	sortByCreation(all)
	s.cache.Store(&snapshot{ver: ver, all: all})
	return all, nil
}

// List returns the tunnels the caller may see, newest first. The tunnels
// are copies, but share what their pointer fields point to with other
// callers: replace those, never modify through them.
func (s *Service) List(c Caller) ([]api.Tunnel, error) {
	all, err := s.shared()
	if err != nil {
		return nil, err
	}
	out := []api.Tunnel{}
	for i := len(all) - 1; i >= 0; i-- {
		if c.Admin || all[i].AgentLabel == c.Label {
			out = append(out, all[i])
		}
	}
	return out, nil
}

// EnabledFor returns the agent's enabled tunnels in createdAt order
// (shared as List's are).
func (s *Service) EnabledFor(label string) ([]api.Tunnel, error) {
	all, err := s.shared()
	if err != nil {
		return nil, err
	}
	var out []api.Tunnel
	for _, t := range all {
		if t.AgentLabel == label && t.IsEnabled() {
			out = append(out, t)
		}
	}
	return out, nil
}

// PortsFor returns the relay ports of the agent's enabled tunnels.
func PortsFor(all []api.Tunnel, label string) []int {
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
type CreateRequest = api.CreateTunnelRequest

func failed(msg, step string, err error) error {
	return errkind.Wrap(errkind.Failed, fmt.Errorf("%s: %w", step, err), "%s", msg)
}

// Create adds a tunnel after the documented checks (docs/api.md, "Creating a tunnel"), in order, and
// applies its side effects, undoing them all if one fails. The certificate
// is obtained without holding the service's lock, so a slow ACME order
// delays only this request.
func (s *Service) Create(ctx context.Context, c Caller, r CreateRequest) (Result, error) {
	t, hold, err := s.reserve(c, r)
	if err != nil {
		return Result{}, err
	}
	defer hold.Release() // after commit: the name is stored by then
	// The certificate and the vhost come without the lock: the
	// reservation holds the subdomain (the vhost's file name) and the
	// relay port, and concurrent creates reach nginx together, so its
	// group commit gives them one test and reload.
	cert, certErr := s.cfg.Certs.ForHost(ctx, t.FQDN)
	var vhostErr error
	if certErr == nil {
		if vhostErr = s.cfg.Vhosts.WriteTunnel(ctx, t, cert); vhostErr != nil {
			s.dropCert(ctx, cert)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.reserved, t.ID)
	switch {
	case certErr != nil:
		return Result{}, failed("Failed to create tunnel", "certificate", certErr)
	case vhostErr != nil:
		return Result{}, failed("Failed to create tunnel", "nginx", vhostErr)
	}
	warn, err := s.commit(ctx, t, cert)
	if err != nil {
		return Result{}, err
	}
	return Result{Tunnel: t, Warning: warn}, nil
}

// reserve runs the checks of a create under the lock and reserves the new
// tunnel's subdomain (in the shared name space), local port and relay port.
func (s *Service) reserve(c Caller, r CreateRequest) (_ api.Tunnel, _ *hostnames.Hold, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()

	if r.Type == "" {
		r.Type = api.TypeApp
	}
	if r.TargetHost == "" {
		r.TargetHost = api.DefaultTargetHost
	}
	if r.AccessMode == "" {
		r.AccessMode = api.AccessAuthenticated
	}
	if validate.IsReservedSubdomain(r.Subdomain) {
		return api.Tunnel{}, nil, errkind.New(errkind.Invalid, "Subdomain '%s' is reserved", r.Subdomain)
	}
	if validate.HasAgentPanelPrefix(r.Subdomain) && r.Type != api.TypePanel {
		return api.Tunnel{}, nil, errkind.New(errkind.Invalid, "Subdomain prefix 'agent-' is reserved for agent panel tunnels")
	}
	if r.Type == api.TypeApp && r.AccessMode == api.AccessPublic && !c.Admin {
		return api.Tunnel{}, nil, errkind.New(errkind.Forbidden, "Only administrators can set tunnel access mode to public")
	}
	if r.Type == api.TypePanel && !c.Admin {
		if !c.has(api.CapPanelExpose) {
			return api.Tunnel{}, nil, errkind.New(errkind.Forbidden, "Cannot create panel tunnel without panel:expose capability")
		}
		if r.Subdomain != "agent-"+c.Label {
			return api.Tunnel{}, nil, errkind.New(errkind.Forbidden, "Agents can only create panel tunnels for their own label")
		}
	}

	owner, err := s.owner(c, r.AgentLabel)
	if err != nil {
		return api.Tunnel{}, nil, err
	}
	if c.Admin && r.Type == api.TypePanel && r.Subdomain != "agent-"+owner {
		return api.Tunnel{}, nil, errkind.New(errkind.Invalid, "Panel tunnel subdomain must be 'agent-%s'", owner)
	}

	stored, err := s.All()
	if err != nil {
		return api.Tunnel{}, nil, failed("Failed to create tunnel", "state", err)
	}
	set, err := s.cfg.Settings()
	if err != nil {
		return api.Tunnel{}, nil, failed("Failed to create tunnel", "state", err)
	}
	all := stored
	for _, t := range s.reserved {
		all = append(all, t)
	}
	fqdn := r.Subdomain + "." + set.Domain
	name := hostnames.Name{Kind: hostnames.Tunnel, Label: r.Subdomain}
	if set.Domain != "" {
		name.FQDN = fqdn
	}
	hold, err := s.cfg.Names.Reserve(name, func(held []hostnames.Name) error {
		if _, clash := hostnames.Clashes(held, name); clash {
			return errkind.New(errkind.Invalid, "Subdomain '%s' is already in use", r.Subdomain)
		}
		return nil
	})
	if err != nil {
		if errkind.KindOf(err) == nil {
			err = failed("Failed to create tunnel", "state", err)
		}
		return api.Tunnel{}, nil, err
	}
	defer func() {
		if err != nil {
			hold.Release()
		}
	}()
	for _, t := range all {
		if t.AgentLabel == owner && t.Port == r.Port {
			return api.Tunnel{}, nil, errkind.New(errkind.Invalid, "Port %d is already in use by another tunnel", r.Port)
		}
	}
	if set.Domain == "" || set.Email == "" {
		return api.Tunnel{}, nil, errkind.New(errkind.Invalid, "Domain and email must be configured before creating tunnels")
	}
	if limit := set.maxPerAgent(); countFor(all, owner) >= limit {
		return api.Tunnel{}, nil, errkind.New(errkind.Conflict,
			"Agent '%s' has reached the limit of %d tunnels per agent. Delete a tunnel it no longer needs, or raise agentLimits.tunnels in panel.json.",
			owner, limit)
	}
	relayPort, ok := s.allocatePort(all, set)
	if !ok {
		return api.Tunnel{}, nil, errkind.New(errkind.Conflict, "No free relay port in the configured range")
	}

	enabled := true
	t := api.Tunnel{
		ID:         uuid.NewString(),
		Subdomain:  r.Subdomain,
		FQDN:       fqdn,
		AgentLabel: owner,
		Port:       r.Port,
		TargetHost: r.TargetHost,
		RelayPort:  relayPort,
		Type:       r.Type,
		Enabled:    &enabled,
		CreatedAt:  api.FormatTime(s.cfg.Now()),
	}
	if r.Description != "" {
		d := r.Description
		t.Description = &d
	}
	if r.Type == api.TypeApp {
		t.AccessMode = r.AccessMode
		users, groups := nonNil(r.AllowedUsers), nonNil(r.AllowedGroups)
		t.AllowedUsers, t.AllowedGroups = &users, &groups
	}
	s.reserved[t.ID] = t
	return t, hold, nil
}

func (set Settings) maxPerAgent() int {
	if set.MaxTunnelsPerAgent > 0 {
		return set.MaxTunnelsPerAgent
	}
	return DefaultMaxTunnelsPerAgent
}

// countFor counts the tunnels label owns.
func countFor(all []api.Tunnel, label string) int {
	n := 0
	for _, t := range all {
		if t.AgentLabel == label {
			n++
		}
	}
	return n
}

// commit applies a reserved tunnel's remaining side effects after its
// certificate and vhost (s.mu held): access rules and state, tunnel ACL; a
// failure undoes the earlier steps, vhost and certificate included. It
// returns the warning of unconfirmed steps.
func (s *Service) commit(ctx context.Context, t api.Tunnel, cert acme.Files) (string, error) {
	fail := func(step string, err error) (string, error) { return "", failed("Failed to create tunnel", step, err) }
	var warn warnings
	undoVhost := func() {
		s.cfg.Vhosts.RemoveTunnel(context.WithoutCancel(ctx), t)
		s.dropCert(ctx, cert)
	}
	all, err := s.All()
	if err != nil {
		undoVhost()
		return fail("state", err)
	}
	// The owner may have been revoked while the certificate was obtained:
	// its tunnels are disabled, and this one must not outlive it enabled.
	active, err := s.cfg.Agents.ActiveLabels()
	if err != nil {
		undoVhost()
		return fail("state", err)
	}
	if !slices.Contains(active, t.AgentLabel) {
		undoVhost()
		return "", errkind.New(errkind.Invalid, "Unknown agent '%s'", t.AgentLabel)
	}
	// 3. access rules (they list every tunnel's host) and state
	next := append(slices.Clone(all), t)
	if err := warn.step(s.syncRules(ctx, next)); err != nil {
		undoVhost()
		return fail("state", err)
	}
	if _, err := s.doc.Update(func(ts *[]api.Tunnel) error { *ts = append(*ts, t); return nil }); err != nil {
		s.syncRules(context.WithoutCancel(ctx), all)
		undoVhost()
		return fail("state", err)
	}
	// 4. tunnel ACL
	if err := warn.step(s.cfg.ACL.SetPorts(ctx, t.AgentLabel, PortsFor(next, t.AgentLabel))); err != nil {
		s.doc.Update(func(ts *[]api.Tunnel) error {
			*ts = slices.DeleteFunc(*ts, func(x api.Tunnel) bool { return x.ID == t.ID })
			return nil
		})
		s.syncRules(context.WithoutCancel(ctx), all)
		undoVhost()
		return fail("tunnel-acl", err)
	}
	return warn.String(), nil
}

// dropCert deletes an individual certificate obtained for a tunnel that did
// not come to be (or is gone); shared wildcard certificates stay.
func (s *Service) dropCert(ctx context.Context, c acme.Files) {
	if !c.Wildcard {
		s.cfg.Certs.DeleteIndividual(context.WithoutCancel(ctx), c.Name)
	}
}

func (s *Service) syncRules(ctx context.Context, ts []api.Tunnel) error {
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

// owner decides who owns a new tunnel (docs/api.md, "Creating a tunnel" check 5).
func (s *Service) owner(c Caller, requested string) (string, error) {
	if !c.Admin {
		if requested != "" && requested != c.Label {
			return "", errkind.New(errkind.Forbidden, "Agents can only create tunnels for their own label")
		}
		return c.Label, nil
	}
	active, err := s.cfg.Agents.ActiveLabels()
	if err != nil {
		return "", failed("Failed to create tunnel", "state", err)
	}
	if requested != "" {
		if !slices.Contains(active, requested) {
			return "", errkind.New(errkind.Invalid, "Unknown agent '%s'", requested)
		}
		return requested, nil
	}
	if len(active) != 1 {
		return "", errkind.New(errkind.Invalid, "agentLabel is required unless exactly one active agent exists")
	}
	return active[0], nil
}

// allocatePort picks the lowest port in the range that no tunnel holds and
// nothing listens on.
func (s *Service) allocatePort(all []api.Tunnel, set Settings) (int, bool) {
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
func find(all []api.Tunnel, c Caller, id string) (api.Tunnel, bool) {
	for _, t := range all {
		if t.ID == id && (c.Admin || t.AgentLabel == c.Label) {
			return t, true
		}
	}
	return api.Tunnel{}, false
}

// Patch is a validated PATCH /api/tunnels/:id body; nil fields are absent.
type Patch = api.UpdateTunnelRequest

var errTunnelNotFound = errkind.New(errkind.NotFound, "Tunnel not found")

// Update applies a PATCH (docs/api.md, "Tunnels"). Only what changed is touched; state
// is saved last. When the access mode may change the vhost, the certificate
// is looked up before the lock is taken.
func (s *Service) Update(ctx context.Context, c Caller, id string, p Patch) (Result, error) {
	failMsg := "Failed to update tunnel"
	if p.Enabled != nil {
		failMsg = "Failed to toggle tunnel"
	}
	fail := func(err error) (Result, error) {
		return Result{}, errkind.Wrap(errkind.Failed, err, "%s", failMsg)
	}

	var cert acme.Files
	var certErr error
	certFor := ""
	if p.AccessMode != nil {
		all, err := s.All()
		if err != nil {
			return fail(err)
		}
		if t, ok := find(all, c, id); ok && t.Type == api.TypeApp && (t.AccessMode == api.AccessPublic) != (*p.AccessMode == api.AccessPublic) {
			certFor = t.FQDN
			cert, certErr = s.cfg.Certs.ForHost(ctx, t.FQDN)
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()

	all, err := s.All()
	if err != nil {
		return fail(err)
	}
	old, ok := find(all, c, id)
	if !ok {
		return Result{}, errTunnelNotFound
	}
	if old.Type == api.TypePanel && !c.has(api.CapPanelExpose) {
		return Result{}, errkind.New(errkind.Forbidden, "Cannot toggle panel tunnel without panel:expose capability")
	}
	if old.Type == api.TypePanel && (p.AccessMode != nil || p.AllowedUsers != nil || p.AllowedGroups != nil) {
		return Result{}, errkind.New(errkind.Invalid, "Panel tunnels have no access mode")
	}
	if p.AccessMode != nil && *p.AccessMode == api.AccessPublic && !c.Admin {
		return Result{}, errkind.New(errkind.Forbidden, "Only administrators can set tunnel access mode to public")
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
	wasProtected, isProtected := old.AccessMode != api.AccessPublic, t.AccessMode != api.AccessPublic
	vhostChanged := old.Type == api.TypeApp && wasProtected != isProtected
	rulesChanged := old.AccessMode != t.AccessMode && (old.AccessMode == api.AccessRestricted || t.AccessMode == api.AccessRestricted) ||
		!slices.Equal(deref(old.AllowedUsers), deref(t.AllowedUsers)) ||
		!slices.Equal(deref(old.AllowedGroups), deref(t.AllowedGroups))
	if !enabledChanged && !vhostChanged && !rulesChanged {
		return Result{Tunnel: old}, nil
	}
	var warn warnings

	next := replace(all, t)
	var undo []func()
	rollback := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	bg := context.WithoutCancel(ctx)

	if vhostChanged {
		if certFor != t.FQDN {
			// The tunnel changed between the lookup and the lock (another
			// request toggled its mode): look the certificate up now.
			cert, certErr = s.cfg.Certs.ForHost(ctx, t.FQDN)
		}
		if certErr != nil {
			return fail(fmt.Errorf("certificate: %w", certErr))
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
		if err := warn.step(s.cfg.ACL.SetPorts(ctx, t.AgentLabel, PortsFor(next, t.AgentLabel))); err != nil {
			rollback()
			return fail(fmt.Errorf("tunnel-acl: %w", err))
		}
		undo = append(undo, func() { s.cfg.ACL.SetPorts(bg, t.AgentLabel, PortsFor(all, t.AgentLabel)) })
	}
	if rulesChanged {
		if err := warn.step(s.syncRules(ctx, next)); err != nil {
			rollback()
			return fail(fmt.Errorf("access rules: %w", err))
		}
		undo = append(undo, func() { s.syncRules(bg, all) })
	}
	if _, err := s.doc.Update(func(ts *[]api.Tunnel) error { *ts = replace(*ts, t); return nil }); err != nil {
		rollback()
		return fail(fmt.Errorf("state: %w", err))
	}
	return Result{Tunnel: t, Warning: warn.String()}, nil
}

func deref(p *[]string) []string {
	if p == nil {
		return nil
	}
	return *p
}

func replace(all []api.Tunnel, t api.Tunnel) []api.Tunnel {
	out := slices.Clone(all)
	for i := range out {
		if out[i].ID == t.ID {
			out[i] = t
		}
	}
	return out
}

// Delete removes a tunnel (docs/api.md, "Tunnels"). It returns the warning of
// unconfirmed steps.
func (s *Service) Delete(ctx context.Context, c Caller, id string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()

	fail := func(err error) (string, error) {
		return "", errkind.Wrap(errkind.Failed, err, "Failed to delete tunnel")
	}
	all, err := s.All()
	if err != nil {
		return fail(err)
	}
	t, ok := find(all, c, id)
	if !ok {
		return "", errTunnelNotFound
	}
	if t.Type == api.TypePanel && !c.has(api.CapPanelExpose) {
		return "", errkind.New(errkind.Forbidden, "Cannot delete panel tunnel without panel:expose capability")
	}
	if err := s.cfg.Vhosts.RemoveTunnel(ctx, t); err != nil {
		return fail(err)
	}
	var warn warnings
	next := slices.DeleteFunc(slices.Clone(all), func(x api.Tunnel) bool { return x.ID == t.ID })
	if err := warn.step(s.syncRules(ctx, next)); err != nil {
		return fail(fmt.Errorf("access rules: %w", err))
	}
	if _, err := s.doc.Update(func(ts *[]api.Tunnel) error {
		*ts = slices.DeleteFunc(*ts, func(x api.Tunnel) bool { return x.ID == t.ID })
		return nil
	}); err != nil {
		return fail(fmt.Errorf("state: %w", err))
	}
	if err := warn.step(s.cfg.ACL.SetPorts(ctx, t.AgentLabel, PortsFor(next, t.AgentLabel))); err != nil {
		return fail(fmt.Errorf("tunnel-acl: %w", err))
	}
	// Certificate deletion failures are not the caller's problem (docs/api.md, "Tunnels").
	s.cfg.Certs.DeleteIndividual(context.WithoutCancel(ctx), t.FQDN)
	return warn.String(), nil
}

// DisableAgent disables every enabled tunnel of label (a revoked agent):
// their vhosts leave sites-enabled, tunnels.json keeps them disabled — an
// agent enrolled later under the same label does not adopt them until an
// admin enables them — and the label may bind no port. An unconfirmed
// port change is returned wrapping manage.ErrNotConfirmed.
func (s *Service) DisableAgent(ctx context.Context, label string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	all, err := s.All()
	if err != nil {
		return fmt.Errorf("disable tunnels of %s: %w", label, err)
	}
	var off []api.Tunnel
	for _, t := range all {
		if t.AgentLabel == label && t.IsEnabled() {
			off = append(off, t)
		}
	}
	if len(off) == 0 {
		return nil
	}
	disabled := false
	if _, err := s.doc.Update(func(ts *[]api.Tunnel) error {
		for i := range *ts {
			if (*ts)[i].AgentLabel == label {
				(*ts)[i].Enabled = &disabled
			}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("disable tunnels of %s: state: %w", label, err)
	}
	// State first: a vhost that fails to leave nginx is still refused a
	// port, and the tunnel shows disabled for the admin to retry.
	// The vhosts go at once: nginx's group commit gives them one reload.
	errs := make([]error, len(off)+1)
	var wg sync.WaitGroup
	for i, t := range off {
		wg.Go(func() {
			if err := s.cfg.Vhosts.SetTunnelEnabled(ctx, t, false); err != nil {
				errs[i] = fmt.Errorf("disable vhost of %s: %w", t.FQDN, err)
			}
		})
	}
	wg.Wait()
	errs[len(off)] = s.cfg.ACL.SetPorts(ctx, label, []int{})
	return errors.Join(errs...)
}

// SyncACL rewrites the agent's allowed relay ports from tunnels.json, e.g.
// after the agent enrolls again under a label whose tunnels were kept. It
// holds the lock, so a concurrent create or toggle cannot have its port
// overwritten by an older list.
func (s *Service) SyncACL(ctx context.Context, label string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	all, err := s.All()
	if err != nil {
		return err
	}
	return s.cfg.ACL.SetPorts(ctx, label, PortsFor(all, label))
}
