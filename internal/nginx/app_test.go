package nginx

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

func (rl *relay) appURL(sub, path string) string {
	return "https://" + sub + "." + testDomain + ":" + strconv.Itoa(rl.addrs.HTTPSPort) + path
}

func (rl *relay) writeApp(t *testing.T, sub string, port int, public bool) {
	t.Helper()
	if err := rl.mgr.Apply(ctxT(t), rl.renderApp(t, sub, port, public)...); err != nil {
		t.Fatal(err)
	}
}

// renderApp renders an app as rl.wildcard says: its own server block, or
// the shared wildcard server and the app's upstream with its route.
func (rl *relay) renderApp(t *testing.T, sub string, port int, public bool) []Vhost {
	t.Helper()
	p := AppParams{Domain: testDomain, Subdomain: sub, RelayPort: port, Public: public, TLS: rl.tls()}
	if rl.wildcard {
		shared, v, err := rl.r.WildcardApp(p)
		if err != nil {
			t.Fatal(err)
		}
		return []Vhost{shared, v}
	}
	v, err := rl.r.App(p)
	if err != nil {
		t.Fatal(err)
	}
	return []Vhost{v}
}

// appModes runs test once with apps in server blocks of their own and once
// served by the shared wildcard server (the test certificate covers
// *.demo.localhost).
func appModes(t *testing.T, test func(t *testing.T, wildcard bool)) {
	for _, m := range []struct {
		name     string
		wildcard bool
	}{{"own server", false}, {"wildcard", true}} {
		t.Run(m.name, func(t *testing.T) { test(t, m.wildcard) })
	}
}

func TestPublicAppProxiesWithKeepalive(t *testing.T) { appModes(t, testPublicAppProxiesWithKeepalive) }

func testPublicAppProxiesWithKeepalive(t *testing.T, wildcard bool) {
	rl := startRelay(t, nil)
	rl.wildcard = wildcard
	app := startEcho(t, "app")
	rl.writeApp(t, "web", app.port, true)
	c := rl.client(rl.addrs.HTTPSPort, nil)

	resp, body := get(t, c, rl.appURL("web", "/hello?x=1"), map[string]string{
		"Remote-User":             "mallory",
		"X-SSL-Client-Verify":     "SUCCESS",
		"X-Portlama-Proxy-Secret": testSecret,
		"Cookie":                  "a=1; portlama_session=topsecret; b=2",
	})
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if resp.Header.Get("Strict-Transport-Security") != "max-age=31536000" {
		t.Errorf("HSTS missing: %v", resp.Header)
	}
	e := decodeEcho(t, body)
	if e.Name != "app" || e.Path != "/hello?x=1" {
		t.Fatalf("backend saw %+v", e)
	}
	for _, k := range []string{"Remote-User", "X-Ssl-Client-Verify", "X-Portlama-Proxy-Secret"} {
		if v, ok := e.Headers[k]; ok {
			t.Errorf("%s reached the app: %q", k, v)
		}
	}
	if got := e.Headers.Get("Cookie"); got != "a=1; b=2" {
		t.Errorf("Cookie at the app = %q, want %q", got, "a=1; b=2")
	}
	if e.Headers.Get("Host") != "" && e.Headers.Get("X-Forwarded-Proto") != "https" {
		t.Errorf("standard headers: %v", e.Headers)
	}

	// Upstream keepalive: many sequential requests over few connections.
	for i := 0; i < 20; i++ {
		if resp, _ := get(t, c, rl.appURL("web", "/"), nil); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
	}
	conns, reqs := app.connections()
	if reqs != 21 || conns > 2 {
		t.Errorf("upstream connections = %d for %d requests; want reuse (keepalive)", conns, reqs)
	}
}

func TestCookieStripping(t *testing.T) { appModes(t, testCookieStripping) }

func testCookieStripping(t *testing.T, wildcard bool) {
	rl := startRelay(t, nil)
	rl.wildcard = wildcard
	app := startEcho(t, "app")
	rl.writeApp(t, "web", app.port, true)
	c := rl.client(rl.addrs.HTTPSPort, nil)
	for _, tc := range []struct{ in, want string }{
		{"portlama_session=x", ""},
		{"portlama_session=x; a=1", "a=1"},
		{"a=1; portlama_session=x", "a=1"},
		{"a=1;portlama_session=x;b=2", "a=1;b=2"},
		{"portlama_session=x; a=1; portlama_session=y", ""},
		{"a=1; b=2", "a=1; b=2"},
		{"xportlama_session=1; a=2", "xportlama_session=1; a=2"},
	} {
		_, body := get(t, c, rl.appURL("web", "/"), map[string]string{"Cookie": tc.in})
		got := decodeEcho(t, body).Headers.Get("Cookie")
		if got != tc.want {
			t.Errorf("Cookie %q → %q, want %q", tc.in, got, tc.want)
		}
		if strings.Contains(got, "portlama_session=x") || strings.Contains(got, "portlama_session=y") {
			t.Errorf("session cookie leaked: %q", got)
		}
	}
	// Two Cookie header lines (as HTTP/2 clients split them).
	req, _ := http.NewRequest("GET", rl.appURL("web", "/"), nil)
	req.Header["Cookie"] = []string{"a=1", "portlama_session=x", "b=2"}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	io.Copy(&sb, resp.Body)
	resp.Body.Close()
	h := decodeEcho(t, sb.String()).Headers
	if strings.Contains(strings.Join(h.Values("Cookie"), ";"), "portlama_session") {
		t.Errorf("session cookie leaked from split headers: %q", h.Values("Cookie"))
	}
}

// fakeAuth implements the auth-request contract: session "alice" → 200,
// session "bob" → 403, none → 401 with Location.
type fakeAuth struct {
	mu          sync.Mutex
	originalURL string
	method      string
	upgrade     string
	realIP      string
	calls       int
}

func (f *fakeAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/api/authz/auth-request":
		f.mu.Lock()
		f.originalURL = r.Header.Get("X-Original-URL")
		f.method = r.Header.Get("X-Original-Method")
		f.upgrade = r.Header.Get("X-Original-Upgrade")
		f.realIP = r.Header.Get("X-Real-IP")
		f.calls++
		f.mu.Unlock()
		ck, _ := r.Cookie("portlama_session")
		switch {
		case ck != nil && ck.Value == "alice":
			w.Header().Set("Remote-User", "alice")
			w.Header().Set("Remote-Groups", "admins,dev")
			w.Header().Set("Remote-Name", "Alice")
			w.Header().Set("Remote-Email", "alice@example.com")
			w.WriteHeader(200)
		case ck != nil && ck.Value == "bob":
			w.WriteHeader(403)
		default:
			w.Header().Set("Location", "https://auth."+testDomain+"/?rd="+url.QueryEscape(r.Header.Get("X-Original-URL")))
			w.WriteHeader(401)
		}
	case "/denied":
		w.WriteHeader(403)
		w.Write([]byte("ACCESS DENIED PAGE"))
	default:
		http.NotFound(w, r)
	}
}

func TestProtectedAppForwardAuth(t *testing.T) { appModes(t, testProtectedAppForwardAuth) }

func testProtectedAppForwardAuth(t *testing.T, wildcard bool) {
	fa := &fakeAuth{}
	rl := startRelay(t, fa)
	rl.wildcard = wildcard
	app := startEcho(t, "app")
	rl.writeApp(t, "secure", app.port, false)
	c := rl.client(rl.addrs.HTTPSPort, nil)
	u := rl.appURL("secure", "/page?q=1")

	t.Run("no session redirects to login", func(t *testing.T) {
		resp, _ := get(t, c, u, map[string]string{"Remote-User": "alice"})
		want := "https://auth." + testDomain + "/?rd=" + url.QueryEscape(u)
		if resp.StatusCode != 302 || resp.Header.Get("Location") != want {
			t.Errorf("got %d Location %q, want 302 %q", resp.StatusCode, resp.Header.Get("Location"), want)
		}
		if _, n := app.connections(); n != 0 {
			t.Errorf("app reached without a session")
		}
		fa.mu.Lock()
		defer fa.mu.Unlock()
		if fa.originalURL != u || fa.method != "GET" {
			t.Errorf("auth saw X-Original-URL %q method %q", fa.originalURL, fa.method)
		}
	})

	t.Run("WebSocket handshake passes X-Original-Upgrade and the real address", func(t *testing.T) {
		resp, _ := get(t, c, u, map[string]string{
			"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
			"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Origin": "https://evil." + testDomain,
			"X-Real-IP": "198.51.100.66", "X-Original-Upgrade": "none",
		})
		if resp.StatusCode != 302 {
			t.Errorf("status %d, want 302", resp.StatusCode)
		}
		fa.mu.Lock()
		defer fa.mu.Unlock()
		if fa.upgrade != "websocket" {
			t.Errorf("auth saw X-Original-Upgrade %q, want websocket", fa.upgrade)
		}
		if fa.realIP != "127.0.0.1" {
			t.Errorf("auth saw X-Real-IP %q, want 127.0.0.1 (not the client's)", fa.realIP)
		}
	})

	t.Run("plain request has no X-Original-Upgrade", func(t *testing.T) {
		resp, _ := get(t, c, u, map[string]string{"X-Original-Upgrade": "websocket"})
		if resp.StatusCode != 302 {
			t.Errorf("status %d, want 302", resp.StatusCode)
		}
		fa.mu.Lock()
		defer fa.mu.Unlock()
		if fa.upgrade != "" {
			t.Errorf("auth saw X-Original-Upgrade %q on a plain request", fa.upgrade)
		}
	})

	t.Run("forged Host does not change X-Original-URL", func(t *testing.T) {
		req, _ := http.NewRequest("GET", u, nil)
		req.Header.Set("X-Original-URL", "https://evil.example/")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		fa.mu.Lock()
		defer fa.mu.Unlock()
		if fa.originalURL != u {
			t.Errorf("X-Original-URL = %q", fa.originalURL)
		}
	})

	t.Run("rule denies", func(t *testing.T) {
		resp, body := get(t, c, u, map[string]string{"Cookie": "portlama_session=bob"})
		if resp.StatusCode != 403 || !strings.Contains(body, "ACCESS DENIED PAGE") {
			t.Errorf("got %d %q", resp.StatusCode, body)
		}
		if _, n := app.connections(); n != 0 {
			t.Errorf("app reached by a denied user")
		}
	})

	t.Run("session admits with identity from the auth server", func(t *testing.T) {
		resp, body := get(t, c, u, map[string]string{
			"Cookie":      "portlama_session=alice; theme=dark",
			"Remote-User": "mallory",
			"Remote-Name": "Mallory",
		})
		if resp.StatusCode != 200 {
			t.Fatalf("status %d %s", resp.StatusCode, body)
		}
		h := decodeEcho(t, body).Headers
		if h.Get("Remote-User") != "alice" || h.Get("Remote-Groups") != "admins,dev" ||
			h.Get("Remote-Name") != "Alice" || h.Get("Remote-Email") != "alice@example.com" {
			t.Errorf("identity headers: %v", h)
		}
		if len(h.Values("Remote-User")) != 1 {
			t.Errorf("Remote-User values: %q", h.Values("Remote-User"))
		}
		if h.Get("Cookie") != "theme=dark" {
			t.Errorf("Cookie at the app = %q", h.Get("Cookie"))
		}
	})
}

func TestRollbackKeepsServing(t *testing.T) { appModes(t, testRollbackKeepsServing) }

func testRollbackKeepsServing(t *testing.T, wildcard bool) {
	rl := startRelay(t, nil)
	rl.wildcard = wildcard
	a, b := startEcho(t, "a"), startEcho(t, "b")
	rl.writeApp(t, "web", a.port, true)
	c := rl.client(rl.addrs.HTTPSPort, nil)
	if _, body := get(t, c, rl.appURL("web", "/"), nil); decodeEcho(t, body).Name != "a" {
		t.Fatalf("before: %s", body)
	}
	name := AppVhostName("web")
	path := filepath.Join(rl.layout.NginxSitesAvailable(), name)
	good, _ := os.ReadFile(path)

	// A broken change is refused, rolled back, and nginx keeps serving.
	err := rl.mgr.WriteVhost(ctxT(t), name, "web."+testDomain, []byte("server { listen nonsense; }\n"))
	var te *TestError
	if !errors.As(err, &te) || !strings.HasPrefix(err.Error(), "Nginx config test failed after writing vhost for web."+testDomain+": ") {
		t.Fatalf("err = %v", err)
	}
	if now, _ := os.ReadFile(path); string(now) != string(good) {
		t.Errorf("vhost not restored:\n%s", now)
	}
	if _, err := os.Stat(path + ".bak"); !os.IsNotExist(err) {
		t.Errorf("backup left behind: %v", err)
	}
	if out, err := rl.inst.Test(ctxT(t)); err != nil {
		t.Fatalf("config broken after rollback: %s", out)
	}
	if _, body := get(t, rl.client(rl.addrs.HTTPSPort, nil), rl.appURL("web", "/"), nil); decodeEcho(t, body).Name != "a" {
		t.Fatalf("after failed change: %s", body)
	}

	// A new vhost that breaks the config is removed again, link included.
	err = rl.mgr.WriteVhost(ctxT(t), "portlama-app-other", "other."+testDomain, []byte("bogus;\n"))
	if !errors.As(err, &te) {
		t.Fatalf("err = %v", err)
	}
	for _, p := range []string{filepath.Join(rl.layout.NginxSitesAvailable(), "portlama-app-other"), filepath.Join(rl.layout.NginxSitesEnabled(), "portlama-app-other")} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s left behind", p)
		}
	}

	// A good change is in effect as soon as WriteVhost returns.
	rl.writeApp(t, "web", b.port, true)
	if _, body := get(t, rl.client(rl.addrs.HTTPSPort, nil), rl.appURL("web", "/"), nil); decodeEcho(t, body).Name != "b" {
		t.Fatalf("after good change: %s", body)
	}
}

func TestEnableDisableRemove(t *testing.T) { appModes(t, testEnableDisableRemove) }

func testEnableDisableRemove(t *testing.T, wildcard bool) {
	rl := startRelay(t, nil)
	rl.wildcard = wildcard
	a, b := startEcho(t, "a"), startEcho(t, "b")
	rl.writeApp(t, "one", a.port, true)
	rl.writeApp(t, "two", b.port, true)
	ok := func(sub string) bool {
		t.Helper()
		resp, err := rl.client(rl.addrs.HTTPSPort, nil).Get(rl.appURL(sub, "/"))
		if err != nil {
			return false // ssl_reject_handshake: no vhost for this name
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}
	if !ok("one") || !ok("two") {
		t.Fatal("apps not serving")
	}
	if err := rl.mgr.DisableVhost(ctxT(t), AppVhostName("one")); err != nil {
		t.Fatal(err)
	}
	if ok("one") || !ok("two") {
		t.Errorf("after disable: one=%v two=%v", ok("one"), ok("two"))
	}
	if _, err := os.Stat(filepath.Join(rl.layout.NginxSitesAvailable(), AppVhostName("one"))); err != nil {
		t.Errorf("disable removed the file: %v", err)
	}
	if en, _ := rl.mgr.VhostEnabled(AppVhostName("one")); en {
		t.Error("still enabled")
	}
	if err := rl.mgr.EnableVhost(ctxT(t), AppVhostName("one")); err != nil {
		t.Fatal(err)
	}
	if !ok("one") || !ok("two") {
		t.Error("after enable")
	}
	if err := rl.mgr.EnableVhost(ctxT(t), "portlama-app-missing"); err == nil {
		t.Error("enabling a missing vhost succeeded")
	}
	if err := rl.mgr.RemoveVhost(ctxT(t), AppVhostName("one")); err != nil {
		t.Fatal(err)
	}
	if ok("one") || !ok("two") {
		t.Error("after remove")
	}
	if ex, _ := rl.mgr.VhostExists(AppVhostName("one")); ex {
		t.Error("file still exists")
	}
	if err := rl.mgr.RemoveVhost(ctxT(t), AppVhostName("one")); err != nil {
		t.Errorf("second remove: %v", err)
	}
	for _, bad := range []string{"default", "portlama-", "portlama-../x", "portlama-A", "../portlama-x"} {
		if err := rl.mgr.RemoveVhost(ctxT(t), bad); err == nil {
			t.Errorf("RemoveVhost(%q) accepted", bad)
		}
	}
}

func TestMTLSVhostsAndCRL(t *testing.T) {
	rl := startRelay(t, nil)
	tun := startEcho(t, "tunnel")
	rl.addrs.Tunnel = tun.addr
	r, err := NewRenderer(rl.layout, rl.addrs)
	if err != nil {
		t.Fatal(err)
	}
	var vs []Vhost
	for _, f := range []func(string, TLSFiles) (Vhost, error){r.Tunnel, r.PanelDomain} {
		v, err := f(testDomain, rl.tls())
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	if err := rl.mgr.Apply(ctxT(t), vs...); err != nil {
		t.Fatal(err)
	}
	tunURL := "https://tunnel." + testDomain + ":" + strconv.Itoa(rl.addrs.HTTPSPort) + "/"
	panelURL := "https://panel." + testDomain + ":" + strconv.Itoa(rl.addrs.HTTPSPort) + "/api/x"
	// The tunnel vhost keeps nginx's plain 400; the panel answers 403.
	for _, c := range []struct {
		url  string
		want int
	}{{tunURL, 400}, {panelURL, 403}} {
		if resp, _ := get(t, rl.client(rl.addrs.HTTPSPort, nil), c.url, nil); resp.StatusCode != c.want {
			t.Errorf("%s without certificate: %d", c.url, resp.StatusCode)
		}
		if resp, _ := get(t, rl.client(rl.addrs.HTTPSPort, &rl.pki.foreign), c.url, nil); resp.StatusCode != c.want {
			t.Errorf("%s with foreign certificate: %d", c.url, resp.StatusCode)
		}
	}
	resp, body := get(t, rl.client(rl.addrs.HTTPSPort, &rl.pki.client), tunURL, map[string]string{"X-SSL-Client-Verify": "x",
		"X-Portlama-Tunnel-Secret": "forged", "X-Portlama-Tunnel-Client-Verify": "forged", "X-Portlama-Tunnel-Client-DN": "CN=agent:forged"})
	if resp.StatusCode != 200 {
		t.Fatalf("tunnel with certificate: %d", resp.StatusCode)
	}
	h := decodeEcho(t, body).Headers
	// The tunnel server's proof and identity headers come from nginx only.
	if v := h.Values("X-Portlama-Tunnel-Secret"); len(v) != 1 || v[0] != testSecret {
		t.Errorf("tunnel secret header = %q", v)
	}
	if v := h.Values("X-Portlama-Tunnel-Client-Verify"); len(v) != 1 || v[0] != "SUCCESS" {
		t.Errorf("tunnel verify header = %q", v)
	}
	if v := h.Values("X-Portlama-Tunnel-Client-Dn"); len(v) != 1 || !strings.Contains(v[0], "CN="+rl.pki.clientCert.Subject.CommonName) || strings.Contains(v[0], "forged") {
		t.Errorf("tunnel DN header = %q", v)
	}
	if _, ok := h["X-Portlama-Proxy-Secret"]; ok {
		t.Error("secret sent to the tunnel server")
	}
	if _, ok := h["X-Ssl-Client-Verify"]; ok {
		t.Error("certificate header sent to the tunnel server")
	}
	resp, body = get(t, rl.client(rl.addrs.HTTPSPort, &rl.pki.client), panelURL, nil)
	if resp.StatusCode != 200 || decodeEcho(t, body).Headers.Get("X-Ssl-Client-Verify") != "SUCCESS" {
		t.Fatalf("panel domain with certificate: %d %s", resp.StatusCode, body)
	}

	// Revoke the client certificate: after TestAndReload nginx refuses it.
	writeFile(t, filepath.Join(rl.layout.PKIDir(), "crl.pem"), rl.pki.crl(t, rl.pki.clientCert.SerialNumber), 0o644)
	if err := rl.mgr.TestAndReload(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{tunURL, panelURL, "https://127.0.0.1:" + strconv.Itoa(rl.addrs.PanelIPPort) + "/api/x"} {
		port, want := rl.addrs.HTTPSPort, 403
		if strings.Contains(u, "127.0.0.1") {
			port = rl.addrs.PanelIPPort
		}
		if u == tunURL {
			want = 400
		}
		if resp, _ := get(t, rl.client(port, &rl.pki.client), u, nil); resp.StatusCode != want {
			t.Errorf("%s with revoked certificate: %d", u, resp.StatusCode)
		}
	}
}

func TestHTTPVhostRedirectsAndServesACME(t *testing.T) {
	rl := startRelay(t, nil)
	writeFile(t, filepath.Join(rl.layout.ACMEWebroot, ".well-known", "acme-challenge", "tok123"), []byte("tok123.key"), 0o644)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	base := "http://127.0.0.1:" + strconv.Itoa(rl.addrs.HTTPPort)
	resp, err := c.Get(base + "/.well-known/acme-challenge/tok123")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := resp.Body.Read(buf)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(buf[:n]) != "tok123.key" {
		t.Errorf("challenge: %d %q", resp.StatusCode, buf[:n])
	}
	req, _ := http.NewRequest("GET", base+"/some/path?x=1", nil)
	req.Host = "app." + testDomain
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := "https://app." + testDomain + ":" + strconv.Itoa(rl.addrs.HTTPSPort) + "/some/path?x=1"
	if resp.StatusCode != 301 || resp.Header.Get("Location") != want {
		t.Errorf("redirect: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Unknown names get no certificate on the HTTPS port.
	if _, err := rl.client(rl.addrs.HTTPSPort, nil).Get("https://unknown." + testDomain + "/"); err == nil {
		t.Error("default server completed a TLS handshake")
	}
}
