package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/panelclient"
	"github.com/portlama/portlama/internal/relaytest"
	"github.com/portlama/portlama/internal/sampleapp"
)

var (
	sharedOnce  sync.Once
	sharedStack *relaytest.Stack
	sharedErr   error
)

// shared returns one stack (Pebble certificates, the demo's sample) for the
// tests that only read from it or add what they need without disturbing
// others. It is stopped by TestMain.
func shared(t *testing.T) *relaytest.Stack {
	t.Helper()
	sharedOnce.Do(func() { sharedStack, sharedErr = relaytest.Start(t, relaytest.WithSample()) })
	if sharedErr != nil {
		t.Fatalf("start the shared stack: %v", sharedErr)
	}
	return sharedStack.For(t)
}

func stopShared() {
	if sharedStack != nil {
		sharedStack.Stop()
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
func adminPanel(t *testing.T, st *relaytest.Stack) *panelclient.Client { return st.For(t).Admin() }

func admin(t *testing.T, st *relaytest.Stack) *http.Client { return st.For(t).AdminHTTP() }

// clientWith returns a client presenting cert (nil: none) that trusts the
// panel's IP certificate and the stack's certificates.
func clientWith(st *relaytest.Stack, cert *tls.Certificate) *http.Client { return st.Client(cert) }

// newAgentCert issues an agent P12 through the API and returns its
// certificate and key.
func newAgentCert(t *testing.T, st *relaytest.Stack, label string, caps ...string) tls.Certificate {
	return st.For(t).AgentCert(label, caps...)
}

// decodeAgentP12 downloads an agent's P12 and returns its certificate and
// key.
func decodeAgentP12(t *testing.T, pc *panelclient.Client, label, password string) tls.Certificate {
	t.Helper()
	p12, err := pc.AgentP12(context.Background(), label)
	if err != nil {
		t.Fatalf("download agent P12: %v", err)
	}
	return relaytest.P12Cert(t, p12, password)
}

// user is a portal user with a TOTP secret.
type user struct {
	name, password, secret string
}

// newUser creates a user with a TOTP secret through the API; its QR code
// is a base64 PNG.
func newUser(t *testing.T, st *relaytest.Stack, name string, groups ...string) user {
	t.Helper()
	u := st.For(t).CreateUser(name, groups...)
	return user{name: u.Name, password: u.Password, secret: u.Secret}
}

// code returns the TOTP code for the time at (tests pick distinct steps
// where one user signs in twice, so no code is a replay).
func code(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	return relaytest.User{Secret: secret}.Code(t, at)
}

// login signs u in through the portal's JSON API and returns the session
// cookie.
func login(t *testing.T, st *relaytest.Stack, u user, at time.Time) *http.Cookie {
	t.Helper()
	return st.For(t).Login(relaytest.User{Name: u.name, Password: u.password, Secret: u.secret}, at)
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

func hostURL(st *relaytest.Stack, sub, path string) string { return st.URL(sub, path) }

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
