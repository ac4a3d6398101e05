package panel

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/config"
)

func TestNotFound(t *testing.T) {
	h := newHarness(t, config.StatusCompleted)
	for _, p := range []string{"/api/nope", "/api/plugins/x", "/api/tickets", "/api/storage/a/b", "/api/gatekeeper/x",
		"/api/user-access/x", "/api/agents/plugins/report", "/api/system/update", "/api/"} {
		h.do("GET", p, "", adminHeaders()).expect(t, 404, `{"error":"Not found"}`)
		h.do("POST", p, "{}", adminHeaders()).expect(t, 404, `{"error":"Not found"}`)
	}
	// Known path, wrong method.
	h.do("POST", "/api/health", "", nil).expect(t, 404, `{"error":"Not found"}`)
	h.do("DELETE", "/api/system/stats", "", adminHeaders()).expect(t, 404, `{"error":"Not found"}`)
}

// Other paths are the web UI (internal/webui): its page for client-side
// routes, with its CSP, and no identity check (nginx demanded a certificate).
func TestNonAPIPathsServeWebUI(t *testing.T) {
	h := newHarness(t, config.StatusFresh)
	for _, p := range []string{"/", "/tunnels", "/onboarding/dns"} {
		r := h.do("GET", p, "", nil)
		if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") ||
			!strings.Contains(r.header.Get("Content-Security-Policy"), "default-src 'none'") || !strings.Contains(r.raw, "<html") {
			t.Fatalf("%s: %d %q %s", p, r.status, r.header.Get("Content-Type"), r.raw)
		}
	}
}

func TestPanicIs500WithoutStack(t *testing.T) {
	h := newHarness(t, config.StatusFresh)
	h.srv.Handle(Route{Method: "GET", Path: "/api/test/panic", Access: Public, Handler: func(c *Ctx) error {
		panic("secret detail " + testSecret)
	}})
	h.srv.Handle(Route{Method: "GET", Path: "/api/test/err", Access: Public, Handler: func(c *Ctx) error {
		return errBoom
	}})
	r := h.do("GET", "/api/test/panic", "", nil)
	r.expect(t, 500, `{"error":"Internal server error"}`)
	h.do("GET", "/api/test/err", "", nil).expect(t, 500, `{"error":"Internal server error"}`)
}

func TestRateLimit(t *testing.T) {
	h := newHarness(t, config.StatusFresh)
	from := func(ip string) http.Header {
		x := http.Header{}
		x.Set(HeaderProxySecret, testSecret)
		x.Set(HeaderRealIP, ip)
		return x
	}
	for i := 0; i < 100; i++ {
		if r := h.do("GET", "/api/health", "", from("198.51.100.5")); r.status != 200 {
			t.Fatalf("request %d: %d", i+1, r.status)
		}
	}
	h.do("GET", "/api/health", "", from("198.51.100.5")).expect(t, 429, `{"error":"Rate limit exceeded, retry in 1 minute"}`)
	h.do("GET", "/api/onboarding/status", "", from("198.51.100.5")).expect(t, 429, "")
	// Another client is unaffected.
	h.do("GET", "/api/health", "", from("198.51.100.6")).expect(t, 200, "")
	// Unproven X-Real-IP is ignored: the connection comes from loopback, which is exempt.
	unproven := http.Header{}
	unproven.Set(HeaderRealIP, "198.51.100.5")
	for i := 0; i < 120; i++ {
		if r := h.do("GET", "/api/health", "", unproven); r.status != 200 {
			t.Fatalf("loopback request %d: %d", i+1, r.status)
		}
	}
	// A proven loopback X-Real-IP is exempt as well.
	for i := 0; i < 110; i++ {
		if r := h.do("GET", "/api/health", "", from("127.0.0.1")); r.status != 200 {
			t.Fatalf("loopback X-Real-IP request %d: %d", i+1, r.status)
		}
	}
	// After a minute the window resets.
	h.advance(61 * time.Second)
	h.do("GET", "/api/health", "", from("198.51.100.5")).expect(t, 200, "")
}

func TestCrossOriginAndCORS(t *testing.T) {
	h := newHarness(t, config.StatusFresh)
	withOrigin := func(o string) http.Header {
		x := adminHeaders()
		x.Set("Origin", o)
		return x
	}
	const body = `{"domain":"example.com","email":"a@example.com"}`
	ipOrigin := "https://" + testIP + ":9292"
	for _, o := range []string{"https://evil.example", "http://" + testIP + ":9292", "https://" + testIP, "https://panel.example.com", "null"} {
		h.do("POST", "/api/onboarding/domain", body, withOrigin(o)).expect(t, 403, `{"error":"Cross-origin request refused"}`)
	}
	ws := withOrigin("https://evil.example")
	ws.Set("Upgrade", "websocket")
	ws.Set("Connection", "Upgrade")
	h.do("GET", "/api/onboarding/status", "", ws).expect(t, 403, `{"error":"Cross-origin request refused"}`)
	// GET from a foreign origin is answered but gets no CORS header.
	r := h.do("GET", "/api/onboarding/status", "", withOrigin("https://evil.example"))
	r.expect(t, 200, "")
	if r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("CORS header for a foreign origin")
	}
	r = h.do("POST", "/api/onboarding/domain", body, withOrigin(ipOrigin))
	r.expect(t, 200, "")
	if r.header.Get("Access-Control-Allow-Origin") != ipOrigin || r.header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("CORS headers: %v", r.header)
	}
	// Once the domain is set, https://panel.<d> is allowed too.
	h.do("POST", "/api/onboarding/domain", body, withOrigin("https://panel.example.com")).expect(t, 200, "")
	h.do("POST", "/api/onboarding/domain", body, withOrigin("https://auth.example.com")).expect(t, 403, "")
	// Requests without Origin are unaffected.
	h.do("POST", "/api/onboarding/domain", body, adminHeaders()).expect(t, 200, "")
	// Preflight.
	pre := http.Header{}
	pre.Set("Origin", ipOrigin)
	pre.Set("Access-Control-Request-Method", "POST")
	r = h.do("OPTIONS", "/api/onboarding/domain", "", pre)
	if r.status != 204 || !strings.Contains(r.header.Get("Access-Control-Allow-Methods"), "POST") {
		t.Fatalf("preflight: %d %v", r.status, r.header)
	}
}

func TestAllowedOrigins(t *testing.T) {
	d := "example.com"
	c := config.PanelConfig{IP: "1.2.3.4", Domain: &d}
	got := AllowedOrigins(c, config.Addrs{PanelIPPort: 9292, HTTPSPort: 8443}, "/api/invite/abc")
	want := []string{"https://1.2.3.4:9292", "https://panel.example.com:8443", "https://auth.example.com:8443"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("got %v", got)
	}
}

func TestDuplicateIdentityHeadersRefused(t *testing.T) {
	h := newHarness(t, config.StatusFresh)
	x := adminHeaders()
	x.Add(HeaderClientDN, "CN=agent:x")
	h.do("GET", "/api/onboarding/status", "", x).expect(t, 403, certRequired)
	x = adminHeaders()
	x.Add(HeaderClientVerify, "FAILED")
	h.do("GET", "/api/onboarding/status", "", x).expect(t, 403, certRequired)
}

func TestNewRefusesInvalidPanelJSON(t *testing.T) {
	h := newHarness(t, config.StatusFresh)
	cfg := FromRelay(h.svc, "1", nil)
	layout := cfg.Layout
	os.WriteFile(layout.PanelConfig(), []byte(`{"ip":"1.2.3.4","dataDir":"/x","relayPortRange":{"min":9000,"max":9500}}`), 0o640)
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "relayPortRange") {
		t.Fatalf("err = %v", err)
	}
	os.WriteFile(layout.PanelConfig(), []byte(`{"ip":"1.2.3.4",`), 0o640)
	if _, err := New(cfg); err == nil {
		t.Fatal("accepted unparsable panel.json")
	}
	os.Remove(layout.PanelConfig())
	if _, err := New(cfg); err == nil {
		t.Fatal("accepted missing panel.json")
	}
	if _, err := New(Config{Layout: layout}); err == nil {
		t.Fatal("accepted missing Revocations/Agents")
	}
	os.WriteFile(layout.PanelConfig(), []byte(`{"ip":"1.2.3.4","dataDir":"/x"}`), 0o640)
	if _, err := New(Config{Layout: layout, Revocations: &memRevocations{}, Agents: &memAgents{}, ProxySecret: "short"}); err == nil {
		t.Fatal("accepted a malformed proxy secret")
	}
	if _, err := New(cfg); err != nil {
		t.Fatal(err)
	}
	c, err := config.NewPanelStore(layout.PanelConfig()).Load()
	if err != nil || len(c.ServerID) != 36 {
		t.Fatalf("serverId not generated: %q %v", c.ServerID, err)
	}
	id := c.ServerID
	New(cfg)
	if c, _ := config.NewPanelStore(layout.PanelConfig()).Load(); c.ServerID != id {
		t.Fatal("serverId changed on restart")
	}
}

func TestReadProxySecret(t *testing.T) {
	dir := t.TempDir()
	p := dir + "/proxy-secret"
	os.WriteFile(p, []byte(testSecret+"\n"), 0o600)
	if s, err := ReadProxySecret(p); err != nil || s != testSecret {
		t.Fatalf("%q %v", s, err)
	}
	os.WriteFile(p, []byte("abc"), 0o600)
	if _, err := ReadProxySecret(p); err == nil {
		t.Fatal("short secret accepted")
	}
	if _, err := ReadProxySecret(dir + "/missing"); err == nil {
		t.Fatal("missing file accepted")
	}
}

func TestServeGracefulShutdown(t *testing.T) {
	h := newHarness(t, config.StatusFresh)
	started := make(chan struct{})
	release := make(chan struct{})
	h.srv.Handle(Route{Method: "GET", Path: "/api/test/slow", Access: Public, Handler: func(c *Ctx) error {
		close(started)
		<-release
		return c.OK(map[string]bool{"done": true})
	}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.srv.Serve(ctx, ln) }()
	url := "http://" + ln.Addr().String()
	resp, err := http.Get(url + "/api/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("health %d", resp.StatusCode)
	}
	slow := make(chan string, 1)
	go func() {
		resp, err := http.Get(url + "/api/test/slow")
		if err != nil {
			slow <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		slow <- string(b)
	}()
	<-started
	cancel()
	time.Sleep(50 * time.Millisecond)
	close(release)
	if got := <-slow; !strings.Contains(got, `"done":true`) {
		t.Fatalf("in-flight request cut off: %s", got)
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := http.Get(url + "/api/health"); err == nil {
		t.Fatal("still serving after shutdown")
	}
}

func TestHealthSurvivesBrokenPanelJSON(t *testing.T) {
	h := newHarness(t, config.StatusCompleted)
	os.WriteFile(h.store.Path(), []byte(`{"ip":`), 0o640)
	h.do("GET", "/api/health", "", nil).expect(t, 200, `{"status":"ok","version":"1.2.3"}`)
	h.do("GET", "/api/system/stats", "", adminHeaders()).expect(t, 500, `{"error":"Internal server error"}`)
	// The broken document is never overwritten.
	h.do("POST", "/api/onboarding/domain", `{"domain":"a.com","email":"a@a.com"}`, adminHeaders()).expect(t, 500, "")
	if data, _ := os.ReadFile(h.store.Path()); string(data) != `{"ip":` {
		t.Fatalf("broken panel.json overwritten: %s", data)
	}
}
