package panel

import (
	"net/http"
	"testing"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/config"
)

const certRequired = `{"error":"mTLS certificate required","details":{"hint":"Access to the Portlama panel requires a valid client certificate."}}`
const revoked = `{"error":"Certificate has been revoked"}`
const agentScope = `{"error":"Insufficient certificate scope","details":{"required":["admin"],"current":"agent"}}`

func TestProofOfOrigin(t *testing.T) {
	h := newHarness(t, config.StatusFresh)
	forged := http.Header{
		HeaderClientVerify: {"SUCCESS"},
		HeaderClientDN:     {"CN=admin,O=Portlama"},
		HeaderClientSerial: {adminSerial},
		"Remote-User":      {"admin"},
		"X-Real-IP":        {"198.51.100.9"},
	}
	wrong := adminHeaders()
	wrong.Set(HeaderProxySecret, "ff112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")
	short := adminHeaders()
	short.Set(HeaderProxySecret, testSecret[:63])
	for _, path := range []string{"/api/onboarding/status"} {
		h.do("GET", path, "", forged).expect(t, 403, certRequired)
		h.do("GET", path, "", wrong).expect(t, 403, certRequired)
		h.do("GET", path, "", short).expect(t, 403, certRequired)
		h.do("POST", "/api/onboarding/domain", `{"domain":"a.com","email":"a@a.com"}`, forged).expect(t, 403, certRequired)
		h.do("GET", path, "", adminHeaders()).expect(t, 200, `{"status":"FRESH","domain":null,"ip":"`+testIP+`","httpsPort":443,"panelIpUrl":"https://`+testIP+`:9292"}`)
	}
	h.do("GET", "/api/health", "", nil).expect(t, 200, `{"status":"ok","version":"1.2.3"}`)
	// Exactly /api/health without a query string is exempt.
	h.do("GET", "/api/health?x=1", "", nil).expect(t, 403, certRequired)
	h.do("GET", "/api/health?x=1", "", adminHeaders()).expect(t, 200, "")
	// The state was not changed by the forged POST.
	if c, _ := h.store.Load(); c.Onboarding.Status != config.StatusFresh {
		t.Fatalf("forged request changed state to %s", c.Onboarding.Status)
	}
}

func TestNoProxySecretConfiguredTrustsNothing(t *testing.T) {
	h := newHarness(t, config.StatusFresh, func(c *Config) { c.ProxySecret = "" })
	h.do("GET", "/api/onboarding/status", "", adminHeaders()).expect(t, 403, certRequired)
	noSecret := adminHeaders()
	noSecret.Set(HeaderProxySecret, "")
	h.do("GET", "/api/onboarding/status", "", noSecret).expect(t, 403, certRequired)
}

func TestUnprovenRequestsLoseIdentityHeaders(t *testing.T) {
	h := newHarness(t, config.StatusFresh)
	var seen http.Header
	h.srv.Handle(Route{Method: "GET", Path: "/api/test/headers", Access: Public, Handler: func(c *Ctx) error {
		seen = c.R.Header.Clone()
		return c.OK(map[string]bool{"ok": true})
	}})
	forged := http.Header{
		HeaderClientVerify: {"SUCCESS"}, HeaderClientDN: {"CN=admin"}, "Remote-User": {"x"},
		"Remote-Groups": {"admins"}, "X-Real-IP": {"1.2.3.4"}, "X-Forwarded-For": {"1.2.3.4"},
		HeaderProxySecret: {"nope"},
	}
	h.do("GET", "/api/test/headers", "", forged).expect(t, 200, "")
	for _, k := range append(untrustedHeaders, HeaderProxySecret) {
		if seen.Get(k) != "" {
			t.Errorf("header %s reached the handler without proof", k)
		}
	}
	h.do("GET", "/api/test/headers", "", adminHeaders()).expect(t, 200, "")
	if seen.Get(HeaderProxySecret) != "" {
		t.Error("proxy secret visible to handler")
	}
	if seen.Get(HeaderClientDN) == "" {
		t.Error("proven identity header dropped")
	}
}

func TestIdentityResolution(t *testing.T) {
	h := newHarness(t, config.StatusCompleted)
	h.addAgent("home", "ABC123", api.CapSystemRead)
	h.addAgent("nosys", "DEF456", api.CapTunnelsWrite)
	const stats = "/api/system/stats"

	cases := []struct {
		name   string
		hdr    http.Header
		status int
		body   string
	}{
		{"admin", adminHeaders(), 200, ""},
		{"admin serial with leading zeros and lower case", certHeaders("CN=admin,O=Portlama", "000a1b2c"), 200, ""},
		{"verify failed", func() http.Header {
			x := adminHeaders()
			x.Set(HeaderClientVerify, "FAILED:unable to verify")
			return x
		}(), 403, certRequired},
		{"verify none", func() http.Header { x := adminHeaders(); x.Set(HeaderClientVerify, "NONE"); return x }(), 403, certRequired},
		{"no serial", certHeaders("CN=admin,O=Portlama", ""), 403, certRequired},
		{"other CN", certHeaders("CN=root,O=Portlama", "1234"), 403, certRequired},
		{"two CNs", certHeaders("CN=admin,CN=agent:home", "1234"), 403, certRequired},
		{"CN in other attribute", certHeaders("O=CN\\=admin", "1234"), 403, certRequired},
		{"agent with capability", agentHeaders("home", "ABC123"), 200, ""},
		{"agent serial leading zeros", agentHeaders("home", "00abc123"), 200, ""},
		{"agent serial differs", agentHeaders("home", "ABC124"), 403, revoked},
		{"unknown agent", agentHeaders("ghost", "ABC123"), 403, revoked},
		{"agent without capability", agentHeaders("nosys", "DEF456"), 403,
			`{"error":"Insufficient certificate capability","details":{"required":"system:read","granted":["tunnels:read","tunnels:write"]}}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h.do("GET", stats, "", tc.hdr).expect(t, tc.status, tc.body)
		})
	}

	h.revs.revoke("ABC123")
	h.do("GET", stats, "", agentHeaders("home", "ABC123")).expect(t, 403, revoked)
	h.revs.revoke("A1B2C")
	h.do("GET", stats, "", adminHeaders()).expect(t, 403, revoked)
	// Revocation is checked before the CN, so even a malformed DN says revoked.
	h.do("GET", stats, "", certHeaders("CN=nobody", "A1B2C")).expect(t, 403, revoked)
}

func TestRevocationLookupFailureIs500(t *testing.T) {
	h := newHarness(t, config.StatusCompleted)
	h.revs.err = errBoom
	h.do("GET", "/api/system/stats", "", adminHeaders()).expect(t, 500, `{"error":"Internal server error"}`)
}

func TestAgentsOnOnboardingRoutes(t *testing.T) {
	for _, st := range []string{config.StatusFresh, config.StatusDomainSet, config.StatusDNSReady, config.StatusProvisioning} {
		t.Run(st, func(t *testing.T) {
			h := newHarness(t, st)
			h.addAgent("home", "AB", api.CapTunnelsRead, api.CapTunnelsWrite, api.CapSystemRead, api.CapPanelExpose)
			ag := agentHeaders("home", "AB")
			h.do("GET", "/api/onboarding/status", "", ag).expect(t, 403, agentScope)
			h.do("POST", "/api/onboarding/domain", `{"domain":"evil.com","email":"a@evil.com"}`, ag).expect(t, 403, agentScope)
			h.do("POST", "/api/onboarding/verify-dns", "", ag).expect(t, 403, agentScope)
			// Body parsing comes before the role guard.
			h.do("POST", "/api/onboarding/domain", `{"domain":`, ag).expect(t, 400, `{"error":"Invalid JSON body"}`)
			// ... but schema validation after it.
			h.do("POST", "/api/onboarding/domain", `{"domain":1}`, ag).expect(t, 403, agentScope)
			if c, _ := h.store.Load(); c.Onboarding.Status != st {
				t.Fatalf("agent changed state to %s", c.Onboarding.Status)
			}
		})
	}
	h := newHarness(t, config.StatusCompleted)
	h.addAgent("home", "AB", api.CapSystemRead)
	ag := agentHeaders("home", "AB")
	h.do("POST", "/api/onboarding/domain", `{"domain":"evil.com","email":"a@evil.com"}`, ag).expect(t, 410, `{"error":"Onboarding already completed"}`)
	h.do("POST", "/api/onboarding/verify-dns", "", ag).expect(t, 410, `{"error":"Onboarding already completed"}`)
	h.do("GET", "/api/onboarding/status", "", ag).expect(t, 403, agentScope)
}

func TestRoleGuards(t *testing.T) {
	h := newHarness(t, config.StatusCompleted)
	h.addAgent("home", "AB")
	h.srv.Handle(Route{Method: "GET", Path: "/api/test/agent-only", Access: AgentOnly, Gate: GateManagement,
		Handler: func(c *Ctx) error { return c.OK(map[string]string{"label": c.Identity.Label}) }})
	h.srv.Handle(Route{Method: "GET", Path: "/api/test/any", Access: AdminOrAgent, Gate: GateManagement,
		Handler: func(c *Ctx) error { return c.OK(map[string]any{"caps": c.Identity.Capabilities}) }})
	h.do("GET", "/api/test/agent-only", "", adminHeaders()).expect(t, 403,
		`{"error":"Insufficient certificate scope","details":{"required":["agent"],"current":"admin"}}`)
	h.do("GET", "/api/test/agent-only", "", agentHeaders("home", "AB")).expect(t, 200, `{"label":"home"}`)
	// tunnels:read is always granted.
	h.do("GET", "/api/test/any", "", agentHeaders("home", "AB")).expect(t, 200, `{"caps":["tunnels:read"]}`)
}

func TestParseClientDN(t *testing.T) {
	cases := []struct {
		dn    string
		role  Role
		label string
		ok    bool
	}{
		{"CN=admin,O=Portlama", RoleAdmin, "", true},
		{"CN=admin", RoleAdmin, "", true},
		{"O=Portlama,CN=admin", RoleAdmin, "", true},
		{"cn=admin,o=Portlama", RoleAdmin, "", true},
		{"CN=agent:home,O=Portlama", RoleAgent, "home", true},
		{"CN=agent:my-mac-2,O=Portlama", RoleAgent, "my-mac-2", true},
		{"CN=agent\\3Ahome,O=Portlama", RoleAgent, "home", true},
		{"CN=agent:,O=Portlama", "", "", false},
		{"CN=agent:Home,O=Portlama", "", "", false},
		{"CN=agent:a b,O=Portlama", "", "", false},
		{"CN=agent:../x,O=Portlama", "", "", false},
		{"CN=Admin,O=Portlama", "", "", false},
		{"CN=admin\\,O=Portlama", "", "", false},
		{"CN=admin+CN=agent:x", "", "", false},
		{"CN=admin,", "", "", false},
		{"CN=\"admin\"", "", "", false},
		{"", "", "", false},
		{"O=Portlama", "", "", false},
		{"CN=admin\\", "", "", false},
		{"CN=admin\\4", "", "", false},
	}
	for _, tc := range cases {
		role, label, ok := ParseClientDN(tc.dn)
		if role != tc.role || label != tc.label || ok != tc.ok {
			t.Errorf("ParseClientDN(%q) = %q %q %v, want %q %q %v", tc.dn, role, label, ok, tc.role, tc.label, tc.ok)
		}
	}
}

func FuzzParseClientDN(f *testing.F) {
	for _, s := range []string{"CN=admin,O=Portlama", "CN=agent:home,O=Portlama", "CN=agent\\3Ahome", "CN=a\\,b+O=x;C=DE", "CN=\\", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dn string) {
		role, label, ok := ParseClientDN(dn)
		if !ok {
			if role != "" || label != "" {
				t.Fatalf("refused DN returned %q %q", role, label)
			}
			return
		}
		switch role {
		case RoleAdmin:
			if label != "" {
				t.Fatalf("admin with label %q", label)
			}
		case RoleAgent:
			for i := 0; i < len(label); i++ {
				c := label[i]
				if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == ':') {
					t.Fatalf("agent label %q has byte %q", label, c)
				}
			}
			if label == "" || len(label) > 150 {
				t.Fatalf("agent label length %d", len(label))
			}
		default:
			t.Fatalf("unknown role %q", role)
		}
	})
}
