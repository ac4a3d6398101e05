package homeui

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/portlama/portlama/internal/agent"
	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/servers"
	"github.com/portlama/portlama/internal/testutil"
)

// startUI serves a UI for an empty home on a random loopback port.
func startUI(t *testing.T) *Server {
	t.Helper()
	dir := filepath.Join(t.TempDir(), ".portlama")
	tok, err := LoadToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	h := agent.Home{Dir: dir}
	s, err := Listen("127.0.0.1:0", Config{Home: h, Registry: servers.New(h, nil), Token: tok, Version: "test",
		Assets: fstest.MapFS{"index.html": {Data: []byte("<!doctype html><title>home</title>")}}})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(t.Context())
	return s
}

func TestListenLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:0", "localhost:0"} {
		if _, err := Listen(addr, Config{Token: strings.Repeat("a", 64)}); err == nil {
			t.Errorf("Listen(%q) accepted", addr)
		}
	}
	if _, err := Listen("127.0.0.1:0", Config{Token: "short"}); err == nil {
		t.Error("a short token was accepted")
	}
}

func TestTokenIsStable(t *testing.T) {
	dir := t.TempDir()
	a, err := LoadToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := LoadToken(dir)
	if a != b || len(a) != 64 {
		t.Fatalf("tokens %q %q", a, b)
	}
}

func TestGuardDenials(t *testing.T) {
	s := startUI(t)
	base := "http://127.0.0.1:" + strconv.Itoa(s.Port())
	do := func(method, path string, hdr map[string]string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader("{}"))
		for k, v := range hdr {
			if k == "Host" {
				req.Host = v
				continue
			}
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tok := map[string]string{TokenHeader: s.cfg.Token}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{TokenHeader: s.cfg.Token}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	cases := []struct {
		name   string
		method string
		path   string
		hdr    map[string]string
		want   int
	}{
		{"token", "GET", "/api/home/status", tok, 200},
		{"no token", "GET", "/api/home/status", nil, 401},
		{"wrong token", "GET", "/api/home/status", map[string]string{TokenHeader: strings.Repeat("0", 64)}, 401},
		{"wrong cookie", "GET", "/api/home/servers", map[string]string{"Cookie": CookieName + "=" + strings.Repeat("0", 64)}, 401},
		{"rebinding host", "GET", "/api/home/status", with(map[string]string{"Host": "evil.example:" + strconv.Itoa(s.Port())}), 421},
		{"rebinding host on the page", "GET", "/", map[string]string{"Host": "evil.example"}, 421},
		{"other port", "GET", "/api/home/status", with(map[string]string{"Host": "127.0.0.1:1"}), 421},
		{"foreign origin", "POST", "/api/home/tunnels", with(map[string]string{"Origin": "http://evil.example", "Content-Type": "application/json"}), 403},
		{"origin of another local port", "DELETE", "/api/home/servers/x", with(map[string]string{"Origin": "http://127.0.0.1:1"}), 403},
		{"null origin", "POST", "/api/home/tunnels", with(map[string]string{"Origin": "null"}), 403},
		{"cross-site fetch", "GET", "/api/home/servers", with(map[string]string{"Sec-Fetch-Site": "cross-site"}), 403},
		{"own origin", "GET", "/api/home/servers", with(map[string]string{"Origin": base, "Sec-Fetch-Site": "same-origin"}), 200},
		{"localhost host", "GET", "/api/home/status", with(map[string]string{"Host": "localhost:" + strconv.Itoa(s.Port())}), 200},
		{"page without token", "GET", "/", nil, 200},
		{"login without code", "GET", "/login", nil, 401},
		{"unknown api", "GET", "/api/home/nothing", tok, 404},
		{"no current server", "GET", "/api/home/tunnels", tok, 409},
		{"bad tunnel id", "DELETE", "/api/home/tunnels/x", tok, 400},
		{"not json", "POST", "/api/home/tunnels", tok, 415},
	}
	for _, tc := range cases {
		if got, body := do(tc.method, tc.path, tc.hdr); got != tc.want {
			t.Errorf("%s: %s %s = %d %s, want %d", tc.name, tc.method, tc.path, got, body, tc.want)
		}
	}
}

// TestLoginLink: the one-time link sets the cookie once; a second use is
// refused.
func TestLoginLink(t *testing.T) {
	s := startUI(t)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	link := s.LoginURL()
	resp, err := c.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/" {
		t.Fatalf("login: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	resp, err = c.Get("http://127.0.0.1:" + strconv.Itoa(s.Port()) + "/api/home/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status with the cookie: %d", resp.StatusCode)
	}
	resp, err = http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("second use of the link: %d", resp.StatusCode)
	}
}

// TestRunningLoginURL: `portlama-agent ui` finds the running UI by its
// ui.json and gets a working one-time link with the token; a wrong token
// is refused; the file goes when the UI stops.
func TestRunningLoginURL(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".portlama")
	if _, err := RunningLoginURL(t.Context(), dir, "x"); err != ErrNotRunning {
		t.Fatalf("nothing running: %v", err)
	}
	tok, err := LoadToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	h := agent.Home{Dir: dir}
	s, err := Listen("127.0.0.1:0", Config{Home: h, Registry: servers.New(h, nil), Token: tok,
		Assets: fstest.MapFS{"index.html": {Data: []byte("<!doctype html><title>home</title>")}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	// Readiness: ui.json appears once the UI serves (bounded).
	if err := testutil.Eventually(10*time.Second, func() error {
		_, err := os.Stat(runningPath(dir))
		return err
	}); err != nil {
		t.Fatalf("ui.json was not written: %v", err)
	}
	link, err := RunningLoginURL(t.Context(), dir, tok)
	if err != nil || !strings.HasPrefix(link, "http://127.0.0.1:"+strconv.Itoa(s.Port())+"/login?code=") {
		t.Fatalf("link %q, %v", link, err)
	}
	resp, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("the link: %d", resp.StatusCode)
	}
	if _, err := RunningLoginURL(t.Context(), dir, strings.Repeat("0", 64)); err == nil || err == ErrNotRunning {
		t.Fatalf("a wrong token: %v", err)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(runningPath(dir)); !os.IsNotExist(err) {
		t.Fatalf("ui.json after stop: %v", err)
	}
}

func TestLoginCookieAttributes(t *testing.T) {
	s := startUI(t)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(s.LoginURL())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cookies := resp.Cookies()
	if resp.StatusCode != http.StatusSeeOther || len(cookies) != 1 {
		t.Fatalf("login: %d %v", resp.StatusCode, cookies)
	}
	ck := cookies[0]
	if ck.Name != CookieName || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || ck.Value != s.cfg.Token {
		t.Fatalf("cookie %+v", ck)
	}
	// POST to /login is not a login.
	resp, err = c.Post(s.LoginURL(), "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("POST /login: %d", resp.StatusCode)
	}
}

// TestWithoutKeychain: with no keychain the status says why and an admin
// P12 is refused (its password is never written in clear).
func TestWithoutKeychain(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".portlama")
	tok, _ := LoadToken(dir)
	h := agent.Home{Dir: dir}
	s, err := Listen("127.0.0.1:0", Config{Home: h, Registry: servers.New(h, nil), Token: tok, KeychainError: "no OS keychain is available",
		Assets: fstest.MapFS{"index.html": {Data: []byte("x")}}})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(t.Context())
	p12 := selfSignedP12(t, "pw")
	base := "http://127.0.0.1:" + strconv.Itoa(s.Port())
	call := caller(t, base, tok)
	if code, body := call("GET", "/api/home/status", ""); code != 200 || !strings.Contains(body, `"keychainError":"no OS keychain is available"`) {
		t.Fatalf("status %d %s", code, body)
	}
	code, body := call("POST", "/api/home/servers/import-p12", `{"id":"relay","panelUrl":"https://203.0.113.7:9292","p12":"`+base64.StdEncoding.EncodeToString(p12)+`","password":"pw"}`)
	if code != 400 || !strings.Contains(body, "keychain") {
		t.Fatalf("import without keychain: %d %s", code, body)
	}
	if _, err := os.Stat(filepath.Join(dir, "servers")); !os.IsNotExist(err) {
		t.Fatalf("the refused import left files: %v", err)
	}
	code, body = call("POST", "/api/home/servers/import-p12", `{"id":"relay","panelUrl":"https://203.0.113.7:9292","p12":"`+base64.StdEncoding.EncodeToString(p12)+`","password":"wrong"}`)
	if code != 400 || !strings.Contains(body, "password") {
		t.Fatalf("wrong password: %d %s", code, body)
	}
	if code, _ := call("POST", "/api/home/servers", `{"token":"x","panelUrl":"https://203.0.113.7:9292"}`); code != 400 {
		t.Fatalf("a malformed token: %d", code)
	}
	if code, _ := call("POST", "/api/home/servers", `{"token":"x","panelUrl":"https://203.0.113.7:9292","extra":1}`); code != 400 {
		t.Fatalf("an unknown field: %d", code)
	}
}

// caller calls the UI's API with its token and a JSON body.
func caller(t *testing.T, base, tok string) func(method, path, body string) (int, string) {
	return func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set(TokenHeader, tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
}

func selfSignedP12(t *testing.T, password string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "admin"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p12, err := pkcs12.Modern.Encode(key, cert, nil, password)
	if err != nil {
		t.Fatal(err)
	}
	return p12
}

// TestTunnelInputs: what the relay would refuse is refused here first,
// before any relay is asked.
func TestTunnelInputs(t *testing.T) {
	s := startUI(t)
	base := "http://127.0.0.1:" + strconv.Itoa(s.Port())
	id := "/api/home/tunnels/00000000-0000-4000-8000-000000000001"
	for _, tc := range []struct {
		method, path, body string
		want               int
	}{
		{"POST", "/api/home/tunnels", `{"subdomain":"app","port":8080,"accessMode":"public"}`, 403},
		{"POST", "/api/home/tunnels", `{"subdomain":"App_","port":8080}`, 400},
		{"POST", "/api/home/tunnels", `{"subdomain":"app","port":0}`, 400},
		{"POST", "/api/home/tunnels", `{"subdomain":"app","port":8080,"accessMode":"restricted","allowedUsers":["A B"]}`, 400},
		{"POST", "/api/home/tunnels", `{"subdomain":"app","port":8080,"allowedGroups":["a,b"]}`, 400},
		{"POST", "/api/home/tunnels", `{"subdomain":"app","port":8080,"targetHost":"evil host"}`, 400},
		{"POST", "/api/home/tunnels", `{"subdomain":"app","port":8080,"agentLabel":"other"}`, 400},
		{"POST", "/api/home/tunnels", `{"subdomain":"app","port":8080,"accessMode":"restricted","allowedUsers":["alice"]}`, 409}, // valid: no relay yet
		{"PATCH", id, `{}`, 400},
		{"PATCH", id, `{"accessMode":"public"}`, 403},
		{"PATCH", id, `{"accessMode":""}`, 400},
		{"PATCH", id, `{"allowedUsers":["x"]}`, 400},
		{"PATCH", id, `{"enabled":false}`, 409},
	} {
		req, _ := http.NewRequest(tc.method, base+tc.path, strings.NewReader(tc.body))
		req.Header.Set(TokenHeader, s.cfg.Token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s %s = %d %s, want %d", tc.method, tc.path, tc.body, resp.StatusCode, b, tc.want)
		}
	}
}

// TestEnrollmentProgressStream: with Accept: application/x-ndjson the
// setup steps arrive one line each, then the error of the step that
// failed (here: no relay answers), and nothing is registered.
func TestEnrollmentProgressStream(t *testing.T) {
	s := startUI(t)
	closed := testutil.FreePort(t)
	body := `{"token":"` + strings.Repeat("ab", 32) + `","panelUrl":"https://127.0.0.1:` + strconv.Itoa(closed) + `"}`
	req, _ := http.NewRequest("POST", "http://127.0.0.1:"+strconv.Itoa(s.Port())+"/api/home/servers", strings.NewReader(body))
	req.Header.Set(TokenHeader, s.cfg.Token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/x-ndjson")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("answer %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var steps []string
	var last api.HomeSetupFrame
	dec := json.NewDecoder(resp.Body)
	for {
		var f api.HomeSetupFrame
		if err := dec.Decode(&f); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if f.Step != nil {
			steps = append(steps, f.Step.Step+":"+f.Step.Status)
		}
		last = f
	}
	if len(steps) < 3 || steps[0] != "generate-key:running" || last.Error == "" || last.Done != nil {
		t.Fatalf("steps %v, last %+v", steps, last)
	}
	if f, _ := s.cfg.Registry.List(); len(f.Servers) != 0 {
		t.Fatalf("a failed enrollment was registered: %+v", f)
	}
}
