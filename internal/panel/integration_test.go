package panel

import (
	"context"
	"testing"

	"github.com/portlama/portlama/internal/agents"
	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/pki"
	"github.com/portlama/portlama/internal/pki/pkitest"
)

type noTunnels struct{}

func (noTunnels) AddAgent(context.Context, string) error    { return nil }
func (noTunnels) RemoveAgent(context.Context, string) error { return nil }
func (noTunnels) RevokeAgent(context.Context, string) error { return nil }

// TestRealPKIAndRegistry wires the real revocation list (*pki.PKI) and
// agents registry (RegistryDirectory) into the identity check.
func TestRealPKIAndRegistry(t *testing.T) {
	p, _, err := pki.Init(pki.Config{Dir: t.TempDir() + "/pki", GenerateKey: pkitest.GenerateKey}, "192.0.2.10")
	if err != nil {
		t.Fatal(err)
	}
	m, err := agents.New(agents.Config{PKI: p, Tunnels: noTunnels{}})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, config.StatusCompleted, func(c *Config) {
		c.Revocations = p
		c.Agents = RegistryDirectory{Manager: m}
	})
	ctx := context.Background()
	home, err := m.IssueP12(ctx, "home", []string{api.CapSystemRead}, nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := m.IssueP12(ctx, "other", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	const path = "/api/system/stats"
	h.do("GET", path, "", agentHeaders("home", home.Serial)).expect(t, 200, "")
	h.do("GET", path, "", agentHeaders("home", other.Serial)).expect(t, 403, revoked)
	h.do("GET", path, "", agentHeaders("other", other.Serial)).expect(t, 403, "")
	h.do("GET", path, "", agentHeaders("ghost", home.Serial)).expect(t, 403, revoked)

	if _, err := m.Revoke(ctx, "home"); err != nil {
		t.Fatal(err)
	}
	h.do("GET", path, "", agentHeaders("home", home.Serial)).expect(t, 403, revoked)

	admin, err := p.AdminCert()
	if err != nil {
		t.Fatal(err)
	}
	adminHex := admin.SerialNumber.Text(16)
	h.do("GET", path, "", certHeaders("CN=admin,O=Portlama", adminHex)).expect(t, 200, "")
	if err := p.Revoke(adminHex, "admin"); err != nil {
		t.Fatal(err)
	}
	h.do("GET", path, "", certHeaders("CN=admin,O=Portlama", adminHex)).expect(t, 403, revoked)
}
