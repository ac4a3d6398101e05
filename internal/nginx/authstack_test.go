package nginx

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"golang.org/x/crypto/bcrypt"

	"github.com/portlama/portlama/internal/auth"
	"github.com/portlama/portlama/internal/testutil"
)

const testPass = "correct horse battery"

// authStack is a relay whose auth vhost and forward authentication use the
// real auth server.
type authStack struct {
	*relay
	srv     *auth.Server
	dir     string
	clock   *testutil.Clock
	manage  *auth.ManageClient
	users   *auth.UserStore
	secrets map[string]string
	portal  string // https://auth.<d>:<port>
	hosts   []string
}

func startAuthStack(t *testing.T, o relayOpts) *authStack {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o.authAddr = ln.Addr().String()
	rl := startRelayWith(t, o)
	a := &authStack{relay: rl, dir: rl.layout.AuthDir(), secrets: map[string]string{},
		clock:  testutil.NewClock(time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)),
		portal: "https://auth." + testDomain + ":" + strconv.Itoa(rl.addrs.HTTPSPort),
		hosts:  []string{"app." + testDomain, "secure." + testDomain, "evil." + testDomain}}
	if err := os.MkdirAll(a.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := auth.WriteAccessRules(a.dir, auth.AccessRules{Hosts: a.hosts}); err != nil {
		t.Fatal(err)
	}
	a.srv, err = auth.NewServer(auth.Config{Dir: a.dir, Domain: testDomain, PortalURL: a.portal, Clock: a.clock.Now,
		BcryptCost: bcrypt.MinCost, ReloadInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	mln, err := auth.ListenManageSocket(auth.ManageSocketPath(a.dir))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.srv.Serve(ctx, ln, mln) }()
	t.Cleanup(func() { cancel(); <-done })
	a.manage = auth.NewManageClient(auth.ManageSocketPath(a.dir))
	a.users = auth.NewUserStore(auth.UsersFilePath(a.dir), bcrypt.MinCost)
	v, err := rl.r.Auth(testDomain, rl.tls())
	if err != nil {
		t.Fatal(err)
	}
	if err := rl.mgr.Apply(ctxT(t), v); err != nil {
		t.Fatal(err)
	}
	return a
}

func (a *authStack) addUser(t *testing.T, name string) {
	t.Helper()
	if _, err := a.users.Create(auth.NewUser{Username: name, DisplayName: "User " + name, Email: name + "@example.com", Password: testPass}); err != nil {
		t.Fatal(err)
	}
	enr, err := a.manage.ResetTOTP(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	a.secrets[name] = enr.Secret
}

// portalPost posts JSON to the portal through nginx, as the portal page
// does.
func (a *authStack) portalPost(t *testing.T, path, cookie string, body any, hdr ...string) (*http.Response, string) {
	t.Helper()
	data, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, a.portal+path, bytes.NewReader(data))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", a.portal)
	if cookie != "" {
		req.Header.Set("Cookie", auth.SessionCookieName+"="+cookie)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return do(t, a.client(a.addrs.HTTPSPort, nil), req)
}

// login signs name in through nginx (password, then TOTP) and returns the
// session cookie's value.
func (a *authStack) login(t *testing.T, name string) string {
	t.Helper()
	a.clock.Add(30 * time.Second) // a fresh TOTP step: codes are never replays
	resp, body := a.portalPost(t, "/api/firstfactor", "", map[string]any{"username": name, "password": testPass})
	c := sessionCookieOf(resp)
	if resp.StatusCode != 200 || c == "" {
		t.Fatalf("first factor for %s: %d %s", name, resp.StatusCode, body)
	}
	code, err := hotp.GenerateCodeCustom(a.secrets[name], uint64(a.clock.Now().Unix()/30),
		hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	resp, body = a.portalPost(t, "/api/secondfactor/totp", c, map[string]string{"token": code})
	if c = sessionCookieOf(resp); resp.StatusCode != 200 || c == "" {
		t.Fatalf("second factor for %s: %d %s", name, resp.StatusCode, body)
	}
	return c
}

func sessionCookieOf(resp *http.Response) string {
	for _, c := range resp.Cookies() {
		if c.Name == auth.SessionCookieName {
			return c.Value
		}
	}
	return ""
}

// writeAppVhost renders and installs an app vhost on port.
func (rl *relay) writeAppVhost(t *testing.T, sub string, port int, public bool) {
	t.Helper()
	rl.writeApp(t, sub, port, public)
}

func do(t *testing.T, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func request(t *testing.T, method, u, cookie string, hdr ...string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return req
}

// rawRequest writes a request as is over TLS to port and reads nginx's
// first answer; for a 101 the body is the first line the backend sent
// through the upgraded connection.
func (rl *relay) rawRequest(t *testing.T, host, raw string) (*http.Response, string) {
	t.Helper()
	cfg := rl.tlsConfig(nil)
	cfg.ServerName = host
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", "127.0.0.1:"+strconv.Itoa(rl.addrs.HTTPSPort), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read the answer to %q: %v", raw, err)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		line, _ := br.ReadString('\n')
		return resp, line
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// agentCert issues a client certificate CN=agent:<label> from the test CA.
func (rl *relay) agentCert(t *testing.T, label string) tls.Certificate {
	_, k, der := issue(t, rl.pki.caCert, rl.pki.caKey, "agent:"+label, true)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
}

func queryEscapeAll(vs ...string) string {
	q := url.Values{}
	for _, v := range vs {
		q.Add("c", v)
	}
	return q.Encode()
}
