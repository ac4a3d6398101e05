package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
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

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/demo"
	"github.com/portlama/portlama/internal/panelclient"
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

// panelAs returns the typed panel client for base (the panel by IP, or
// https://panel.<d>) with the HTTP client hc.
func panelAs(base string, hc *http.Client) *panelclient.Client { return panelclient.New(base, hc) }

// adminPanel returns the typed panel client with the admin certificate.
func adminPanel(t *testing.T, st *demo.Stack) *panelclient.Client {
	t.Helper()
	pc, err := st.Panel()
	if err != nil {
		t.Fatal(err)
	}
	return pc
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
	pc := adminPanel(t, st)
	if caps == nil {
		caps = []string{api.CapTunnelsRead}
	}
	ctx := context.Background()
	res, err := pc.CreateAgentCert(ctx, api.NewAgentRequest{Label: label, Capabilities: &caps})
	if err != nil {
		t.Fatalf("create agent certificate: %v", err)
	}
	return decodeAgentP12(t, pc, label, res.P12Password)
}

// decodeAgentP12 downloads an agent's P12 and returns its certificate and
// key.
func decodeAgentP12(t *testing.T, pc *panelclient.Client, label, password string) tls.Certificate {
	t.Helper()
	p12, err := pc.AgentP12(context.Background(), label)
	if err != nil {
		t.Fatalf("download agent P12: %v", err)
	}
	key, cert, _, err := pkcs12.DecodeChain(p12, password)
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
	pc := adminPanel(t, st)
	if groups == nil {
		groups = []string{}
	}
	ctx := context.Background()
	u := user{name: name, password: "pw-" + name + "-0123456789"}
	if _, err := pc.CreateUser(ctx, api.CreateUserRequest{
		Username: name, DisplayName: name, Email: name + "@example.com", Password: u.password, Groups: groups,
	}); err != nil {
		t.Fatalf("create user %s: %v", name, err)
	}
	r, err := pc.ResetTOTP(ctx, name)
	if err != nil {
		t.Fatalf("reset TOTP of %s: %v", name, err)
	}
	parsed, err := url.Parse(r.TOTPURI)
	if err != nil {
		t.Fatal(err)
	}
	u.secret = parsed.Query().Get("secret")
	if u.secret == "" || !strings.HasPrefix(r.TOTPQR, "data:image/png;base64,") {
		t.Fatalf("reset-totp gave %+v", r)
	}
	if _, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(r.TOTPQR, "data:image/png;base64,")); err != nil {
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
	portal := panelclient.NewPortal(strings.TrimSuffix(st.Info.AuthURL, "/"), visitor(st))
	ck, err := portal.Login(context.Background(), u.name, u.password, code(t, u.secret, at), "")
	if err != nil {
		t.Fatalf("login of %s: %v", u.name, err)
	}
	return ck
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
	return st.Relay.Addrs.HostURL(sub, demo.Domain) + path
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
