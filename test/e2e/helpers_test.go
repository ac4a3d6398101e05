package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/portlama/portlama/internal/demo"
	"github.com/portlama/portlama/internal/sampleapp"
)

var (
	sharedOnce  sync.Once
	sharedStack *demo.Stack
	sharedErr   error
)

// shared returns one demo stack for the tests that only read from it or add
// what they need without disturbing others. It is stopped by TestMain.
func shared(t *testing.T) *demo.Stack {
	t.Helper()
	sharedOnce.Do(func() {
		dir, err := os.MkdirTemp("", "portlama-e2e-shared-")
		if err != nil {
			sharedErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		sharedStack, sharedErr = demo.Start(ctx, stackOptions(dir, 20000, 20099))
	})
	if sharedErr != nil {
		t.Fatalf("start shared demo stack: %v", sharedErr)
	}
	return sharedStack
}

func stopShared() {
	if sharedStack != nil {
		sharedStack.Stop()
		os.RemoveAll(sharedStack.Info.Dir)
	}
}

// call sends an API request through nginx with client c and returns the
// status and body.
func call(t *testing.T, c *http.Client, method, url string, body any) (int, string) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

// mustCall is call that fails the test unless the status is want.
func mustCall(t *testing.T, c *http.Client, method, url string, body any, want int) string {
	t.Helper()
	code, out := call(t, c, method, url, body)
	if code != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, url, code, want, out)
	}
	return out
}

func admin(t *testing.T, st *demo.Stack) *http.Client {
	t.Helper()
	c, err := st.AdminClient()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// clientWith returns a client presenting cert (nil: none) that trusts the
// panel's IP certificate and the relay CA.
func clientWith(st *demo.Stack, cert *tls.Certificate) *http.Client {
	pool := x509.NewCertPool()
	for _, f := range []string{st.Info.IPCert, st.Info.CACert} {
		pem, _ := os.ReadFile(f)
		pool.AppendCertsFromPEM(pem)
	}
	cfg := &tls.Config{RootCAs: pool}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{
		Timeout:       30 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: cfg, DialContext: st.DialContext},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// newAgentCert issues an agent P12 through the API and returns its
// certificate and key.
func newAgentCert(t *testing.T, st *demo.Stack, label string, caps ...string) tls.Certificate {
	t.Helper()
	a := admin(t, st)
	if caps == nil {
		caps = []string{"tunnels:read"}
	}
	out := mustCall(t, a, "POST", st.Info.PanelURL+"/api/certs/agent", map[string]any{"label": label, "capabilities": caps}, 200)
	var res struct {
		P12Password string `json:"p12Password"`
	}
	decode(t, out, &res)
	resp, err := a.Get(st.Info.PanelURL + "/api/certs/agent/" + label + "/download")
	if err != nil {
		t.Fatal(err)
	}
	p12, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("download agent P12: %d %s", resp.StatusCode, p12)
	}
	key, cert, _, err := pkcs12.DecodeChain(p12, res.P12Password)
	if err != nil {
		t.Fatalf("decode agent P12: %v", err)
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
}

// user creates a user with a TOTP secret through the API.
type user struct {
	name, password, secret string
}

func newUser(t *testing.T, st *demo.Stack, name string, groups ...string) user {
	t.Helper()
	a := admin(t, st)
	if groups == nil {
		groups = []string{}
	}
	u := user{name: name, password: "pw-" + name + "-0123456789"}
	mustCall(t, a, "POST", st.Info.PanelURL+"/api/users", map[string]any{
		"username": name, "displayname": name, "email": name + "@example.com", "password": u.password, "groups": groups,
	}, 201)
	out := mustCall(t, a, "POST", st.Info.PanelURL+"/api/users/"+name+"/reset-totp", nil, 200)
	var r struct {
		URI string `json:"totpUri"`
		QR  string `json:"totpQr"`
	}
	decode(t, out, &r)
	parsed, err := url.Parse(r.URI)
	if err != nil {
		t.Fatal(err)
	}
	u.secret = parsed.Query().Get("secret")
	if u.secret == "" || !strings.HasPrefix(r.QR, "data:image/png;base64,") {
		t.Fatalf("reset-totp gave %s", out)
	}
	if _, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(r.QR, "data:image/png;base64,")); err != nil {
		t.Fatalf("totpQr is not base64: %v", err)
	}
	return u
}

// code returns the TOTP code for the time at (tests pick distinct steps
// where one user signs in twice, so no code is a replay).
func code(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCode(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// login signs u in through the portal's JSON API and returns the session
// cookie.
func login(t *testing.T, st *demo.Stack, u user, at time.Time) *http.Cookie {
	t.Helper()
	c := visitor(st)
	authURL := strings.TrimSuffix(st.Info.AuthURL, "/")
	resp := postJSON(t, c, authURL+"/api/firstfactor", map[string]any{"username": u.name, "password": u.password, "keepMeLoggedIn": false}, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("first factor for %s: %d", u.name, resp.StatusCode)
	}
	half := sessionCookie(resp)
	if half == nil {
		t.Fatal("first factor set no session cookie")
	}
	resp = postJSON(t, c, authURL+"/api/secondfactor/totp", map[string]any{"token": code(t, u.secret, at)}, half)
	if resp.StatusCode != 200 {
		t.Fatalf("second factor for %s: %d", u.name, resp.StatusCode)
	}
	full := sessionCookie(resp)
	if full == nil {
		t.Fatal("second factor set no session cookie")
	}
	return full
}

func postJSON(t *testing.T, c *http.Client, url string, body any, cookie *http.Cookie) *http.Response {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	// As the portal page's fetch does: the browser names the page's origin.
	req.Header.Set("Origin", req.URL.Scheme+"://"+req.URL.Host)
	if cookie != nil {
		req.AddCookie(cookie)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func sessionCookie(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == "portlama_session" && c.Value != "" {
			return c
		}
	}
	return nil
}

// getWith fetches url with an optional cookie and extra headers.
func getWith(t *testing.T, c *http.Client, url string, cookie *http.Cookie, headers map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if cookie != nil {
		req.AddCookie(cookie)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func hostURL(st *demo.Stack, sub, path string) string {
	return fmt.Sprintf("https://%s.%s:%d%s", sub, demo.Domain, st.Info.HTTPSPort, path)
}

// extraApp runs another sample app for the test, for a tunnel of its own
// (a tunnel's local port is unique per agent), and returns its port.
func extraApp(t *testing.T, name string) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sampleapp.Serve(ctx, ln, name); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().(*net.TCPAddr).Port
}
