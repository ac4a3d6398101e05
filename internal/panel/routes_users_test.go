package panel

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"golang.org/x/crypto/bcrypt"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/auth"
	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/invitations"
	"github.com/portlama/portlama/internal/manage"
)

// The routes of routes_users.go, routes_invitations.go, routes_settings.go
// and routes_identity.go are tested against a real auth server started in
// process (users file, management socket, JSON login API).

const authTestPass = "correct horse battery"

// authClock is the clock shared by the panel and the auth server.
type authClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *authClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *authClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// recordingTOTP delegates to the real management client and records the
// calls, so tests can see that sessions were ended.
type recordingTOTP struct {
	inner TOTPManager
	mu    sync.Mutex
	calls []string
}

func (r *recordingTOTP) record(call string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, call)
}

func (r *recordingTOTP) called() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

func (r *recordingTOTP) ResetTOTP(ctx context.Context, user string) (auth.TOTPEnrollment, error) {
	r.record("reset:" + user)
	return r.inner.ResetTOTP(ctx, user)
}

func (r *recordingTOTP) DeleteTOTP(ctx context.Context, user string) (int, error) {
	r.record("delete:" + user)
	return r.inner.DeleteTOTP(ctx, user)
}

func (r *recordingTOTP) EndSessions(ctx context.Context, user string) (int, error) {
	r.record("end:" + user)
	return r.inner.EndSessions(ctx, user)
}

// fakeIPVhost records Enable/Disable calls and can fail them.
type fakeIPVhost struct {
	mu      sync.Mutex
	calls   []string
	failErr error
}

func (f *fakeIPVhost) call(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, name)
	return f.failErr
}

func (f *fakeIPVhost) Enable(context.Context) error  { return f.call("enable") }
func (f *fakeIPVhost) Disable(context.Context) error { return f.call("disable") }

func (f *fakeIPVhost) setFail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failErr = err
}

func (f *fakeIPVhost) called() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// authFixture is a panel harness wired to a real auth server.
type authFixture struct {
	*harness
	clock  *authClock
	dir    string // the auth server's directory
	base   string // http://127.0.0.1:<port> of the auth server's public API
	users  *auth.UserStore
	manage *auth.ManageClient
	totp   *recordingTOTP
	vhost  *fakeIPVhost
	hc     *http.Client
}

type authFixtureOpt func(*Config)

// newAuthFixture starts an auth server and a panel in onboarding state
// status, with one user "admin" (group admins) in the users file.
func newAuthFixture(t *testing.T, status string, opts ...authFixtureOpt) *authFixture {
	t.Helper()
	// A short directory: Unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "pa")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := &authFixture{
		clock: &authClock{t: time.Unix(1_800_000_000, 0)},
		dir:   dir,
		users: auth.NewUserStore(auth.UsersFilePath(dir), bcrypt.MinCost),
		vhost: &fakeIPVhost{},
		hc: &http.Client{
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	if _, err := f.users.Create(auth.NewUser{Username: "admin", DisplayName: "Administrator", Email: "admin@example.com",
		Password: authTestPass, Groups: []string{"admins"}}); err != nil {
		t.Fatal(err)
	}
	f.base, _ = serveAuth(t, auth.Config{Dir: dir, Domain: "example.com", Clock: f.clock.now,
		BcryptCost: bcrypt.MinCost, ReloadInterval: time.Hour}) // only acknowledged changes apply
	f.manage = auth.NewManageClient(auth.ManageSocketPath(dir))
	f.totp = &recordingTOTP{inner: f.manage}
	f.harness = newHarness(t, status, func(c *Config) {
		c.Now = f.clock.now
		c.Auth.Users, c.Auth.TOTP, c.Auth.IPVhost = f.users, f.totp, f.vhost
		c.Auth.State = manage.NewPublisher("auth server", "portlama-auth", f.manage.Reload,
			auth.UsersFilePath(dir), auth.RulesFilePath(dir))
		c.Auth.Invitations = invitations.New(c.Layout.InvitationsFile(), f.clock.now)
		for _, o := range opts {
			o(c)
		}
	})
	return f
}

// totpCode is the code of secret at t.
func totpCode(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := hotp.GenerateCodeCustom(secret, uint64(at.Unix()/30), hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// secretOf reads the secret from an otpauth URI.
func secretOf(t *testing.T, uri string) string {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "otpauth" {
		t.Fatalf("bad otpauth URI %q", uri)
	}
	s := u.Query().Get("secret")
	if len(s) != 32 {
		t.Fatalf("secret %q in %q is not 32 base32 characters", s, uri)
	}
	return s
}

// authPost posts JSON to the auth server's public API.
func (f *authFixture) authPost(t *testing.T, path, cookie string, body any) (int, map[string]any, *http.Cookie) {
	t.Helper()
	data, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, f.base+path, strings.NewReader(string(data)))
	req.Header.Set("Content-Type", "application/json")
	if cookie != "" {
		req.Header.Set("Cookie", auth.SessionCookieName+"="+cookie)
	}
	resp, err := f.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	json.Unmarshal(raw, &out)
	var c *http.Cookie
	for _, k := range resp.Cookies() {
		if k.Name == auth.SessionCookieName {
			c = k
		}
	}
	return resp.StatusCode, out, c
}

// login signs user in through the auth server's JSON API (password, then
// TOTP) and reports whether both factors were accepted.
func (f *authFixture) login(t *testing.T, user, password, secret string) error {
	t.Helper()
	f.clock.advance(30 * time.Second) // a fresh step: codes are never replays
	target := "https://app.example.com/"
	code, body, c := f.authPost(t, "/api/firstfactor", "", map[string]any{
		"username": user, "password": password, "keepMeLoggedIn": false, "targetURL": target})
	if code != 200 || c == nil {
		return errors.New("first factor refused")
	}
	code, body, _ = f.authPost(t, "/api/secondfactor/totp", c.Value, map[string]any{
		"token": totpCode(t, secret, f.clock.now()), "targetURL": target})
	if code != 200 || body["status"] != "OK" {
		return errors.New("second factor refused")
	}
	return nil
}

func TestUsersList(t *testing.T) {
	f := newAuthFixture(t, config.StatusCompleted)
	if _, err := f.users.Create(auth.NewUser{Username: "bob", DisplayName: "Bob", Email: "bob@example.com", Password: authTestPass}); err != nil {
		t.Fatal(err)
	}
	f.do("GET", "/api/users", "", adminHeaders()).expect(t, 200, `{"users":[
		{"username":"admin","displayname":"Administrator","email":"admin@example.com","groups":["admins"]},
		{"username":"bob","displayname":"Bob","email":"bob@example.com","groups":[]}]}`)
	// An unreadable users file yields [].
	if err := os.WriteFile(f.users.Path(), []byte("users: [broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.do("GET", "/api/users", "", adminHeaders()).expect(t, 200, `{"users":[]}`)
}

func TestUsersCreate(t *testing.T) {
	f := newAuthFixture(t, config.StatusCompleted)
	ok := `{"username":"bob","displayname":"Bob B","email":"bob@example.com","password":"` + authTestPass + `","groups":["family"]}`
	f.do("POST", "/api/users", ok, adminHeaders()).expect(t, 201,
		`{"ok":true,"user":{"username":"bob","displayname":"Bob B","email":"bob@example.com","groups":["family"]}}`)
	f.do("POST", "/api/users", ok, adminHeaders()).expect(t, 409, `{"error":"Username already exists"}`)
	// groups defaults to []
	f.do("POST", "/api/users", `{"username":"carol","displayname":"C","email":"c@example.com","password":"12345678"}`, adminHeaders()).
		expect(t, 201, `{"ok":true,"user":{"username":"carol","displayname":"C","email":"c@example.com","groups":[]}}`)
	u, err := f.users.Get("bob")
	if err != nil || u.Groups[0] != "family" {
		t.Fatalf("stored user %+v %v", u, err)
	}

	bad := []struct {
		name, body string
		path       string
	}{
		{"no body", "", `[]`},
		{"bad username", `{"username":"Bob","displayname":"B","email":"b@example.com","password":"12345678"}`, `["username"]`},
		{"short password", `{"username":"dave","displayname":"D","email":"d@example.com","password":"1234567"}`, `["password"]`},
		{"long password", `{"username":"dave","displayname":"D","email":"d@example.com","password":"` + strings.Repeat("x", 129) + `"}`, `["password"]`},
		{"bad email", `{"username":"dave","displayname":"D","email":"nope","password":"12345678"}`, `["email"]`},
		{"missing displayname", `{"username":"dave","email":"d@example.com","password":"12345678"}`, `["displayname"]`},
		{"group with comma", `{"username":"dave","displayname":"D","email":"d@example.com","password":"12345678","groups":["a,b"]}`, `["groups",0]`},
		{"groups not array", `{"username":"dave","displayname":"D","email":"d@example.com","password":"12345678","groups":"admins"}`, `["groups"]`},
		{"password number", `{"username":"dave","displayname":"D","email":"d@example.com","password":12345678}`, `["password"]`},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			r := f.do("POST", "/api/users", tc.body, adminHeaders())
			r.expect(t, 400, "")
			if r.body["error"] != "Validation failed" || len(r.issuePaths()) == 0 || r.issuePaths()[0] != tc.path {
				t.Fatalf("body %s, want issue at %s", r.raw, tc.path)
			}
		})
	}
	if _, err := f.users.Get("dave"); !errors.Is(err, auth.ErrUserNotFound) {
		t.Fatal("a refused user was stored")
	}
}

func TestUsersUpdate(t *testing.T) {
	f := newAuthFixture(t, config.StatusCompleted)
	f.do("PUT", "/api/users/admin", `{"displayname":"Root","groups":["admins","ops"]}`, adminHeaders()).expect(t, 200,
		`{"ok":true,"user":{"username":"admin","displayname":"Root","email":"admin@example.com","groups":["admins","ops"]}}`)
	if got := f.totp.called(); len(got) != 0 {
		t.Fatalf("sessions ended without a password change: %v", got)
	}
	f.do("PUT", "/api/users/admin", `{}`, adminHeaders()).expect(t, 400, "")
	f.do("PUT", "/api/users/admin", "", adminHeaders()).expect(t, 400, "")
	f.do("PUT", "/api/users/nobody", `{"email":"n@example.com"}`, adminHeaders()).expect(t, 404, `{"error":"User not found"}`)
	r := f.do("PUT", "/api/users/Admin", `{"email":"n@example.com"}`, adminHeaders())
	r.expect(t, 400, "")
	if p := r.issuePaths(); len(p) != 1 || p[0] != `["username"]` {
		t.Fatalf("issues %v", p)
	}
	f.do("PUT", "/api/users/admin", `{"password":"short"}`, adminHeaders()).expect(t, 400, "")

	// A password change ends the user's sessions; the new password works.
	enr, err := f.manage.ResetTOTP(context.Background(), "admin")
	if err != nil {
		t.Fatal(err)
	}
	f.do("PUT", "/api/users/admin", `{"password":"a brand new password"}`, adminHeaders()).expect(t, 200, "")
	if got := f.totp.called(); len(got) != 1 || got[0] != "end:admin" {
		t.Fatalf("calls %v, want end:admin", got)
	}
	if err := f.login(t, "admin", authTestPass, enr.Secret); err == nil {
		t.Fatal("old password still accepted")
	}
	if err := f.login(t, "admin", "a brand new password", enr.Secret); err != nil {
		t.Fatalf("new password: %v", err)
	}
}

func TestUsersDelete(t *testing.T) {
	f := newAuthFixture(t, config.StatusCompleted)
	f.do("DELETE", "/api/users/admin", "", adminHeaders()).expect(t, 400, `{"error":"Cannot delete the last user"}`)
	f.do("DELETE", "/api/users/nobody", "", adminHeaders()).expect(t, 404, `{"error":"User not found"}`)
	f.do("DELETE", "/api/users/NO", "", adminHeaders()).expect(t, 400, "")
	if _, err := f.users.Create(auth.NewUser{Username: "bob", DisplayName: "Bob", Email: "bob@example.com", Password: authTestPass}); err != nil {
		t.Fatal(err)
	}
	enr, err := f.manage.ResetTOTP(context.Background(), "bob")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.login(t, "bob", authTestPass, enr.Secret); err != nil {
		t.Fatal(err)
	}
	f.do("DELETE", "/api/users/bob", "", adminHeaders()).expect(t, 200, `{"ok":true}`)
	if has, err := f.manage.HasTOTP(context.Background(), "bob"); err != nil || has {
		t.Fatalf("TOTP secret of deleted user kept: %v %v", has, err)
	}
	if err := f.login(t, "bob", authTestPass, enr.Secret); err == nil {
		t.Fatal("deleted user can still log in")
	}
	f.do("DELETE", "/api/users/admin", "", adminHeaders()).expect(t, 400, `{"error":"Cannot delete the last user"}`)
}

func TestUsersResetTOTP(t *testing.T) {
	f := newAuthFixture(t, config.StatusCompleted)
	f.do("POST", "/api/users/nobody/reset-totp", "", adminHeaders()).expect(t, 404, `{"error":"User not found"}`)
	f.do("POST", "/api/users/x/reset-totp", "{}", adminHeaders()).expect(t, 400, "")
	r := f.do("POST", "/api/users/admin/reset-totp", "{}", adminHeaders())
	r.expect(t, 200, "")
	uri, _ := r.body["totpUri"].(string)
	qr, _ := r.body["totpQr"].(string)
	if r.body["ok"] != true || !strings.HasPrefix(uri, "otpauth://totp/Portlama:admin?secret=") ||
		!strings.HasSuffix(uri, "&issuer=Portlama&algorithm=SHA1&digits=6&period=30") ||
		!strings.HasPrefix(qr, "data:image/png;base64,") {
		t.Fatalf("reset-totp answer %s", r.raw)
	}
	first := secretOf(t, uri)
	if err := f.login(t, "admin", authTestPass, first); err != nil {
		t.Fatalf("login with the new secret: %v", err)
	}
	r = f.do("POST", "/api/users/admin/reset-totp", "", adminHeaders())
	second := secretOf(t, r.body["totpUri"].(string))
	if second == first {
		t.Fatal("reset-totp returned the same secret twice")
	}
	if err := f.login(t, "admin", authTestPass, first); err == nil {
		t.Fatal("the old secret still works after reset-totp")
	}
	if err := f.login(t, "admin", authTestPass, second); err != nil {
		t.Fatal(err)
	}
}

func TestUsersResetTOTPAuthServerDown(t *testing.T) {
	f := newAuthFixture(t, config.StatusCompleted, func(c *Config) {
		c.Auth.TOTP = auth.NewManageClient("/nonexistent/portlama/manage.sock")
	})
	r := f.do("POST", "/api/users/admin/reset-totp", "", adminHeaders())
	r.expect(t, 500, "")
	if r.body["error"] != "Failed to write TOTP configuration" {
		t.Fatalf("body %s", r.raw)
	}
}

// authRoutes are the admin-only routes of this file group with a request
// that would otherwise succeed or fail late.
var authAdminRoutes = []struct{ method, path, body string }{
	{"GET", "/api/users", ""},
	{"POST", "/api/users", `{"username":"bob","displayname":"B","email":"b@example.com","password":"12345678"}`},
	{"PUT", "/api/users/admin", `{"displayname":"X"}`},
	{"DELETE", "/api/users/admin", ""},
	{"POST", "/api/users/admin/reset-totp", ""},
	{"GET", "/api/invitations", ""},
	{"POST", "/api/invitations", `{"username":"bob","email":"b@example.com"}`},
	{"DELETE", "/api/invitations/1b4e28ba-2fa1-4d2e-883f-0016d3cca427", ""},
	{"GET", "/api/settings/2fa", ""},
	{"POST", "/api/settings/2fa/setup", ""},
	{"POST", "/api/settings/2fa/confirm", `{"code":"123456"}`},
	{"POST", "/api/settings/2fa/verify", `{"code":"123456"}`},
	{"POST", "/api/settings/2fa/disable", `{"code":"123456"}`},
	{"GET", "/api/identity/self", ""},
}

var authAgentRoutes = []struct{ method, path string }{
	{"GET", "/api/identity/users"},
	{"GET", "/api/identity/users/admin"},
	{"GET", "/api/identity/groups"},
}

func TestAuthRoutesRefuseAgents(t *testing.T) {
	f := newAuthFixture(t, config.StatusCompleted)
	f.addAgent("home", "BEEF", api.CapIdentityQuery, api.CapTunnelsWrite, api.CapSystemRead)
	for _, rt := range authAdminRoutes {
		t.Run(rt.method+" "+rt.path, func(t *testing.T) {
			f.do(rt.method, rt.path, rt.body, agentHeaders("home", "BEEF")).expect(t, 403,
				`{"error":"Insufficient certificate scope","details":{"required":["admin"],"current":"agent"}}`)
		})
	}
	f.addAgent("nocap", "CAFE", api.CapTunnelsWrite)
	for _, rt := range authAgentRoutes {
		t.Run("no capability "+rt.path, func(t *testing.T) {
			f.do(rt.method, rt.path, "", agentHeaders("nocap", "CAFE")).expect(t, 403,
				`{"error":"Insufficient certificate capability","details":{"required":"identity:query","granted":["tunnels:read","tunnels:write"]}}`)
		})
	}
	// Nothing changed.
	if _, err := f.users.Get("admin"); err != nil {
		t.Fatal(err)
	}
	if list, _ := f.users.List(); len(list) != 1 {
		t.Fatalf("users %v", list)
	}
}

func TestAuthRoutesWithoutCertificate(t *testing.T) {
	f := newAuthFixture(t, config.StatusCompleted)
	noProof := http.Header{}
	noProof.Set(HeaderClientVerify, "SUCCESS")
	noProof.Set(HeaderClientDN, "CN=admin,O=Portlama")
	noProof.Set(HeaderClientSerial, adminSerial)
	for _, rt := range authAdminRoutes {
		t.Run(rt.method+" "+rt.path, func(t *testing.T) {
			f.do(rt.method, rt.path, rt.body, noProof).expect(t, 403, "")
		})
	}
}

func TestAuthRoutesBeforeOnboarding(t *testing.T) {
	f := newAuthFixture(t, config.StatusDNSReady)
	f.addAgent("home", "BEEF", api.CapIdentityQuery)
	want := `{"error":"Onboarding not complete","onboardingStatus":"DNS_READY"}`
	for _, rt := range authAdminRoutes {
		t.Run(rt.method+" "+rt.path, func(t *testing.T) {
			f.do(rt.method, rt.path, rt.body, adminHeaders()).expect(t, 503, want)
		})
	}
	for _, rt := range authAgentRoutes {
		t.Run("agent "+rt.path, func(t *testing.T) {
			f.do(rt.method, rt.path, "", agentHeaders("home", "BEEF")).expect(t, 503, want)
		})
	}
}
