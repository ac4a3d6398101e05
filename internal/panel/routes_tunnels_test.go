package panel

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/tunnels"
)

// tunnelOf decodes the "tunnel" of a response.
func tunnelOf(t *testing.T, r result) api.Tunnel {
	t.Helper()
	var body struct {
		Tunnel api.Tunnel `json:"tunnel"`
	}
	if err := json.Unmarshal([]byte(r.raw), &body); err != nil {
		t.Fatalf("decode tunnel: %v (%s)", err, r.raw)
	}
	return body.Tunnel
}

func listTunnels(t *testing.T, e *relayEnv, hdr http.Header) []api.Tunnel {
	t.Helper()
	r := e.do("GET", "/api/tunnels", "", hdr)
	r.expect(t, 200, "")
	var body struct {
		Tunnels []api.Tunnel `json:"tunnels"`
	}
	if err := json.Unmarshal([]byte(r.raw), &body); err != nil {
		t.Fatal(err)
	}
	return body.Tunnels
}

func TestTunnelLifecycleAdmin(t *testing.T) {
	e := newRelayEnv(t)
	e.newAgent(t, "home")
	admin := adminHeaders()

	r := e.do("POST", "/api/tunnels", `{"subdomain":"app","port":8080,"description":"My app","agentLabel":"home","accessMode":"restricted","allowedUsers":["alice"],"allowedGroups":["ops"],"unknown":"dropped"}`, admin)
	r.expect(t, 201, "")
	if r.body["ok"] != true {
		t.Fatalf("ok missing: %s", r.raw)
	}
	tun := tunnelOf(t, r)
	if tun.Subdomain != "app" || tun.FQDN != "app.example.com" || tun.AgentLabel != "home" || tun.Port != 8080 ||
		tun.TargetHost != "127.0.0.1" || tun.Type != "app" || tun.AccessMode != "restricted" ||
		tun.Description == nil || *tun.Description != "My app" || !tun.IsEnabled() || tun.RelayPort != config.DefaultRelayPortMin {
		t.Fatalf("unexpected tunnel %+v", tun)
	}
	if strings.Contains(r.raw, "unknown") {
		t.Fatalf("unknown key echoed: %s", r.raw)
	}
	if got := e.aclPorts(t, "home"); !slices.Equal(got, []int{tun.RelayPort}) {
		t.Fatalf("acl ports %v", got)
	}
	if en, ok := e.vhosts.isEnabled("portlama-app-app"); !en || !ok {
		t.Fatal("vhost not written")
	}

	// A second tunnel; the list is newest first.
	e.advance(time.Second)
	r = e.do("POST", "/api/tunnels", `{"subdomain":"second","port":9000,"targetHost":"fd00::5"}`, admin)
	r.expect(t, 201, "")
	second := tunnelOf(t, r)
	if second.AgentLabel != "home" { // the only active agent owns it
		t.Fatalf("owner %q", second.AgentLabel)
	}
	list := listTunnels(t, e, admin)
	if len(list) != 2 || list[0].ID != second.ID || list[1].ID != tun.ID {
		t.Fatalf("list order %+v", list)
	}

	// Toggle off: vhost disabled, relay port leaves the ACL.
	r = e.do("PATCH", "/api/tunnels/"+tun.ID, `{"enabled":false}`, admin)
	r.expect(t, 200, "")
	if tunnelOf(t, r).IsEnabled() {
		t.Fatal("still enabled")
	}
	if en, _ := e.vhosts.isEnabled("portlama-app-app"); en {
		t.Fatal("vhost still enabled")
	}
	if got := e.aclPorts(t, "home"); !slices.Equal(got, []int{second.RelayPort}) {
		t.Fatalf("acl ports after disable %v", got)
	}
	// Access mode change.
	r = e.do("PATCH", "/api/tunnels/"+tun.ID, `{"accessMode":"public"}`, admin)
	r.expect(t, 200, "")
	if got := tunnelOf(t, r); got.AccessMode != "public" || got.IsEnabled() {
		t.Fatalf("after patch %+v", got)
	}

	e.do("DELETE", "/api/tunnels/"+tun.ID, "", admin).expect(t, 200, `{"ok":true}`)
	e.do("DELETE", "/api/tunnels/"+tun.ID, "", admin).expect(t, 404, `{"error":"Tunnel not found"}`)
	e.do("PATCH", "/api/tunnels/"+tun.ID, `{"enabled":true}`, admin).expect(t, 404, `{"error":"Tunnel not found"}`)
	if _, ok := e.vhosts.isEnabled("portlama-app-app"); ok {
		t.Fatal("vhost not removed")
	}
	if list := listTunnels(t, e, admin); len(list) != 1 || list[0].ID != second.ID {
		t.Fatalf("list after delete %+v", list)
	}
}

func TestTunnelCreateRules(t *testing.T) {
	e := newRelayEnv(t)
	admin := adminHeaders()
	// No agent at all: the owner cannot be chosen.
	e.do("POST", "/api/tunnels", `{"subdomain":"app","port":8080}`, admin).
		expect(t, 400, `{"error":"agentLabel is required unless exactly one active agent exists"}`)
	e.newAgent(t, "home")
	writer := e.newAgent(t, "writer", api.CapTunnelsWrite)
	e.do("POST", "/api/tunnels", `{"subdomain":"app","port":8080}`, admin).
		expect(t, 400, `{"error":"agentLabel is required unless exactly one active agent exists"}`)
	e.do("POST", "/api/tunnels", `{"subdomain":"app","port":8080,"agentLabel":"ghost"}`, admin).
		expect(t, 400, `{"error":"Unknown agent 'ghost'"}`)
	e.do("POST", "/api/tunnels", `{"subdomain":"panel","port":8080,"agentLabel":"home"}`, admin).
		expect(t, 400, `{"error":"Subdomain 'panel' is reserved"}`)
	e.do("POST", "/api/tunnels", `{"subdomain":"agent-x","port":8080,"agentLabel":"home"}`, admin).
		expect(t, 400, `{"error":"Subdomain prefix 'agent-' is reserved for agent panel tunnels"}`)
	e.do("POST", "/api/tunnels", `{"subdomain":"app","port":8080,"agentLabel":"home"}`, admin).expect(t, 201, "")
	e.do("POST", "/api/tunnels", `{"subdomain":"app","port":8081,"agentLabel":"writer"}`, admin).
		expect(t, 400, `{"error":"Subdomain 'app' is already in use"}`)
	e.do("POST", "/api/tunnels", `{"subdomain":"app2","port":8080,"agentLabel":"home"}`, admin).
		expect(t, 400, `{"error":"Port 8080 is already in use by another tunnel"}`)
	// The same local port for another agent is fine.
	e.do("POST", "/api/tunnels", `{"subdomain":"app2","port":8080,"agentLabel":"writer"}`, admin).expect(t, 201, "")

	// Agents: public access is admin-only; they own what they create.
	e.do("POST", "/api/tunnels", `{"subdomain":"pub","port":8082,"accessMode":"public"}`, writer.headers()).
		expect(t, 403, `{"error":"Only administrators can set tunnel access mode to public"}`)
	e.do("POST", "/api/tunnels", `{"subdomain":"pub","port":8082,"agentLabel":"home"}`, writer.headers()).
		expect(t, 403, `{"error":"Agents can only create tunnels for their own label"}`)
	e.do("POST", "/api/tunnels", `{"subdomain":"agent-writer","port":8082,"type":"panel"}`, writer.headers()).
		expect(t, 403, `{"error":"Cannot create panel tunnel without panel:expose capability"}`)
	r := e.do("POST", "/api/tunnels", `{"subdomain":"mine","port":8082,"agentLabel":"writer"}`, writer.headers())
	r.expect(t, 201, "")
	if got := tunnelOf(t, r); got.AgentLabel != "writer" {
		t.Fatalf("owner %q", got.AgentLabel)
	}

	// nginx failure: 500 with the step, nothing kept.
	e.vhosts.failNext(errFailNginx)
	e.do("POST", "/api/tunnels", `{"subdomain":"broken","port":8090,"agentLabel":"home"}`, admin).
		expect(t, 500, `{"error":"Failed to create tunnel","details":"nginx: Nginx config test failed after writing vhost for broken.example.com: unknown directive"}`)
	for _, x := range listTunnels(t, e, admin) {
		if x.Subdomain == "broken" {
			t.Fatal("failed tunnel kept")
		}
	}

	// Domain and e-mail must be configured.
	if _, err := e.store.Update(func(c *config.PanelConfig) error { c.Email = nil; return nil }); err != nil {
		t.Fatal(err)
	}
	e.do("POST", "/api/tunnels", `{"subdomain":"late","port":8091,"agentLabel":"home"}`, admin).
		expect(t, 400, `{"error":"Domain and email must be configured before creating tunnels"}`)
}

func TestTunnelNoFreeRelayPort(t *testing.T) {
	e := newRelayEnv(t)
	e.newAgent(t, "home")
	if _, err := e.store.Update(func(c *config.PanelConfig) error {
		c.RelayPortRange = config.PortRange{Min: 20001, Max: 20001}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e.do("POST", "/api/tunnels", `{"subdomain":"a","port":8080}`, adminHeaders()).expect(t, 201, "")
	e.do("POST", "/api/tunnels", `{"subdomain":"b","port":8081}`, adminHeaders()).
		expect(t, 409, `{"error":"No free relay port in the configured range"}`)
}

func TestTunnelCapabilities(t *testing.T) {
	e := newRelayEnv(t)
	reader := e.newAgent(t, "reader")
	writer := e.newAgent(t, "writer", api.CapTunnelsWrite)
	r := e.do("POST", "/api/tunnels", `{"subdomain":"own","port":8080}`, writer.headers())
	r.expect(t, 201, "")
	id := tunnelOf(t, r).ID

	denied := `{"error":"Insufficient certificate capability","details":{"required":"tunnels:write","granted":["tunnels:read"]}}`
	e.do("POST", "/api/tunnels", `{"subdomain":"app","port":8080}`, reader.headers()).expect(t, 403, denied)
	e.do("PATCH", "/api/tunnels/"+id, `{"enabled":false}`, reader.headers()).expect(t, 403, denied)
	e.do("DELETE", "/api/tunnels/"+id, "", reader.headers()).expect(t, 403, denied)
	// tunnels:read suffices for the list and the agent's own configuration.
	if list := listTunnels(t, e, reader.headers()); len(list) != 0 {
		t.Fatalf("reader sees %+v", list)
	}
	e.do("GET", "/api/tunnels/agent-config", "", reader.headers()).expect(t, 200, "")
	e.do("GET", "/api/tunnels/mac-plist", "", reader.headers()).expect(t, 200, "")
	// panel:expose routes need panel:expose.
	e.do("GET", "/api/tunnels/agent-panel-status", "", reader.headers()).
		expect(t, 403, `{"error":"Insufficient certificate capability","details":{"required":"panel:expose","granted":["tunnels:read"]}}`)
	// The cross-origin check applies to state-changing tunnel routes.
	hdr := writer.headers()
	hdr.Set("Origin", "https://evil.example.net")
	e.do("DELETE", "/api/tunnels/"+id, "", hdr).expect(t, 403, `{"error":"Cross-origin request refused"}`)
	// Without proof of origin nothing is trusted.
	noProof := writer.headers()
	noProof.Del(HeaderProxySecret)
	e.do("GET", "/api/tunnels", "", noProof).expect(t, 403, "")
}

func TestTunnelAgentIsolation(t *testing.T) {
	e := newRelayEnv(t)
	a := e.newAgent(t, "alpha", api.CapTunnelsWrite, api.CapPanelExpose)
	b := e.newAgent(t, "beta", api.CapTunnelsWrite, api.CapPanelExpose)
	r := e.do("POST", "/api/tunnels", `{"subdomain":"alpha-app","port":8080}`, a.headers())
	r.expect(t, 201, "")
	ta := tunnelOf(t, r)
	e.do("POST", "/api/tunnels", `{"subdomain":"beta-app","port":8080}`, b.headers()).expect(t, 201, "")

	for _, x := range listTunnels(t, e, b.headers()) {
		if x.AgentLabel != "beta" {
			t.Fatalf("beta sees %+v", x)
		}
	}
	if n := len(listTunnels(t, e, adminHeaders())); n != 2 {
		t.Fatalf("admin sees %d tunnels", n)
	}
	notFound := `{"error":"Tunnel not found"}`
	e.do("PATCH", "/api/tunnels/"+ta.ID, `{"enabled":false}`, b.headers()).expect(t, 404, notFound)
	e.do("DELETE", "/api/tunnels/"+ta.ID, "", b.headers()).expect(t, 404, notFound)
	// Untouched.
	list := listTunnels(t, e, a.headers())
	if len(list) != 1 || !list[0].IsEnabled() {
		t.Fatalf("alpha's tunnel changed: %+v", list)
	}
	// beta's agent-config does not carry alpha's tunnel.
	r = e.do("GET", "/api/tunnels/agent-config", "", b.headers())
	r.expect(t, 200, "")
	if strings.Contains(r.raw, "alpha") || strings.Contains(r.raw, fmt.Sprintf(":%d:", ta.RelayPort)) {
		t.Fatalf("beta's config mentions alpha: %s", r.raw)
	}
}

func TestAgentConfig(t *testing.T) {
	e := newRelayEnv(t)
	home := e.newAgent(t, "home", api.CapTunnelsWrite)
	e.newAgent(t, "other", api.CapTunnelsWrite)
	admin := adminHeaders()
	mk := func(body string) api.Tunnel {
		e.advance(time.Second)
		r := e.do("POST", "/api/tunnels", body, admin)
		r.expect(t, 201, "")
		return tunnelOf(t, r)
	}
	t1 := mk(`{"subdomain":"one","port":8080,"agentLabel":"home"}`)
	t2 := mk(`{"subdomain":"two","port":3000,"targetHost":"fd00::5","agentLabel":"home"}`)
	off := mk(`{"subdomain":"off","port":4000,"agentLabel":"home"}`)
	mk(`{"subdomain":"notmine","port":5000,"agentLabel":"other"}`)
	t3 := mk(`{"subdomain":"three","port":6000,"targetHost":"nas.lan","agentLabel":"home"}`)
	e.do("PATCH", "/api/tunnels/"+off.ID, `{"enabled":false}`, admin).expect(t, 200, "")

	pw := e.password(t, "home")
	url := "https://tunnel.example.com:443"
	auth := "home:" + pw
	want := map[string]any{
		"domain":          "example.com",
		"chiselServerUrl": url,
		"auth":            auth,
		"fingerprint":     testFingerprint,
		"chiselArgs": []string{"client", "--auth", auth, "--fingerprint", testFingerprint, url,
			fmt.Sprintf("R:127.0.0.1:%d:127.0.0.1:8080", t1.RelayPort),
			fmt.Sprintf("R:127.0.0.1:%d:[fd00::5]:3000", t2.RelayPort),
			fmt.Sprintf("R:127.0.0.1:%d:nas.lan:6000", t3.RelayPort)},
		"tunnels": []map[string]any{
			{"id": t1.ID, "subdomain": "one", "fqdn": "one.example.com", "port": 8080, "targetHost": "127.0.0.1", "relayPort": t1.RelayPort, "type": "app"},
			{"id": t2.ID, "subdomain": "two", "fqdn": "two.example.com", "port": 3000, "targetHost": "fd00::5", "relayPort": t2.RelayPort, "type": "app"},
			{"id": t3.ID, "subdomain": "three", "fqdn": "three.example.com", "port": 6000, "targetHost": "nas.lan", "relayPort": t3.RelayPort, "type": "app"},
		},
	}
	wantJSON, _ := json.Marshal(want)
	r := e.do("GET", "/api/tunnels/agent-config", "", home.headers())
	r.expect(t, 200, string(wantJSON))
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("Cache-Control %q", cc)
	}
	if strings.Contains(r.raw, "tls-skip-verify") {
		t.Fatal("tls-skip-verify handed out")
	}
	// The ACL matches the enabled tunnels.
	if got := e.aclPorts(t, "home"); !slices.Equal(got, []int{t1.RelayPort, t2.RelayPort, t3.RelayPort}) {
		t.Fatalf("acl %v", got)
	}

	// An agent without tunnels gets just the connection arguments.
	e.newAgent(t, "empty")
	r = e.do("GET", "/api/tunnels/agent-config", "", agentHeaders("empty", mustSerial(t, e, "empty")))
	r.expect(t, 200, "")
	if args := r.body["chiselArgs"].([]any); len(args) != 6 {
		t.Fatalf("args %v", args)
	}
	if tl := r.body["tunnels"].([]any); len(tl) != 0 {
		t.Fatalf("tunnels %v", tl)
	}

	adminOnly := `{"error":"Agent label is required (must use agent certificate)"}`
	e.do("GET", "/api/tunnels/agent-config", "", admin).expect(t, 400, adminOnly)
	e.do("GET", "/api/tunnels/mac-plist", "", admin).expect(t, 400, adminOnly)

	if _, err := e.store.Update(func(c *config.PanelConfig) error { c.Domain = nil; return nil }); err != nil {
		t.Fatal(err)
	}
	e.do("GET", "/api/tunnels/agent-config", "", home.headers()).expect(t, 400, `{"error":"Domain not configured"}`)
	e.do("GET", "/api/tunnels/mac-plist", "", home.headers()).expect(t, 400, `{"error":"Domain not configured"}`)
}

func mustSerial(t *testing.T, e *relayEnv, label string) string {
	t.Helper()
	entry, err := e.agents.Lookup(label)
	if err != nil {
		t.Fatal(err)
	}
	return entry.Serial
}

func TestAgentConfigFailures(t *testing.T) {
	e := newRelayEnv(t)
	home := e.newAgent(t, "home")
	e.setFingerprintErr(errBoom)
	for path, msg := range map[string]string{"/api/tunnels/agent-config": "Failed to generate agent config", "/api/tunnels/mac-plist": "Failed to generate Mac plist"} {
		r := e.do("GET", path, "", home.headers())
		if r.status != 500 || r.body["error"] != msg || !strings.Contains(fmt.Sprint(r.body["details"]), "is the tunnel server running?") {
			t.Fatalf("%s without a fingerprint: %d %s", path, r.status, r.raw)
		}
	}
	e.setFingerprintErr(nil)
	// No tunnel credentials (e.g. acl.json lost): 500, no secret in the body.
	if err := e.acl.RemoveAgent(e.ctx, "home"); err != nil {
		t.Fatal(err)
	}
	r := e.do("GET", "/api/tunnels/agent-config", "", home.headers())
	r.expect(t, 500, "")
	if r.body["error"] != "Failed to generate agent config" {
		t.Fatalf("body %s", r.raw)
	}
}

func TestMacPlist(t *testing.T) {
	e := newRelayEnv(t)
	home := e.newAgent(t, "home")
	r := e.do("POST", "/api/tunnels", `{"subdomain":"one","port":8080}`, adminHeaders())
	r.expect(t, 201, "")
	tun := tunnelOf(t, r)

	r = e.do("GET", "/api/tunnels/mac-plist", "", home.headers())
	r.expect(t, 200, "")
	if ct := r.header.Get("Content-Type"); ct != "application/x-plist" {
		t.Fatalf("Content-Type %q", ct)
	}
	if cd := r.header.Get("Content-Disposition"); cd != `attachment; filename="com.portlama.chisel.plist"` {
		t.Fatalf("Content-Disposition %q", cd)
	}
	pw := e.password(t, "home")
	for _, want := range []string{
		"<string>/usr/local/bin/chisel</string>\n    <string>client</string>\n    <string>--tls-cert</string>",
		"<string>home:" + pw + "</string>",
		fmt.Sprintf("<string>R:127.0.0.1:%d:127.0.0.1:8080</string>", tun.RelayPort),
		"<string>com.portlama.chisel</string>",
	} {
		if !strings.Contains(r.raw, want) {
			t.Fatalf("plist lacks %q:\n%s", want, r.raw)
		}
	}

	r = e.do("GET", "/api/tunnels/mac-plist?format=json", "", home.headers())
	r.expect(t, 200, "")
	if !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("Content-Type %q", r.header.Get("Content-Type"))
	}
	if r.body["plist"] != tunnels.MacPlist(mustAgentConfig(t, e, home).ChiselArgs) {
		t.Fatalf("json plist differs")
	}
	ins, _ := r.body["instructions"].(map[string]any)
	for _, k := range []string{"download", "install", "uninstall", "logs", "status", "prerequisite", "certificate"} {
		if s, _ := ins[k].(string); s == "" {
			t.Fatalf("instruction %q missing: %v", k, ins)
		}
	}
}

func mustAgentConfig(t *testing.T, e *relayEnv, a agentCert) api.AgentConfig {
	t.Helper()
	r := e.do("GET", "/api/tunnels/agent-config", "", a.headers())
	r.expect(t, 200, "")
	var cfg api.AgentConfig
	if err := json.Unmarshal([]byte(r.raw), &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestTunnelSchema(t *testing.T) {
	e := newRelayEnv(t)
	e.newAgent(t, "home")
	admin := adminHeaders()
	long := func(n int) string { return strings.Repeat("a", n) }
	users := make([]string, 101)
	for i := range users {
		users[i] = fmt.Sprintf("u%03d", i)
	}
	many, _ := json.Marshal(users)
	cases := []struct {
		name, body, path string
	}{
		{"port as string", `{"subdomain":"x","port":"8080"}`, `["port"]`},
		{"port fraction", `{"subdomain":"x","port":8080.5}`, `["port"]`},
		{"port low", `{"subdomain":"x","port":1023}`, `["port"]`},
		{"port high", `{"subdomain":"x","port":65536}`, `["port"]`},
		{"port bool", `{"subdomain":"x","port":true}`, `["port"]`},
		{"port null", `{"subdomain":"x","port":null}`, `["port"]`},
		{"port missing", `{"subdomain":"x"}`, `["port"]`},
		{"subdomain missing", `{"port":8080}`, `["subdomain"]`},
		{"subdomain upper", `{"subdomain":"App","port":8080}`, `["subdomain"]`},
		{"subdomain number", `{"subdomain":12,"port":8080}`, `["subdomain"]`},
		{"subdomain too long", `{"subdomain":"` + long(64) + `","port":8080}`, `["subdomain"]`},
		{"subdomain dot", `{"subdomain":"a.b","port":8080}`, `["subdomain"]`},
		{"targetHost scheme", `{"subdomain":"x","port":8080,"targetHost":"http://x"}`, `["targetHost"]`},
		{"targetHost port", `{"subdomain":"x","port":8080,"targetHost":"host:80"}`, `["targetHost"]`},
		{"targetHost brackets", `{"subdomain":"x","port":8080,"targetHost":"[::1]"}`, `["targetHost"]`},
		{"targetHost upper", `{"subdomain":"x","port":8080,"targetHost":"NAS"}`, `["targetHost"]`},
		{"description long", `{"subdomain":"x","port":8080,"description":"` + long(201) + `"}`, `["description"]`},
		{"description null", `{"subdomain":"x","port":8080,"description":null}`, `["description"]`},
		{"type plugin", `{"subdomain":"x","port":8080,"type":"plugin"}`, `["type"]`},
		{"agentLabel upper", `{"subdomain":"x","port":8080,"agentLabel":"Home"}`, `["agentLabel"]`},
		{"agentLabel colon", `{"subdomain":"x","port":8080,"agentLabel":"a:b"}`, `["agentLabel"]`},
		{"accessMode", `{"subdomain":"x","port":8080,"accessMode":"open"}`, `["accessMode"]`},
		{"allowedUsers not array", `{"subdomain":"x","port":8080,"allowedUsers":"alice"}`, `["allowedUsers"]`},
		{"allowedUsers bad name", `{"subdomain":"x","port":8080,"allowedUsers":["Alice"]}`, `["allowedUsers",0]`},
		{"allowedUsers duplicate", `{"subdomain":"x","port":8080,"allowedUsers":["bob","bob"]}`, `["allowedUsers",1]`},
		{"allowedUsers too many", `{"subdomain":"x","port":8080,"allowedUsers":` + string(many) + `}`, `["allowedUsers"]`},
		{"allowedGroups comma", `{"subdomain":"x","port":8080,"allowedGroups":["a,b"]}`, `["allowedGroups",0]`},
		{"body array", `[1]`, `[]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.do("POST", "/api/tunnels", c.body, admin)
			r.expect(t, 400, "")
			if r.body["error"] != "Validation failed" || !slices.Contains(r.issuePaths(), c.path) {
				t.Fatalf("body %s, want issue at %s", r.raw, c.path)
			}
		})
	}
	e.do("POST", "/api/tunnels", "", admin).expect(t, 400, "")
	e.do("POST", "/api/tunnels", `{"subdomain":`, admin).expect(t, 400, `{"error":"Invalid JSON body"}`)
	e.do("POST", "/api/tunnels", `subdomain=x`, withContentType(admin, "application/x-www-form-urlencoded")).
		expect(t, 415, `{"error":"Unsupported Media Type"}`)
	// 8080.0 and 1e4 are not JSON integers (no coercion); nothing was
	// created by the refusals.
	for _, port := range []string{"8080.0", "8.08e3", "1e4"} {
		r := e.do("POST", "/api/tunnels", `{"subdomain":"ok","port":`+port+`}`, admin)
		r.expect(t, 400, "")
		if !slices.Contains(r.issuePaths(), `["port"]`) {
			t.Fatalf("port %s: %s", port, r.raw)
		}
	}
	if n := len(listTunnels(t, e, admin)); n != 0 {
		t.Fatalf("%d tunnels created by invalid bodies", n)
	}
	r := e.do("POST", "/api/tunnels", `{"subdomain":"ok","port":8080,"description":""}`, admin)
	r.expect(t, 201, "")
	tun := tunnelOf(t, r)
	if tun.Port != 8080 || tun.Description != nil {
		t.Fatalf("tunnel %+v", tun)
	}

	patchCases := []struct{ name, body, path string }{
		{"empty", `{}`, `[]`},
		{"only unknown", `{"port":8081}`, `[]`},
		{"enabled string", `{"enabled":"true"}`, `["enabled"]`},
		{"enabled number", `{"enabled":1}`, `["enabled"]`},
		{"accessMode", `{"accessMode":"everyone"}`, `["accessMode"]`},
		{"allowedGroups", `{"allowedGroups":[1]}`, `["allowedGroups",0]`},
	}
	for _, c := range patchCases {
		t.Run("patch "+c.name, func(t *testing.T) {
			r := e.do("PATCH", "/api/tunnels/"+tun.ID, c.body, admin)
			r.expect(t, 400, "")
			if r.body["error"] != "Validation failed" || !slices.Contains(r.issuePaths(), c.path) {
				t.Fatalf("body %s, want issue at %s", r.raw, c.path)
			}
		})
	}
	e.do("PATCH", "/api/tunnels/"+tun.ID, "", admin).expect(t, 400, "")
	for _, id := range []string{"not-a-uuid", tun.ID + "0", "{" + tun.ID[1:] + "}"} {
		r := e.do("PATCH", "/api/tunnels/"+id, `{"enabled":false}`, admin)
		r.expect(t, 400, "")
		if !slices.Contains(r.issuePaths(), `["id"]`) {
			t.Fatalf("id %s: %s", id, r.raw)
		}
		e.do("DELETE", "/api/tunnels/"+id, "", admin).expect(t, 400, "")
	}
	// Any 8-4-4-4-12 hex id is well formed: an unknown one is not found
	// (the nil UUID, another version, upper case).
	for _, id := range []string{"00000000-0000-0000-0000-000000000000", "00000000-0000-1000-8000-000000000000", strings.ToUpper("1b4e28ba-2fa1-4d2e-883f-0016d3cca427")} {
		e.do("PATCH", "/api/tunnels/"+id, `{"enabled":false}`, admin).expect(t, 404, `{"error":"Tunnel not found"}`)
		e.do("DELETE", "/api/tunnels/"+id, "", admin).expect(t, 404, `{"error":"Tunnel not found"}`)
	}
	// Ids compare case-insensitively.
	e.do("PATCH", "/api/tunnels/"+strings.ToUpper(tun.ID), `{"enabled":true}`, admin).expect(t, 200, "")
	// An unchanged body answers 200 and touches nothing.
	before := e.vhosts.callCount()
	e.do("PATCH", "/api/tunnels/"+tun.ID, `{"enabled":true}`, admin).expect(t, 200, "")
	if e.vhosts.callCount() != before {
		t.Fatal("unchanged patch touched nginx")
	}
	// Routes without a body accept {} and refuse other JSON values.
	e.do("GET", "/api/tunnels", "{}", admin).expect(t, 200, "")
	e.do("DELETE", "/api/tunnels/"+tun.ID, `[1]`, admin).expect(t, 400, "")
}

func withContentType(h http.Header, ct string) http.Header {
	c := h.Clone()
	c.Set("Content-Type", ct)
	return c
}

func TestTunnelPatchRules(t *testing.T) {
	e := newRelayEnv(t)
	a := e.newAgent(t, "home", api.CapTunnelsWrite)
	r := e.do("POST", "/api/tunnels", `{"subdomain":"app","port":8080}`, a.headers())
	r.expect(t, 201, "")
	id := tunnelOf(t, r).ID
	e.do("PATCH", "/api/tunnels/"+id, `{"accessMode":"public"}`, a.headers()).
		expect(t, 403, `{"error":"Only administrators can set tunnel access mode to public"}`)
	e.vhosts.failNext(errFailNginx)
	e.do("PATCH", "/api/tunnels/"+id, `{"enabled":false}`, a.headers()).
		expect(t, 500, `{"error":"Failed to toggle tunnel","details":"nginx: Nginx config test failed after disabling vhost portlama-app-app: unknown directive"}`)
	if list := listTunnels(t, e, a.headers()); !list[0].IsEnabled() {
		t.Fatal("failed toggle saved")
	}
	e.do("PATCH", "/api/tunnels/"+id, `{"allowedUsers":["alice"],"accessMode":"restricted"}`, a.headers()).expect(t, 200, "")
	e.vhosts.failNext(errFailNginx)
	e.do("DELETE", "/api/tunnels/"+id, "", a.headers()).
		expect(t, 500, `{"error":"Failed to delete tunnel","details":"Nginx config test failed after removing vhost portlama-app-app: unknown directive"}`)
	if len(listTunnels(t, e, a.headers())) != 1 {
		t.Fatal("tunnel removed despite failure")
	}
}

func TestAgentPanelTunnel(t *testing.T) {
	e := newRelayEnv(t)
	a := e.newAgent(t, "home", api.CapPanelExpose)
	plain := e.newAgent(t, "plain", api.CapTunnelsWrite)
	admin := adminHeaders()
	off := `{"enabled":false,"fqdn":null,"port":null}`
	adminOnly := `{"error":"Agent label is required (must use agent certificate)"}`

	e.do("GET", "/api/tunnels/agent-panel-status", "", admin).expect(t, 200, off)
	e.do("GET", "/api/tunnels/agent-panel-status", "", a.headers()).expect(t, 200, off)
	e.do("POST", "/api/tunnels/expose-panel", `{"port":9393}`, admin).expect(t, 400, adminOnly)
	e.do("DELETE", "/api/tunnels/retract-panel", "", admin).expect(t, 400, adminOnly)
	e.do("POST", "/api/tunnels/expose-panel", `{"port":"9393"}`, a.headers()).expect(t, 400, "")
	e.do("POST", "/api/tunnels/expose-panel", `{}`, a.headers()).expect(t, 400, "")
	e.do("POST", "/api/tunnels/expose-panel", `{"port":9393}`, plain.headers()).expect(t, 403, "")
	e.do("DELETE", "/api/tunnels/retract-panel", "", a.headers()).
		expect(t, 404, `{"error":"No panel tunnel found for this agent"}`)

	r := e.do("POST", "/api/tunnels/expose-panel", `{"port":9393}`, a.headers())
	r.expect(t, 201, "")
	pt := tunnelOf(t, r)
	if pt.Type != "panel" || pt.Subdomain != "agent-home" || pt.AgentLabel != "home" || pt.Port != 9393 ||
		pt.Description == nil || *pt.Description != "Agent management panel for home" || pt.AccessMode != "" || pt.AllowedUsers != nil {
		t.Fatalf("panel tunnel %+v", pt)
	}
	if _, ok := e.vhosts.isEnabled("portlama-agent-panel-agent-home"); !ok {
		t.Fatal("panel vhost not written")
	}
	r = e.do("POST", "/api/tunnels/expose-panel", `{"port":9394}`, a.headers())
	r.expect(t, 409, "")
	if r.body["error"] != "Agent panel tunnel already exists" || tunnelOf(t, r).ID != pt.ID {
		t.Fatalf("conflict body %s", r.raw)
	}
	e.do("GET", "/api/tunnels/agent-panel-status", "", a.headers()).
		expect(t, 200, `{"enabled":true,"fqdn":"agent-home.example.com","port":9393}`)
	// The panel tunnel is in agent-config like any enabled tunnel.
	cfg := mustAgentConfig(t, e, a)
	if len(cfg.Tunnels) != 1 || cfg.Tunnels[0].Type != "panel" {
		t.Fatalf("agent-config tunnels %+v", cfg.Tunnels)
	}
	// Panel tunnels have no access mode.
	e.do("PATCH", "/api/tunnels/"+pt.ID, `{"accessMode":"restricted"}`, admin).
		expect(t, 400, `{"error":"Panel tunnels have no access mode"}`)
	// Admin toggles it off and on: status follows.
	e.do("PATCH", "/api/tunnels/"+pt.ID, `{"enabled":false}`, admin).expect(t, 200, "")
	e.do("GET", "/api/tunnels/agent-panel-status", "", a.headers()).
		expect(t, 200, `{"enabled":false,"fqdn":"agent-home.example.com","port":9393}`)

	e.vhosts.failNext(errFailNginx)
	e.do("DELETE", "/api/tunnels/retract-panel", "", a.headers()).
		expect(t, 500, `{"error":"Failed to retract agent panel","details":"Nginx config test failed after removing vhost portlama-agent-panel-agent-home: unknown directive"}`)
	e.do("DELETE", "/api/tunnels/retract-panel", "", a.headers()).expect(t, 200, `{"ok":true}`)
	e.do("GET", "/api/tunnels/agent-panel-status", "", a.headers()).expect(t, 200, off)
	if _, ok := e.vhosts.isEnabled("portlama-agent-panel-agent-home"); ok {
		t.Fatal("panel vhost not removed")
	}
}

func TestAdminPanelTunnelRules(t *testing.T) {
	e := newRelayEnv(t)
	e.newAgent(t, "home")
	e.do("POST", "/api/tunnels", `{"subdomain":"agent-other","port":9393,"type":"panel"}`, adminHeaders()).
		expect(t, 400, `{"error":"Panel tunnel subdomain must be 'agent-home'"}`)
	r := e.do("POST", "/api/tunnels", `{"subdomain":"agent-home","port":9393,"type":"panel","accessMode":"public"}`, adminHeaders())
	r.expect(t, 201, "")
	if tunnelOf(t, r).AccessMode != "" {
		t.Fatalf("panel tunnel got an access mode: %s", r.raw)
	}
	// An agent without panel:expose cannot delete or toggle it.
	home, _ := e.agents.Lookup("home")
	if _, err := e.agents.UpdateCapabilities("home", []string{api.CapTunnelsWrite}); err != nil {
		t.Fatal(err)
	}
	hdr := agentHeaders("home", home.Serial)
	id := tunnelOf(t, r).ID
	e.do("DELETE", "/api/tunnels/"+id, "", hdr).
		expect(t, 403, `{"error":"Cannot delete panel tunnel without panel:expose capability"}`)
	e.do("PATCH", "/api/tunnels/"+id, `{"enabled":false}`, hdr).
		expect(t, 403, `{"error":"Cannot toggle panel tunnel without panel:expose capability"}`)
}

func TestTunnelRoutesGated(t *testing.T) {
	e := newRelayEnv(t)
	e.setStatus(config.StatusProvisioning)
	for _, rt := range []struct{ method, path string }{
		{"GET", "/api/tunnels"}, {"POST", "/api/tunnels"}, {"GET", "/api/tunnels/agent-config"},
		{"GET", "/api/tunnels/mac-plist"}, {"GET", "/api/tunnels/agent-panel-status"},
	} {
		r := e.do(rt.method, rt.path, "", adminHeaders())
		r.expect(t, 503, `{"error":"Onboarding not complete","onboardingStatus":"PROVISIONING"}`)
	}
}

// A panel is never half-wired: New names every missing dependency.
func TestNewRefusesMissingDependencies(t *testing.T) {
	h := newHarness(t, config.StatusCompleted)
	full := FromRelay(h.svc, "1", nil)
	if _, err := New(full); err != nil {
		t.Fatal(err)
	}
	for name, drop := range map[string]func(*Config){
		"Relay.Tunnels":    func(c *Config) { c.Relay.Tunnels = nil },
		"Relay.Credential": func(c *Config) { c.Relay.Credential = nil },
		"Relay.Timers":     func(c *Config) { c.Relay.Timers = nil },
		"Relay.RenewCert":  func(c *Config) { c.Relay.RenewCert = nil },
		"Auth.IPVhost":     func(c *Config) { c.Auth.IPVhost = nil },
		"Auth.Invitations": func(c *Config) { c.Auth.Invitations = nil },
		"Provisioning":     func(c *Config) { c.Provisioning = nil },
		"Revocations":      func(c *Config) { c.Revocations = nil },
		"Resolver":         func(c *Config) { c.Resolver = nil },
	} {
		c := full
		drop(&c)
		if _, err := New(c); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("without %s: %v", name, err)
		}
	}
}

// FuzzTunnelBody runs the tunnel body schemas on arbitrary JSON: they must
// never panic, never accept a port that is not an integral JSON number in
// 1024–65535, and whatever they accept must decode into the handler's body.
func FuzzTunnelBody(f *testing.F) {
	for _, s := range []string{
		`{"subdomain":"app","port":8080}`,
		`{"subdomain":"app","port":"8080"}`,
		`{"subdomain":"app","port":8080.5}`,
		`{"subdomain":"app","port":8.08e3}`,
		`{"subdomain":"app","port":1e400}`,
		`{"subdomain":"app","port":-0}`,
		`{"subdomain":"app","port":65535,"targetHost":"fd00::5","allowedUsers":["a1","b2"],"accessMode":"restricted"}`,
		`{"enabled":true,"allowedGroups":["x.y"]}`,
		`{"port":[8080],"subdomain":{"a":1}}`,
		`null`, `[]`, `"x"`, `{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := ParseJSON(data)
		if err != nil {
			return
		}
		for _, schema := range []*ObjectSchema{createTunnelSchema, patchTunnelSchema, exposePanelSchema} {
			clean, issues := Validate(schema, v)
			if len(issues) > 0 {
				continue
			}
			m := v.(map[string]any)
			if raw, ok := m["port"]; ok && schema != patchTunnelSchema {
				num, ok := raw.(json.Number)
				if !ok {
					t.Fatalf("accepted non-number port %#v", raw)
				}
				p, ok := integral(num)
				if !ok || p < 1024 || p > 65535 || strings.ContainsAny(string(num), ".eE") {
					t.Fatalf("accepted port %s", num)
				}
				if clean.(map[string]any)["port"] != p {
					t.Fatalf("cleaned port %v, want %d", clean.(map[string]any)["port"], p)
				}
			}
			for k := range clean.(map[string]any) {
				if _, ok := m[k]; !ok {
					t.Fatalf("cleaned body invented key %q", k)
				}
			}
			var cb api.CreateTunnelRequest
			var pb api.UpdateTunnelRequest
			if err := remarshal(clean, &cb); schema == createTunnelSchema && err != nil {
				t.Fatalf("decode accepted create body: %v", err)
			}
			if err := remarshal(clean, &pb); schema == patchTunnelSchema && err != nil {
				t.Fatalf("decode accepted patch body: %v", err)
			}
		}
	})
}
