package auth

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"golang.org/x/crypto/bcrypt"

	"github.com/portlama/portlama/internal/testutil"
)

const (
	testDomain = "demo.localhost"
	testPortal = "https://auth.demo.localhost:8443"
	testApp    = "https://app.demo.localhost:8443/some/path?x=1&y=%20z"
	testPass   = "correct horse battery"
)

func newFakeClock() *testutil.Clock {
	return testutil.NewClock(time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC))
}

// env is one running auth server on real listeners with its files in a
// temporary directory.
type env struct {
	t      testing.TB
	dir    string
	clock  *testutil.Clock
	srv    *Server
	base   string
	manage *ManageClient
	users  *UserStore
	cancel context.CancelFunc
	done   chan error
	hc     *http.Client
	totp   map[string]string // username → secret
	hosts  []string          // access-rules.json hosts (redirect targets)
	poll   time.Duration     // Config.ReloadInterval
}

func newEnv(t testing.TB) *env {
	t.Helper()
	// No polling to speak of: every change in these tests is announced
	// (Reload), as the panel does.
	return newEnvPolling(t, time.Hour)
}

// newEnvPolling is newEnv with the state files checked every poll.
func newEnvPolling(t testing.TB, poll time.Duration) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, dir: dir, clock: newFakeClock(), users: NewUserStore(UsersFilePath(dir), bcrypt.MinCost),
		totp: map[string]string{}, hosts: []string{"app.demo.localhost"}, poll: poll}
	if err := WriteAccessRules(dir, AccessRules{Hosts: e.hosts}); err != nil {
		t.Fatal(err)
	}
	e.hc = &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{MaxIdleConnsPerHost: 64},
	}
	e.start()
	return e
}

func (e *env) start() {
	t := e.t
	t.Helper()
	srv, err := NewServer(Config{Dir: e.dir, Domain: testDomain, PortalURL: testPortal, Clock: e.clock.Now,
		BcryptCost: bcrypt.MinCost, ReloadInterval: e.poll})
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mln, err := ListenManageSocket(ManageSocketPath(e.dir))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.srv, e.base, e.cancel, e.done = srv, "http://"+ln.Addr().String(), cancel, make(chan error, 1)
	go func() { e.done <- srv.Serve(ctx, ln, mln) }()
	e.manage = NewManageClient(ManageSocketPath(e.dir))
	t.Cleanup(e.stop)
}

func (e *env) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	if err := <-e.done; err != nil {
		e.t.Errorf("Serve: %v", err)
	}
	e.cancel = nil
}

// restart stops the server and starts a new one on the same directory.
func (e *env) restart() {
	e.stop()
	e.start()
}

// addUser creates a user in users.yml and gives them a TOTP secret through
// the management socket.
func (e *env) addUser(name string, groups ...string) {
	e.t.Helper()
	if _, err := e.users.Create(NewUser{Username: name, DisplayName: "User " + name, Email: name + "@example.com",
		Password: testPass, Groups: groups}); err != nil {
		e.t.Fatalf("create user %s: %v", name, err)
	}
	enr, err := e.manage.ResetTOTP(context.Background(), name)
	if err != nil {
		e.t.Fatalf("reset TOTP for %s: %v", name, err)
	}
	e.totp[name] = enr.Secret
}

// code returns the current TOTP code for user at the fake clock.
func (e *env) code(user string) string {
	e.t.Helper()
	c, err := hotp.GenerateCodeCustom(e.totp[user], uint64(e.clock.Now().Unix()/30),
		hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

type apiResp struct {
	code   int
	body   envelope
	raw    string
	cookie *http.Cookie
	header http.Header
}

func (e *env) post(path, cookie string, body any, hdr ...string) apiResp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case string:
		rd = strings.NewReader(b)
	default:
		data, _ := json.Marshal(b)
		rd = strings.NewReader(string(data))
	}
	req, _ := http.NewRequest(http.MethodPost, e.base+path, rd)
	req.Header.Set("Content-Type", "application/json")
	return e.do(req, cookie, hdr...)
}

func (e *env) get(path, cookie string, hdr ...string) apiResp {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.base+path, nil)
	return e.do(req, cookie, hdr...)
}

func (e *env) do(req *http.Request, cookie string, hdr ...string) apiResp {
	e.t.Helper()
	if cookie != "" {
		req.Header.Set("Cookie", SessionCookieName+"="+cookie)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	out := apiResp{code: resp.StatusCode, raw: string(data), header: resp.Header}
	json.Unmarshal(data, &out.body)
	for _, c := range resp.Cookies() {
		if c.Name == SessionCookieName {
			out.cookie = c
		}
	}
	return out
}

// firstFactor posts the password and returns the half-session cookie.
func (e *env) firstFactor(user, pw string, hdr ...string) apiResp {
	e.t.Helper()
	return e.post("/api/firstfactor", "", map[string]any{"username": user, "password": pw,
		"keepMeLoggedIn": false, "targetURL": testApp}, hdr...)
}

// login runs both factors and returns the two-factor session cookie. It
// moves the clock to a fresh TOTP step first so codes are never replays.
func (e *env) login(user string) string {
	e.t.Helper()
	e.clock.Add(30 * time.Second)
	r := e.firstFactor(user, testPass)
	if r.code != 200 || r.cookie == nil {
		e.t.Fatalf("first factor for %s: %d %s", user, r.code, r.raw)
	}
	r2 := e.post("/api/secondfactor/totp", r.cookie.Value, map[string]string{"token": e.code(user), "targetURL": testApp})
	if r2.code != 200 || r2.cookie == nil {
		e.t.Fatalf("second factor for %s: %d %s", user, r2.code, r2.raw)
	}
	return r2.cookie.Value
}

// authz calls the auth-request endpoint the way nginx does.
func (e *env) authz(cookie, original string, hdr ...string) apiResp {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.base+"/api/authz/auth-request", nil)
	req.Header.Set("X-Original-URL", original)
	req.Header.Set("X-Original-Method", "GET")
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	return e.do(req, cookie, hdr...)
}

func (e *env) writeRules(rules ...AccessRule) {
	e.t.Helper()
	if err := WriteAccessRules(e.dir, AccessRules{Rules: rules, Hosts: e.hosts}); err != nil {
		e.t.Fatal(err)
	}
	if err := e.manage.Reload(context.Background()); err != nil {
		e.t.Fatal(err)
	}
}

func rdOf(t testing.TB, location string) string {
	t.Helper()
	u, err := url.Parse(location)
	if err != nil {
		t.Fatalf("parse Location %q: %v", location, err)
	}
	return u.Query().Get("rd")
}
