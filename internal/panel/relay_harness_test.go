package panel

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/acme"
	"github.com/portlama/portlama/internal/agents"
	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/pki"
	"github.com/portlama/portlama/internal/store"
	"github.com/portlama/portlama/internal/tunnel"
	"github.com/portlama/portlama/internal/tunnels"
)

// relayEnv is a panel on the relay's real services as relay.Open wires
// them (PKI, agents registry, tunnel ACL, tunnels.json, certificate store,
// nginx.Manager writing real vhost files); only nginx itself is the
// fakeNginx controller. The end-to-end tests run the real nginx.

const (
	testFingerprint = "O6ssY+Ss0zrUaXnR0QSxtvlDW9pPHZTU2RqkG5xV3Eg=" // chisel's SHA-256 form
	testDomain      = "example.com"
)

type relayEnv struct {
	*harness
	pki     *pki.PKI
	agents  *agents.Manager
	acl     *tunnel.ACL
	tunnels *tunnels.Service
	certs   *acme.Store
	vhosts  vhostFiles
	ctx     context.Context
}

// newRelayEnv starts a COMPLETED panel for example.com (e-mail set) with a
// wildcard certificate for *.example.com in the store; identity comes from
// the relay's PKI and agents registry.
func newRelayEnv(t *testing.T) *relayEnv {
	t.Helper()
	h := startHarness(t, config.StatusCompleted, true)
	s := h.svc
	e := &relayEnv{harness: h, pki: s.PKI, agents: s.Agents, acl: s.ACL, tunnels: s.Tunnels, certs: s.Certs,
		vhosts: vhostFiles{h: h}, ctx: context.Background()}
	if _, err := s.Panel.Update(func(c *config.PanelConfig) error {
		email := "ops@example.com"
		c.Email = &email
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := s.PKI.IssueServer([]string{testDomain, "*." + testDomain}, 90*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Certs.Install(testDomain, certPEM, keyPEM, []string{testDomain, "*." + testDomain}, "dns-01"); err != nil {
		t.Fatal(err)
	}
	e.setFingerprintErr(nil)
	return e
}

// vhostFiles reads the vhost files nginx.Manager wrote and drives the
// fake nginx's failures.
type vhostFiles struct{ h *harness }

// isEnabled reports whether sites-enabled links name and whether
// sites-available has it.
func (v vhostFiles) isEnabled(name string) (enabled, exists bool) {
	l := v.h.svc.Config.Layout
	_, err := os.Stat(filepath.Join(l.NginxSitesAvailable(), name))
	exists = err == nil
	_, err = os.Lstat(filepath.Join(l.NginxSitesEnabled(), name))
	return err == nil, exists
}

// callCount counts nginx configuration tests so far.
func (v vhostFiles) callCount() int {
	v.h.ngx.mu.Lock()
	defer v.h.ngx.mu.Unlock()
	return v.h.ngx.tests
}

// failNext makes the next nginx -t fail with output.
func (v vhostFiles) failNext(output string) {
	v.h.ngx.mu.Lock()
	defer v.h.ngx.mu.Unlock()
	v.h.ngx.failNext = output
}

// setFingerprintErr removes the tunnel server's fingerprint file (err set)
// or writes testFingerprint to it.
func (e *relayEnv) setFingerprintErr(err error) {
	path := tunnel.DirConfig(e.svc.Config.Layout.TunnelDir()).FingerprintFile
	if err != nil {
		os.Remove(path)
		return
	}
	if werr := store.WriteFileAtomic(path, []byte(testFingerprint+"\n"), 0o644); werr != nil {
		e.t.Fatal(werr)
	}
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

// errFailNginx is the output of a failing nginx -t.
const errFailNginx = "unknown directive"

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }
