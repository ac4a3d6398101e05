package panel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/nginx"
	"github.com/portlama/portlama/internal/pki"
)

func sessionCookieOf(r result) *http.Cookie {
	var last *http.Cookie
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == SessionCookieName {
			last = c
		}
	}
	return last
}

func fromAddr(hdr http.Header, addr string) http.Header {
	hdr.Set(HeaderRealIP, addr)
	return hdr
}

func codeJSON(code string) string { return `{"code":"` + code + `"}` }

// setup2FA runs POST setup and returns the panel TOTP secret.
func (f *authFixture) setup2FA(t *testing.T) string {
	t.Helper()
	r := f.do("POST", "/api/settings/2fa/setup", "", adminHeaders())
	r.expect(t, 200, "")
	key, _ := r.body["manualKey"].(string)
	want := "otpauth://totp/Portlama%20Panel:admin?secret=" + key + "&issuer=Portlama%20Panel&algorithm=SHA1&digits=6&period=30"
	if len(key) != 32 || r.body["uri"] != want || !strings.HasPrefix(r.body["totpQr"].(string), "data:image/png;base64,") {
		t.Fatalf("setup answer %s", r.raw)
	}
	return key
}

// enable2FAViaAPI runs setup and confirm and returns the secret and cookie.
func (f *authFixture) enable2FAViaAPI(t *testing.T) (string, string) {
	t.Helper()
	secret := f.setup2FA(t)
	r := f.do("POST", "/api/settings/2fa/confirm", codeJSON(totpCode(t, secret, f.clock.now())), adminHeaders())
	r.expect(t, 200, `{"enabled":true}`)
	c := sessionCookieOf(r)
	if c == nil {
		t.Fatalf("confirm set no session cookie: %v", r.header)
	}
	return secret, c.Value
}

func (f *authFixture) panelConfig(t *testing.T) config.PanelConfig {
	t.Helper()
	c, err := f.store.Load()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPanel2FAFlow(t *testing.T) {
	f := newAuthFixture(t, config.StatusCompleted)
	f.addAgent("home", "BEEF", api.CapIdentityQuery)
	f.do("GET", "/api/settings/2fa", "", adminHeaders()).expect(t, 200, `{"enabled":false,"setupComplete":false}`)
	noSetup := `{"error":"No 2FA setup in progress. Call POST /settings/2fa/setup first."}`
	notEnabled := `{"error":"2FA is not enabled"}`
	f.do("POST", "/api/settings/2fa/confirm", codeJSON("123456"), adminHeaders()).expect(t, 400, noSetup)
	f.do("POST", "/api/settings/2fa/verify", codeJSON("123456"), adminHeaders()).expect(t, 400, notEnabled)
	f.do("POST", "/api/settings/2fa/disable", codeJSON("123456"), adminHeaders()).expect(t, 400, notEnabled)

	secret := f.setup2FA(t)
	c := f.panelConfig(t)
	if c.Panel2FA.Enabled || c.Panel2FA.SetupComplete || c.Panel2FA.Secret == nil || *c.Panel2FA.Secret != secret {
		t.Fatalf("panel2fa after setup: %+v", c.Panel2FA)
	}
	// A new setup replaces the secret.
	secret = f.setup2FA(t)

	badFormat := `{"error":"Code must be exactly 6 digits"}`
	for _, body := range []string{`{}`, `{"code":"12345"}`, `{"code":"1234567"}`, `{"code":123456}`, `{"code":"12345a"}`, `{"code":null}`, `{"code":"１２３４５６"}`} {
		f.do("POST", "/api/settings/2fa/confirm", body, adminHeaders()).expect(t, 400, badFormat)
	}
	f.do("POST", "/api/settings/2fa/confirm", "", adminHeaders()).expect(t, 400, "")
	wrong := fmt.Sprintf("%06d", (atoi(totpCode(t, secret, f.clock.now()))+1)%1000000)
	f.do("POST", "/api/settings/2fa/confirm", codeJSON(wrong), adminHeaders()).expect(t, 401, `{"error":"Invalid TOTP code"}`)
	if f.panelConfig(t).Panel2FA.Enabled || len(f.vhost.called()) != 0 {
		t.Fatal("a wrong code enabled 2FA")
	}

	confirmCode := totpCode(t, secret, f.clock.now())
	r := f.do("POST", "/api/settings/2fa/confirm", codeJSON(confirmCode), adminHeaders())
	r.expect(t, 200, `{"enabled":true}`)
	ck := sessionCookieOf(r)
	if ck == nil || !ck.HttpOnly || !ck.Secure || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || ck.MaxAge != 43200 {
		t.Fatalf("session cookie %+v", ck)
	}
	if got := f.vhost.called(); len(got) != 1 || got[0] != "disable" {
		t.Fatalf("IP vhost calls %v, want [disable]", got)
	}
	c = f.panelConfig(t)
	if !c.Panel2FA.Enabled || !c.Panel2FA.SetupComplete || len(c.SessionSecretOrEmpty()) != 64 {
		t.Fatalf("panel.json after confirm: %+v session secret %q", c.Panel2FA, c.SessionSecretOrEmpty())
	}
	sess, err := DecodeSession(ck.Value, c.SessionSecretOrEmpty())
	if want, _ := pki.ParseSerial(adminSerial); err != nil || sess.CertSerial != want {
		t.Fatalf("cookie payload %+v %v", sess, err)
	}

	// 2FA is now enforced for admins on every non-exempt route.
	required := `{"error":"2fa_required"}`
	f.do("GET", "/api/users", "", adminHeaders()).expect(t, 401, required)
	f.do("GET", "/api/onboarding/status", "", adminHeaders()).expect(t, 401, required)
	f.do("POST", "/api/settings/2fa/setup", "", adminHeaders()).expect(t, 401, required)
	f.do("GET", "/api/users", "", withCookie(adminHeaders(), ck.Value)).expect(t, 200, "")
	f.do("GET", "/api/settings/2fa", "", adminHeaders()).expect(t, 200, `{"enabled":true,"setupComplete":true}`)
	f.do("POST", "/api/settings/2fa/setup", "", withCookie(adminHeaders(), ck.Value)).expect(t, 409, `{"error":"2FA is already enabled"}`)
	f.do("POST", "/api/settings/2fa/confirm", codeJSON("123456"), withCookie(adminHeaders(), ck.Value)).expect(t, 409, `{"error":"2FA is already enabled"}`)
	// The cookie is bound to the certificate that verified.
	otherAdmin := certHeaders("CN=admin,O=Portlama", "0DDD")
	f.do("GET", "/api/users", "", withCookie(otherAdmin, ck.Value)).expect(t, 401, required)
	// Agents are not subject to the panel 2FA.
	f.do("GET", "/api/identity/users", "", agentHeaders("home", "BEEF")).expect(t, 200, "")

	// The code accepted by confirm cannot be replayed to verify.
	f.do("POST", "/api/settings/2fa/verify", codeJSON(confirmCode), otherAdmin).expect(t, 401, `{"error":"Invalid TOTP code"}`)
	f.clock.advance(30 * time.Second)
	code := totpCode(t, secret, f.clock.now())
	r = f.do("POST", "/api/settings/2fa/verify", codeJSON(code), otherAdmin)
	r.expect(t, 200, `{"verified":true}`)
	ck2 := sessionCookieOf(r)
	if ck2 == nil {
		t.Fatal("verify set no cookie")
	}
	f.do("GET", "/api/users", "", withCookie(certHeaders("CN=admin,O=Portlama", "0DDD"), ck2.Value)).expect(t, 200, "")
	f.do("POST", "/api/settings/2fa/verify", codeJSON(code), otherAdmin).expect(t, 401, `{"error":"Invalid TOTP code"}`)

	// Disabling needs a session and a fresh code.
	f.clock.advance(30 * time.Second)
	code = totpCode(t, secret, f.clock.now())
	f.do("POST", "/api/settings/2fa/disable", codeJSON(code), adminHeaders()).expect(t, 401, required)
	f.do("POST", "/api/settings/2fa/disable", codeJSON(wrongOf(t, code)), withCookie(adminHeaders(), ck.Value)).
		expect(t, 401, `{"error":"Invalid TOTP code"}`)
	r = f.do("POST", "/api/settings/2fa/disable", codeJSON(code), withCookie(adminHeaders(), ck.Value))
	r.expect(t, 200, `{"enabled":false}`)
	if cleared := sessionCookieOf(r); cleared == nil || cleared.MaxAge >= 0 || len(r.header.Values("Set-Cookie")) != 1 {
		t.Fatalf("disable did not clear the cookie: %v", r.header["Set-Cookie"])
	}
	if got := f.vhost.called(); len(got) != 2 || got[1] != "enable" {
		t.Fatalf("IP vhost calls %v, want [disable enable]", got)
	}
	c = f.panelConfig(t)
	if c.Panel2FA.Enabled || c.Panel2FA.SetupComplete || c.Panel2FA.Secret != nil || c.SessionSecret != nil {
		t.Fatalf("panel.json after disable: %+v %v", c.Panel2FA, c.SessionSecret)
	}
	f.do("GET", "/api/users", "", adminHeaders()).expect(t, 200, "")
	f.do("GET", "/api/settings/2fa", "", adminHeaders()).expect(t, 200, `{"enabled":false,"setupComplete":false}`)
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func wrongOf(t *testing.T, code string) string {
	t.Helper()
	return fmt.Sprintf("%06d", (atoi(code)+500000)%1000000)
}

func TestPanel2FALimiter(t *testing.T) {
	f := newAuthFixture(t, config.StatusCompleted)
	secret, _ := f.enable2FAViaAPI(t)
	f.clock.advance(30 * time.Second)
	a := func() http.Header { return fromAddr(adminHeaders(), "198.51.100.7") }
	b := func() http.Header { return fromAddr(adminHeaders(), "198.51.100.8") }
	invalid := `{"error":"Invalid TOTP code"}`
	code := totpCode(t, secret, f.clock.now())
	wrong := wrongOf(t, code)

	// 4 failures, a success (does not reset the count), a 5th failure.
	for range 4 {
		f.do("POST", "/api/settings/2fa/verify", codeJSON(wrong), a()).expect(t, 401, invalid)
	}
	f.do("POST", "/api/settings/2fa/verify", codeJSON(code), a()).expect(t, 200, `{"verified":true}`)
	f.do("POST", "/api/settings/2fa/verify", codeJSON(wrong), a()).expect(t, 401, invalid)
	// The next attempt starts the ban, whatever it carries.
	f.clock.advance(30 * time.Second)
	code = totpCode(t, secret, f.clock.now())
	f.do("POST", "/api/settings/2fa/verify", codeJSON(code), a()).
		expect(t, 429, `{"error":"Too many attempts. Try again later.","retryAfter":300}`)
	f.clock.advance(10 * time.Second)
	f.do("POST", "/api/settings/2fa/verify", `{"code":"x"}`, a()).
		expect(t, 429, `{"error":"Too many attempts. Try again later.","retryAfter":290}`)
	// Preconditions run before the limiter.
	f.do("POST", "/api/settings/2fa/setup", "", a()).expect(t, 401, `{"error":"2fa_required"}`)
	// Another address is unaffected.
	f.do("POST", "/api/settings/2fa/verify", codeJSON(totpCode(t, secret, f.clock.now())), b()).expect(t, 200, `{"verified":true}`)
	// After the ban the address may try again.
	f.clock.advance(5 * time.Minute)
	f.do("POST", "/api/settings/2fa/verify", codeJSON(totpCode(t, secret, f.clock.now())), a()).expect(t, 200, `{"verified":true}`)
}

func TestPanel2FAConfirmVhostFailure(t *testing.T) {
	f := newAuthFixture(t, config.StatusCompleted)
	f.vhost.setFail(errors.New("nginx -t failed"))
	secret := f.setup2FA(t)
	r := f.do("POST", "/api/settings/2fa/confirm", codeJSON(totpCode(t, secret, f.clock.now())), adminHeaders())
	r.expect(t, 500, `{"error":"Failed to disable IP vhost. 2FA was not enabled.","details":"nginx -t failed"}`)
	if sessionCookieOf(r) != nil {
		t.Fatal("a session cookie was set although 2FA was not enabled")
	}
	c := f.panelConfig(t)
	if c.Panel2FA.Enabled || c.Panel2FA.SetupComplete || c.Panel2FA.Secret != nil {
		t.Fatalf("panel2fa not reset: %+v", c.Panel2FA)
	}
	f.do("GET", "/api/users", "", adminHeaders()).expect(t, 200, "")
}

// brokenIPVhost cannot switch the IP vhost (its nginx test fails).
type brokenIPVhost struct{}

func (brokenIPVhost) Enable(context.Context) error  { return errBoom }
func (brokenIPVhost) Disable(context.Context) error { return errBoom }

func TestPanel2FAWithoutIPVhostController(t *testing.T) {
	f := newAuthFixture(t, config.StatusCompleted, func(c *Config) { c.Auth.IPVhost = brokenIPVhost{} })
	secret := f.setup2FA(t)
	r := f.do("POST", "/api/settings/2fa/confirm", codeJSON(totpCode(t, secret, f.clock.now())), adminHeaders())
	if r.status != 500 || r.body["error"] != "Failed to disable IP vhost. 2FA was not enabled." {
		t.Fatalf("confirm without IP vhost controller: %d %s", r.status, r.raw)
	}
	if f.panelConfig(t).Panel2FA.Enabled {
		t.Fatal("2FA enabled without an IP vhost controller")
	}
}

func TestPanel2FADisableVhostFailureIsLogged(t *testing.T) {
	f := newAuthFixture(t, config.StatusCompleted)
	secret, ck := f.enable2FAViaAPI(t)
	f.vhost.setFail(errors.New("reload failed"))
	f.clock.advance(30 * time.Second)
	f.do("POST", "/api/settings/2fa/disable", codeJSON(totpCode(t, secret, f.clock.now())), withCookie(adminHeaders(), ck)).
		expect(t, 200, `{"enabled":false}`)
	if f.panelConfig(t).Panel2FA.Enabled {
		t.Fatal("2FA still enabled")
	}
}

func TestPanel2FASetupNeedsDomain(t *testing.T) {
	f := newAuthFixture(t, config.StatusCompleted)
	if _, err := f.store.Update(func(c *config.PanelConfig) error { c.Domain = nil; return nil }); err != nil {
		t.Fatal(err)
	}
	r := f.do("POST", "/api/settings/2fa/setup", "", adminHeaders())
	r.expect(t, 400, "")
	det, _ := r.body["details"].(map[string]any)
	if r.body["error"] != "Domain must be configured before enabling 2FA" || det["hint"] == nil {
		t.Fatalf("body %s", r.raw)
	}
	if f.panelConfig(t).Panel2FA.Secret != nil {
		t.Fatal("setup stored a secret without a domain")
	}
}

func TestPanel2FAVerifyCreatesMissingSessionSecret(t *testing.T) {
	f := newAuthFixture(t, config.StatusCompleted)
	secret, _ := f.enable2FAViaAPI(t)
	if _, err := f.store.Update(func(c *config.PanelConfig) error { c.SessionSecret = nil; return nil }); err != nil {
		t.Fatal(err)
	}
	f.clock.advance(30 * time.Second)
	r := f.do("POST", "/api/settings/2fa/verify", codeJSON(totpCode(t, secret, f.clock.now())), adminHeaders())
	r.expect(t, 200, `{"verified":true}`)
	f.do("GET", "/api/users", "", withCookie(adminHeaders(), sessionCookieOf(r).Value)).expect(t, 200, "")
}

func TestCodeLimiterBounded(t *testing.T) {
	l := newCodeLimiter()
	fail := func(addr string, at time.Time) {
		if _, ok := l.Begin(at, addr); ok {
			l.End(at, true, addr)
		}
	}
	allow := func(addr string, at time.Time) (int, bool) {
		d, ok := l.Begin(at, addr)
		if ok {
			l.End(at, false, addr)
		}
		return ceilSeconds(d), ok
	}
	now := time.Unix(1_800_000_000, 0)
	for i := range totpMaxTracked {
		fail(fmt.Sprintf("10.0.%d.%d", i/256, i%256), now)
	}
	// a banned address survives eviction
	banned := "192.0.2.1"
	for range totpMaxFailures {
		fail(banned, now)
	}
	if _, ok := allow(banned, now); ok {
		t.Fatal("6th attempt allowed")
	}
	for i := range 50 {
		fail(fmt.Sprintf("172.16.0.%d", i), now.Add(time.Duration(i+1)*time.Second))
		if n := l.Tracked(); n > totpMaxTracked {
			t.Fatalf("%d addresses tracked, limit %d", n, totpMaxTracked)
		}
	}
	if retry, ok := allow(banned, now.Add(time.Minute)); ok || retry != 240 {
		t.Fatalf("banned address evicted: retry %d ok %v", retry, ok)
	}
	// stale entries are dropped first
	later := now.Add(time.Hour)
	fail("203.0.113.99", later)
	if n := l.Tracked(); n != 1 {
		t.Fatalf("%d addresses tracked after all others went stale, want 1", n)
	}
}

// Parallel wrong codes from one address get no more guesses than
// sequential ones (the regulator counts attempts in flight).
func TestCodeLimiterCountsParallelAttempts(t *testing.T) {
	l := newCodeLimiter()
	now := time.Unix(1_800_000_000, 0)
	admitted := 0
	for range 20 {
		if _, ok := l.Begin(now, "198.51.100.7"); ok {
			admitted++
		}
	}
	if admitted != totpMaxFailures {
		t.Fatalf("%d parallel attempts admitted, want %d", admitted, totpMaxFailures)
	}
}

var sixDigits = regexp.MustCompile(`^[0-9]{6}$`)

// FuzzPanelCode feeds arbitrary bodies through the 2FA code body schema and
// parser: a code is accepted only when the body is an object whose "code"
// is a string of exactly six ASCII digits.
func FuzzPanelCode(f *testing.F) {
	for _, s := range []string{`{"code":"123456"}`, `{"code":123456}`, `{"code":"12345"}`, `{"code":"１２３４５６"}`,
		`{"code":"123456","x":1}`, `{}`, `[]`, `"123456"`, `{"code":"12345\u0000"}`, `{"code":["123456"]}`, `null`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		v, err := ParseJSON([]byte(data))
		if err != nil {
			return
		}
		cleaned, issues := Validate(codeBody, v)
		if len(issues) > 0 {
			if _, isObj := v.(map[string]any); isObj {
				t.Fatalf("object body %q refused by the schema: %v", data, issues)
			}
			return
		}
		code, ok := panelCode(cleaned)
		var raw map[string]any
		json.Unmarshal([]byte(data), &raw)
		want, isStr := raw["code"].(string)
		wantOK := isStr && sixDigits.MatchString(want)
		if ok != wantOK || (ok && code != want) {
			t.Fatalf("panelCode(%q) = %q %v, want %q %v", data, code, ok, want, wantOK)
		}
	})
}

type recordingSwitch struct{ calls []string }

func (r *recordingSwitch) EnableVhost(_ context.Context, name string) error {
	r.calls = append(r.calls, "enable "+name)
	return nil
}

func (r *recordingSwitch) DisableVhost(_ context.Context, name string) error {
	r.calls = append(r.calls, "disable "+name)
	return errors.New("nginx -t failed")
}

var _ VhostSwitch = (*nginx.Manager)(nil)

func TestNamedVhost(t *testing.T) {
	sw := &recordingSwitch{}
	var v IPVhost = NamedVhost{Nginx: sw, Name: PanelIPVhostName}
	if err := v.Enable(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := v.Disable(context.Background()); err == nil {
		t.Fatal("Disable hid the switch's error")
	}
	if strings.Join(sw.calls, ",") != "enable portlama-panel-ip,disable portlama-panel-ip" {
		t.Fatalf("calls %v", sw.calls)
	}
}
