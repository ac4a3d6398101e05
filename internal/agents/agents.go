// Package agents manages the relay's agents: the registry of agent
// certificates (pki/agents/registry.json), enrollment tokens
// (pki/enrollment-tokens.json), token enrollment from a CSR, agent P12
// issuance, re-keying, revocation, capabilities and allowed sites. It is a
// plain Go API; the panel's HTTP handlers decode a request, call one method
// and map the error:
//
//	m, err := agents.New(agents.Config{PKI: p, Tunnels: tunnelACL})
//
//	m.IssueP12(ctx, label, caps, sites)   // POST /api/certs/agent
//	m.CreateToken(label, caps, sites)     // POST /api/certs/agent/enroll
//	m.RevokeToken(label)                  // DELETE /api/certs/agent/enroll/:label
//	m.Enroll(ctx, token, csr)             // POST /api/enroll
//	m.Rekey(ctx, label, csr)              // POST /api/certs/agent/upgrade-cert
//	m.Revoke(ctx, label)                  // DELETE /api/certs/agent/:label
//	m.List(), m.AgentP12(label)           // GET /api/certs/agent[/:label/download]
//	m.UpdateCapabilities / m.UpdateAllowedSites
//	m.Authenticate(label, serial)         // identity check (docs/api.md, "Identity resolution" step 5)
//
// Error mapping: *LabelError (errors.Is ErrExists → 409, ErrNotFound → 404,
// ErrInvalidLabel → 400) whose Error() is the contract message;
// *CapabilityError → 400 `Invalid capability: <c>`; *pki.CSRError → 400
// `Invalid CSR` with its Reason as details; ErrInvalidToken, ErrTokenUsed,
// ErrTokenExpired → 401 with their messages; anything else → 500.
//
// Creation, token issuance, enrollment, re-key, revocation and updates are
// serialised by one lock. Tunnel credentials (the tunnel server's acl.json)
// are created and removed through the TunnelCredentials interface; nginx is
// reloaded through the PKI's Reloader after every revocation.
package agents

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/pki"
	"github.com/portlama/portlama/internal/store"
	"github.com/portlama/portlama/internal/validate"
)

// Enrollment methods stored in the registry.
const (
	MethodP12           = "p12"
	MethodHardwareBound = "hardware-bound"
)

// File names below the PKI directory (docs/architecture.md, "PKI directory").
const (
	AgentsDir    = "agents"
	RegistryFile = "registry.json"
	TokensFile   = "enrollment-tokens.json"
)

// TokenTTL is how long an enrollment token can be used; tokens older than
// TokenPurgeAge are deleted on every enrollment attempt.
const (
	TokenTTL      = 10 * time.Minute
	TokenPurgeAge = time.Hour
	expiringSoon  = 30 * 24 * time.Hour
)

// TunnelCredentials manages an agent's credentials for the tunnel server
// (acl.json, owned by internal/tunnel).
type TunnelCredentials interface {
	// AddAgent creates (or replaces) the credentials of label.
	AddAgent(ctx context.Context, label string) error
	// RemoveAgent deletes the credentials of label and closes its tunnel
	// sessions. Removing an agent without credentials is not an error.
	RemoveAgent(ctx context.Context, label string) error
	// RevokeAgent ends a revoked agent's access: its tunnels are disabled
	// for good (a later agent with the label does not adopt them), its
	// credentials removed, its sessions and relay ports closed. An error
	// wrapping manage.ErrNotConfirmed means all of it is saved but the
	// tunnel server did not confirm it yet (the revocation stands, with a
	// warning).
	RevokeAgent(ctx context.Context, label string) error
}

// Config configures a Manager. PKI and Tunnels are required.
type Config struct {
	PKI     *pki.PKI
	Tunnels TunnelCredentials
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Logger receives informational messages; nil discards them.
	Logger *slog.Logger
}

// Entry is one agent in the registry (docs/architecture.md, "Agents registry").
type Entry struct {
	Label            string   `json:"label"`
	Serial           string   `json:"serial"`
	Capabilities     []string `json:"capabilities"`
	AllowedSites     []string `json:"allowedSites"`
	EnrollmentMethod string   `json:"enrollmentMethod"`
	CreatedAt        string   `json:"createdAt"`
	ExpiresAt        string   `json:"expiresAt"`
	Revoked          bool     `json:"revoked"`
	RevokedAt        string   `json:"revokedAt,omitempty"`
}

// ExpiringSoon reports whether the entry is not revoked and its certificate
// has at most 30 days left at now.
func (e Entry) ExpiringSoon(now time.Time) bool {
	if e.Revoked {
		return false
	}
	exp, err := api.ParseTime(e.ExpiresAt)
	return err == nil && exp.Sub(now) <= expiringSoon
}

// Registry is the content of registry.json.
type Registry struct {
	Agents []Entry `json:"agents"`
}

// Manager runs agent operations. It is safe for concurrent use.
type Manager struct {
	pki      *pki.PKI
	tunnels  TunnelCredentials
	now      func() time.Time
	log      *slog.Logger
	registry *store.Doc[Registry]
	tokens   *store.Doc[TokenList]
	mu       sync.Mutex
}

// New returns a Manager for the agents of the PKI in cfg. It creates the
// pki/agents directory when missing.
func New(cfg Config) (*Manager, error) {
	if cfg.PKI == nil || cfg.Tunnels == nil {
		return nil, errors.New("agents: PKI and Tunnels are required")
	}
	m := &Manager{pki: cfg.PKI, tunnels: cfg.Tunnels, now: cfg.Now, log: cfg.Logger}
	if m.now == nil {
		m.now = time.Now
	}
	if m.log == nil {
		m.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	dir := filepath.Join(cfg.PKI.Dir(), AgentsDir)
	if err := os.MkdirAll(dir, pki.DirMode); err != nil {
		return nil, fmt.Errorf("create agents directory: %w", err)
	}
	m.registry = store.NewDoc[Registry](filepath.Join(dir, RegistryFile), 0o640)
	m.tokens = store.NewDoc[TokenList](filepath.Join(cfg.PKI.Dir(), TokensFile), 0o600)
	return m, nil
}

// ValidLabel reports whether label may name a new agent (the agent label
// rule, validate.AgentLabel).
func ValidLabel(label string) bool { return validate.AgentLabel(label) == nil }

func (m *Manager) timestamp() string { return pki.Timestamp(m.now()) }

func (m *Manager) agentDir(label string) string {
	return filepath.Join(m.pki.Dir(), AgentsDir, label)
}

func normalizeEntry(e Entry) Entry {
	e.Capabilities = slices.Clone(e.Capabilities)
	if e.Capabilities == nil {
		e.Capabilities = []string{}
	}
	e.AllowedSites = slices.Clone(e.AllowedSites)
	if e.AllowedSites == nil {
		e.AllowedSites = []string{}
	}
	return e
}

func cloneSites(sites []string) []string {
	out := slices.Clone(sites)
	if out == nil {
		out = []string{}
	}
	return out
}

// active returns the index of the non-revoked entry for label, or -1.
func (r *Registry) active(label string) int {
	for i, e := range r.Agents {
		if e.Label == label && !e.Revoked {
			return i
		}
	}
	return -1
}

func (m *Manager) loadRegistry() (Registry, error) {
	r, err := m.registry.Load()
	if err != nil {
		return r, fmt.Errorf("load agents registry: %w", err)
	}
	return r, nil
}

// List returns every registry entry, revoked ones included, in creation
// order.
func (m *Manager) List() ([]Entry, error) {
	r, err := m.loadRegistry()
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(r.Agents))
	for _, e := range r.Agents {
		out = append(out, normalizeEntry(e))
	}
	return out, nil
}

// Lookup returns the non-revoked entry for label, or a *LabelError
// (ErrNotFound). Its capabilities are filtered to the known set with
// tunnels:read present, so the entry can back an identity check directly
// (the caller still compares the serial, or uses Authenticate).
func (m *Manager) Lookup(label string) (Entry, error) {
	r, err := m.loadRegistry()
	if err != nil {
		return Entry{}, err
	}
	i := r.active(label)
	if i < 0 {
		return Entry{}, labelErr(label, ErrNotFound)
	}
	e := normalizeEntry(r.Agents[i])
	e.Capabilities = filterCapabilities(e.Capabilities)
	return e, nil
}

// Authenticate is the panel's identity check for a certificate
// `CN=agent:<label>` with the given serial (docs/api.md, "Identity resolution" step 5). It returns
// the non-revoked entry for label whose serial equals serial (compared
// normalised), with capabilities filtered to the known set, and ok=false
// when there is none (the caller answers 403 `Certificate has been revoked`).
func (m *Manager) Authenticate(label, serial string) (e Entry, ok bool, err error) {
	r, err := m.loadRegistry()
	if err != nil {
		return Entry{}, false, err
	}
	i := r.active(label)
	if i < 0 || !pki.SerialsEqual(r.Agents[i].Serial, serial) {
		return Entry{}, false, nil
	}
	e = normalizeEntry(r.Agents[i])
	e.Capabilities = filterCapabilities(e.Capabilities)
	return e, true, nil
}

// AgentP12 returns the P12 bundle of a P12-issued, non-revoked agent, or a
// *LabelError (ErrNotFound) when there is none on disk (enrolled, re-keyed or
// revoked agents).
func (m *Manager) AgentP12(label string) ([]byte, error) {
	if !ValidLabel(label) {
		return nil, labelErr(label, ErrNotFound)
	}
	data, err := os.ReadFile(filepath.Join(m.agentDir(label), pki.ClientP12File))
	if errors.Is(err, os.ErrNotExist) {
		return nil, labelErr(label, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read agent P12: %w", err)
	}
	return data, nil
}

// UpdateCapabilities replaces the capabilities of the non-revoked agent
// label and returns them normalised (tunnels:read prepended when missing).
func (m *Manager) UpdateCapabilities(label string, caps []string) ([]string, error) {
	norm, err := NormalizeCapabilities(caps)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.registry.Update(func(r *Registry) error {
		i := r.active(label)
		if i < 0 {
			return labelErr(label, ErrNotFound)
		}
		r.Agents[i].Capabilities = norm
		return nil
	}); err != nil {
		return nil, wrap("update capabilities", err)
	}
	return slices.Clone(norm), nil
}

// UpdateAllowedSites replaces the allowed sites of the non-revoked agent
// label. The caller validates the site names.
func (m *Manager) UpdateAllowedSites(label string, sites []string) ([]string, error) {
	sites = cloneSites(sites)
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.registry.Update(func(r *Registry) error {
		i := r.active(label)
		if i < 0 {
			return labelErr(label, ErrNotFound)
		}
		r.Agents[i].AllowedSites = sites
		return nil
	}); err != nil {
		return nil, wrap("update allowed sites", err)
	}
	return slices.Clone(sites), nil
}
