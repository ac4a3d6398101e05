package panel

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/acme"
	"github.com/portlama/portlama/internal/agents"
	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/pki"
	"github.com/portlama/portlama/internal/pki/pkitest"
	"github.com/portlama/portlama/internal/tunnel"
	"github.com/portlama/portlama/internal/tunnels"
)

// This file builds a panel on the relay's real services (PKI, agents
// registry, tunnel ACL, tunnels.json, certificate store) in a temp
// directory. Only nginx is replaced, by recordingVhosts; the lead's
// end-to-end tests run the real nginx and tunnel server.

const (
	testFingerprint = "O6ssY+Ss0zrUaXnR0QSxtvlDW9pPHZTU2RqkG5xV3Eg=" // chisel's SHA-256 form
	testDomain      = "example.com"
)

// recordingVhosts records vhost operations; fail makes the next operation of
// the given kind fail.
type recordingVhosts struct {
	mu      sync.Mutex
	calls   []string
	enabled map[string]bool
	fail    map[string]error // "write", "remove", "enable"
}

func (v *recordingVhosts) record(op string, t api.Tunnel) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.calls = append(v.calls, op+" "+tunnels.VhostName(t))
	kind := op
	if op == "disable" {
		kind = "enable"
	}
	if err := v.fail[kind]; err != nil {
		delete(v.fail, kind)
		return err
	}
	return nil
}

func (v *recordingVhosts) WriteTunnel(_ context.Context, t api.Tunnel, _ acme.Files) error {
	if err := v.record("write", t); err != nil {
		return err
	}
	v.mu.Lock()
	v.enabled[tunnels.VhostName(t)] = true
	v.mu.Unlock()
	return nil
}

func (v *recordingVhosts) RemoveTunnel(_ context.Context, t api.Tunnel) error {
	if err := v.record("remove", t); err != nil {
		return err
	}
	v.mu.Lock()
	delete(v.enabled, tunnels.VhostName(t))
	v.mu.Unlock()
	return nil
}

func (v *recordingVhosts) SetTunnelEnabled(_ context.Context, t api.Tunnel, enabled bool) error {
	op := "disable"
	if enabled {
		op = "enable"
	}
	if err := v.record(op, t); err != nil {
		return err
	}
	v.mu.Lock()
	v.enabled[tunnels.VhostName(t)] = enabled
	v.mu.Unlock()
	return nil
}

func (v *recordingVhosts) callCount() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.calls)
}

func (v *recordingVhosts) failNext(kind string, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.fail[kind] = err
}

func (v *recordingVhosts) isEnabled(name string) (enabled, exists bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	enabled, exists = v.enabled[name]
	return
}

// relayEnv is a panel harness wired to real relay services.
type relayEnv struct {
	*harness
	pki     *pki.PKI
	agents  *agents.Manager
	acl     *tunnel.ACL
	tunnels *tunnels.Service
	certs   *acme.Store
	vhosts  *recordingVhosts
	ctx     context.Context

	mu    sync.Mutex
	fpErr error // returned by the Fingerprint dependency when set
}

func (e *relayEnv) fingerprint() (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fpErr != nil {
		return "", e.fpErr
	}
	return testFingerprint, nil
}

func (e *relayEnv) setFingerprintErr(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.fpErr = err
}

// credentials gives agents their tunnel credentials, as relay.Open does.
type envCredentials struct{ e *relayEnv }

func (c envCredentials) AddAgent(ctx context.Context, label string) error {
	if err := c.e.acl.AddAgent(ctx, label); err != nil {
		return err
	}
	return c.e.tunnels.SyncACL(ctx, label)
}

func (c envCredentials) RemoveAgent(ctx context.Context, label string) error {
	return c.e.acl.RemoveAgent(ctx, label)
}

type envActiveLabels struct{ e *relayEnv }

func (a envActiveLabels) ActiveLabels() ([]string, error) {
	entries, err := a.e.agents.List()
	if err != nil {
		return nil, err
	}
	var labels []string
	for _, x := range entries {
		if !x.Revoked {
			labels = append(labels, x.Label)
		}
	}
	return labels, nil
}

// newRelayEnv starts a COMPLETED panel for example.com (e-mail set) with a
// wildcard certificate for *.example.com in the store.
func newRelayEnv(t *testing.T) *relayEnv {
	t.Helper()
	e := &relayEnv{vhosts: &recordingVhosts{enabled: map[string]bool{}, fail: map[string]error{}}, ctx: context.Background()}
	var setupErr error
	e.harness = newHarness(t, config.StatusCompleted, func(cfg *Config) {
		setupErr = e.setup(t, cfg)
	})
	if setupErr != nil {
		t.Fatal(setupErr)
	}
	return e
}

func (e *relayEnv) setup(t *testing.T, cfg *Config) error {
	now := cfg.Now // the harness clock (advance with h.advance)
	layout := cfg.Layout
	panelStore := config.NewPanelStore(layout.PanelConfig())
	if _, err := panelStore.Update(func(c *config.PanelConfig) error {
		email := "ops@example.com"
		c.Email = &email
		return nil
	}); err != nil {
		return err
	}
	p, _, err := pki.Init(pki.Config{Dir: layout.PKIDir(), Now: now, GenerateKey: pkitest.GenerateKey}, "192.0.2.10")
	if err != nil {
		return err
	}
	e.pki = p
	e.acl = tunnel.NewACL(filepath.Join(t.TempDir(), "acl.json"))
	e.certs = &acme.Store{Dir: layout.CertsDir, Domain: func() string { return testDomain }, Now: now}
	certPEM, keyPEM, err := p.IssueServer([]string{testDomain, "*." + testDomain}, 90*24*time.Hour)
	if err != nil {
		return err
	}
	if err := e.certs.Install(testDomain, certPEM, keyPEM, []string{testDomain, "*." + testDomain}, "dns-01"); err != nil {
		return err
	}
	e.tunnels = tunnels.New(tunnels.Config{
		File: layout.TunnelsFile(),
		Settings: func() (tunnels.Settings, error) {
			c, err := panelStore.Load()
			if err != nil {
				return tunnels.Settings{}, err
			}
			return tunnels.Settings{Domain: c.DomainOrEmpty(), Email: c.EmailOrEmpty(),
				RelayPortMin: c.RelayPortRange.Min, RelayPortMax: c.RelayPortRange.Max}, nil
		},
		Agents:   envActiveLabels{e},
		Vhosts:   e.vhosts,
		Certs:    e.certs,
		ACL:      e.acl,
		Now:      now,
		PortFree: func(int) bool { return true },
	})
	e.agents, err = agents.New(agents.Config{PKI: p, Tunnels: envCredentials{e}, Now: now})
	if err != nil {
		return err
	}
	cfg.Revocations = p
	cfg.Agents = RegistryDirectory{Manager: e.agents}
	cfg.Relay = RelayDeps{
		Tunnels:     e.tunnels,
		Agents:      e.agents,
		PKI:         p,
		Certs:       e.certs,
		Credential:  e.acl.Credential,
		Fingerprint: e.fingerprint,
		ServerURL:   func(d string) string { return "https://tunnel." + d + ":443" },
	}
	return nil
}

// newAgent issues a P12 agent with caps and returns its request headers.
func (e *relayEnv) newAgent(t *testing.T, label string, caps ...string) agentCert {
	t.Helper()
	iss, err := e.agents.IssueP12(e.ctx, label, append([]string{api.CapTunnelsRead}, caps...), nil)
	if err != nil {
		t.Fatal(err)
	}
	return agentCert{label: label, serial: iss.Serial}
}

type agentCert struct{ label, serial string }

func (a agentCert) headers() http.Header { return agentHeaders(a.label, a.serial) }

// realAdminHeaders are the headers of the PKI's current admin certificate.
func (e *relayEnv) realAdminHeaders(t *testing.T) http.Header {
	t.Helper()
	c, err := e.pki.AdminCert()
	if err != nil {
		t.Fatal(err)
	}
	return certHeaders("CN=admin,O=Portlama", pki.FormatSerial(c.SerialNumber))
}

// aclPorts returns the relay ports label may bind, or nil when it has no
// ACL entry.
func (e *relayEnv) aclPorts(t *testing.T, label string) []int {
	t.Helper()
	f, err := e.acl.Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range f.Agents {
		if a.Label == label {
			return slices.Clone(a.RelayPorts)
		}
	}
	return nil
}

func (e *relayEnv) password(t *testing.T, label string) string {
	t.Helper()
	cred, err := e.acl.Credential(e.ctx, label)
	if err != nil {
		t.Fatal(err)
	}
	return cred[len(label)+1:]
}

var testCSRKey = func() crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}()

// jsonString quotes s as a JSON string.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

var errFailNginx = errors.New("nginx -t failed: unknown directive")

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }
