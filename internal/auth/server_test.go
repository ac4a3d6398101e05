package auth

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func TestAuthRequestWithoutSessionRedirectsToPortal(t *testing.T) {
	e := newEnv(t)
	r := e.authz("", testApp)
	if r.code != http.StatusUnauthorized {
		t.Fatalf("status = %d, want 401", r.code)
	}
	loc := r.header.Get("Location")
	if !strings.HasPrefix(loc, testPortal+"/?rd=") {
		t.Fatalf("Location = %q, want the portal with rd", loc)
	}
	if got := rdOf(t, loc); got != testApp {
		t.Fatalf("rd = %q, want %q", got, testApp)
	}
	if r.header.Get("Remote-User") != "" {
		t.Fatal("401 carries Remote-User")
	}
}

func TestLoginFlowAndSession(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice", "family")

	e.clock.Add(30 * time.Second)
	ff := e.firstFactor("alice", testPass)
	if ff.code != 200 || ff.body.Status != "OK" || ff.cookie == nil {
		t.Fatalf("first factor: %d %s", ff.code, ff.raw)
	}
	c := ff.cookie
	if c.Domain != testDomain || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || c.Path != "/" {
		t.Fatalf("cookie attributes: %+v", c)
	}
	// A half session is not a login.
	if r := e.authz(c.Value, testApp); r.code != http.StatusUnauthorized {
		t.Fatalf("authz with password-only session = %d, want 401", r.code)
	}
	if st := e.get("/api/state", c.Value); !strings.Contains(st.raw, `"authentication_level":1`) {
		t.Fatalf("state after first factor: %s", st.raw)
	}

	tf := e.post("/api/secondfactor/totp", c.Value, map[string]string{"token": e.code("alice"), "targetURL": testApp})
	if tf.code != 200 || tf.cookie == nil {
		t.Fatalf("second factor: %d %s", tf.code, tf.raw)
	}
	if tf.cookie.Value == c.Value {
		t.Fatal("session id not replaced at the second factor")
	}
	if want := `"redirect":"` + testApp + `"`; !strings.Contains(tf.raw, strings.ReplaceAll(want, "&", `&`)) {
		t.Fatalf("second factor answer %s lacks %s", tf.raw, want)
	}
	// The half session id is dead now.
	if r := e.get("/api/state", c.Value); !strings.Contains(r.raw, `"authentication_level":0`) {
		t.Fatalf("old half-session id still live: %s", r.raw)
	}

	sess := tf.cookie.Value
	for i := 0; i < 3; i++ {
		e.clock.Add(time.Minute)
		r := e.authz(sess, testApp)
		if r.code != 200 {
			t.Fatalf("authz #%d = %d, want 200", i, r.code)
		}
		h := r.header
		if h.Get("Remote-User") != "alice" || h.Get("Remote-Groups") != "family" ||
			h.Get("Remote-Name") != "User alice" || h.Get("Remote-Email") != "alice@example.com" {
			t.Fatalf("Remote-* headers: %v", h)
		}
	}
	if st := e.get("/api/state", sess); !strings.Contains(st.raw, `"username":"alice","authentication_level":2`) {
		t.Fatalf("state: %s", st.raw)
	}
	// Already signed in: the portal sends the visitor straight back.
	r := e.get("/?rd="+url.QueryEscape(testApp), sess)
	if r.code != http.StatusFound || r.header.Get("Location") != testApp {
		t.Fatalf("portal with session: %d Location=%q", r.code, r.header.Get("Location"))
	}
	// ... but never to a foreign host.
	r = e.get("/?rd="+url.QueryEscape("https://evil.example/"), sess)
	if r.code != http.StatusOK || r.header.Get("Location") != "" {
		t.Fatalf("portal with evil rd: %d Location=%q", r.code, r.header.Get("Location"))
	}
}

func TestSessionSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	sess := e.login("alice")
	e.clock.Add(time.Minute)
	if r := e.authz(sess, testApp); r.code != 200 {
		t.Fatalf("before restart: %d", r.code)
	}
	e.restart()
	if r := e.authz(sess, testApp); r.code != 200 || r.header.Get("Remote-User") != "alice" {
		t.Fatalf("after restart: %d", r.code)
	}
	// The activity seen before the restart was saved: the idle timer counts
	// from the last request, not from the login.
	e.clock.Add(SessionInactivity - 10*time.Minute)
	if r := e.authz(sess, testApp); r.code != 200 {
		t.Fatalf("before second restart: %d", r.code)
	}
	e.restart()
	e.clock.Add(time.Hour) // 2 h 50 min after login, 1 h after the last request
	if r := e.authz(sess, testApp); r.code != 200 {
		t.Fatalf("activity not kept across restart: %d", r.code)
	}
	data, err := os.ReadFile(filepath.Join(e.dir, SessionsFileName))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), sess) {
		t.Fatal("sessions file contains a raw session id")
	}
}

func TestCorruptSessionsFileStartsEmpty(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	sess := e.login("alice")
	e.stop()
	if err := writeTestFile(filepath.Join(e.dir, SessionsFileName), []byte("{broken")); err != nil {
		t.Fatal(err)
	}
	e.start()
	if r := e.authz(sess, testApp); r.code != http.StatusUnauthorized {
		t.Fatalf("after corrupt sessions file: %d, want 401", r.code)
	}
	if s := e.login("alice"); e.authz(s, testApp).code != 200 {
		t.Fatal("new login after corrupt sessions file failed")
	}
}

func TestLogoutEndsSession(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	sess := e.login("alice")
	r := e.post("/api/logout", sess, map[string]string{}, "Origin", testPortal)
	if r.code != 200 || r.cookie == nil || r.cookie.MaxAge >= 0 {
		t.Fatalf("logout: %d cookie=%+v", r.code, r.cookie)
	}
	if r := e.authz(sess, testApp); r.code != http.StatusUnauthorized {
		t.Fatalf("authz after logout = %d, want 401", r.code)
	}
	e.restart()
	if r := e.authz(sess, testApp); r.code != http.StatusUnauthorized {
		t.Fatalf("authz after logout and restart = %d, want 401", r.code)
	}
}

func TestBadCookiesAreRefused(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	sess := e.login("alice")
	flip := []byte(sess)
	if flip[5] == 'A' {
		flip[5] = 'B'
	} else {
		flip[5] = 'A'
	}
	for name, c := range map[string]string{
		"bogus":     "bogus",
		"empty-ish": "x",
		"tampered":  string(flip),
		"truncated": sess[:len(sess)-1],
		"extended":  sess + "A",
		"other-id":  strings.Repeat("A", len(sess)),
	} {
		if r := e.authz(c, testApp); r.code != http.StatusUnauthorized {
			t.Errorf("%s cookie: authz = %d, want 401", name, r.code)
		}
	}
	if r := e.authz(sess, testApp); r.code != 200 {
		t.Fatalf("genuine cookie: %d", r.code)
	}
}

func TestSessionExpiry(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")

	// Inactivity: 2 h without a request ends the session.
	idle := e.login("alice")
	e.clock.Add(SessionInactivity - time.Minute)
	if r := e.authz(idle, testApp); r.code != 200 {
		t.Fatalf("within inactivity limit: %d", r.code)
	}
	e.clock.Add(SessionInactivity + time.Second)
	if r := e.authz(idle, testApp); r.code != http.StatusUnauthorized {
		t.Fatalf("after inactivity: %d, want 401", r.code)
	}

	// Absolute: 12 h even with steady activity.
	busy := e.login("alice")
	for elapsed := time.Duration(0); elapsed < SessionLifetime-time.Hour; elapsed += time.Hour {
		e.clock.Add(time.Hour)
		if r := e.authz(busy, testApp); r.code != 200 {
			t.Fatalf("active session at %v: %d", elapsed+time.Hour, r.code)
		}
	}
	e.clock.Add(time.Hour + time.Second)
	if r := e.authz(busy, testApp); r.code != http.StatusUnauthorized {
		t.Fatalf("after 12 h: %d, want 401", r.code)
	}

	// A password-only session cannot be completed after its short lifetime.
	e.clock.Add(time.Minute)
	ff := e.firstFactor("alice", testPass)
	e.clock.Add(HalfSessionLifetime + time.Second)
	r := e.post("/api/secondfactor/totp", ff.cookie.Value, map[string]string{"token": e.code("alice")})
	if r.code != http.StatusUnauthorized {
		t.Fatalf("TOTP on an expired half session: %d, want 401", r.code)
	}
}

func TestFailedLogins(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	e.clock.Add(30 * time.Second)

	check := func(name string, r apiResp) {
		t.Helper()
		if r.code != http.StatusUnauthorized || r.body.Status != "KO" || r.body.Message != msgAuthFailed {
			t.Fatalf("%s: %d %s, want 401 KO %q", name, r.code, r.raw, msgAuthFailed)
		}
		if r.cookie != nil && r.cookie.Value != "" {
			t.Fatalf("%s: a session cookie was set", name)
		}
	}
	check("wrong password", e.firstFactor("alice", "wrong password"))
	// From another address, so this test's address stays below the ban.
	check("unknown user", e.firstFactor("mallory", testPass, "X-Real-IP", "198.51.100.50"))

	ff := e.firstFactor("alice", testPass)
	if ff.code != 200 {
		t.Fatalf("first factor: %d", ff.code)
	}
	good := e.code("alice")
	wrong := "000000"
	if good == wrong {
		wrong = "111111"
	}
	check("wrong code", e.post("/api/secondfactor/totp", ff.cookie.Value, map[string]string{"token": wrong}))
	check("no session", e.post("/api/secondfactor/totp", "", map[string]string{"token": good}))
	ok := e.post("/api/secondfactor/totp", ff.cookie.Value, map[string]string{"token": good})
	if ok.code != 200 {
		t.Fatalf("good code: %d %s", ok.code, ok.raw)
	}
	// The same code again, within its window, on a new half session.
	e.clock.Add(5 * time.Second)
	ff2 := e.firstFactor("alice", testPass)
	check("replayed code", e.post("/api/secondfactor/totp", ff2.cookie.Value, map[string]string{"token": good}))
	// The previous step's code is older than the accepted one: refused too.
	prev, _ := codeAt(e.totp["alice"], e.clock.Now().Add(-30*time.Second))
	check("older code", e.post("/api/secondfactor/totp", ff2.cookie.Value, map[string]string{"token": prev}))
}

func TestRegulationBansAndLifts(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	e.addUser("bob")
	ip := func(a string) []string { return []string{"X-Real-IP", a} }

	// Five failures for alice from different addresses within 2 minutes:
	// the fifth starts the ban and says so.
	for i := 0; i < RegulationMaxRetries; i++ {
		e.clock.Add(10 * time.Second)
		want := 401
		if i == RegulationMaxRetries-1 {
			want = 429
		}
		if r := e.firstFactor("alice", "wrong password", ip("198.51.100."+string(rune('1'+i)))...); r.code != want {
			t.Fatalf("failure %d: %d, want %d", i, r.code, want)
		}
	}
	// During the ban the answer says sign-in is blocked and for how long,
	// and is the same for the right and a wrong password.
	e.clock.Add(10 * time.Second)
	right := e.firstFactor("alice", testPass, ip("198.51.100.99")...)
	wrong := e.firstFactor("alice", "wrong password", ip("198.51.100.98")...)
	const blocked = "Sign-in is temporarily blocked after too many failed attempts. Try again in 5 minutes."
	if right.code != 429 || right.body.Message != blocked || right.cookie != nil {
		t.Fatalf("banned user with right password: %d %s, want 429 %q", right.code, right.raw, blocked)
	}
	if wrong.code != right.code || wrong.raw != right.raw || wrong.header.Get("Retry-After") != right.header.Get("Retry-After") {
		t.Fatalf("banned user: right password %d %s (Retry-After %s) differs from wrong password %d %s (Retry-After %s)",
			right.code, right.raw, right.header.Get("Retry-After"), wrong.code, wrong.raw, wrong.header.Get("Retry-After"))
	}
	if ra := right.header.Get("Retry-After"); ra != "290" {
		t.Errorf("Retry-After %q, want 290 (the ban's remaining seconds)", ra)
	}
	// The minutes count down.
	e.clock.Add(4 * time.Minute)
	if r := e.firstFactor("alice", testPass, ip("198.51.100.99")...); r.code != 429 || !strings.Contains(r.body.Message, "Try again in 1 minute.") {
		t.Fatalf("a minute before the ban ends: %d %s", r.code, r.raw)
	}
	e.clock.Add(-4 * time.Minute)
	// Other users are not affected.
	if r := e.firstFactor("bob", testPass, ip("198.51.100.99")...); r.code != 200 {
		t.Fatalf("bob during alice's ban: %d", r.code)
	}
	// The ban lifts after 5 minutes.
	e.clock.Add(RegulationBanTime)
	if r := e.firstFactor("alice", testPass, ip("198.51.100.99")...); r.code != 200 {
		t.Fatalf("after the ban: %d %s", r.code, r.raw)
	}

	// Failures spread over more than 2 minutes do not ban.
	for i := 0; i < 2*RegulationMaxRetries; i++ {
		e.clock.Add(31 * time.Second)
		e.firstFactor("alice", "wrong password", ip("198.51.100.50")...)
	}
	// 31 s apart, at most 4 failures fall in any 2-minute window.
	e.clock.Add(31 * time.Second)
	if r := e.firstFactor("alice", testPass, ip("198.51.100.50")...); r.code != 200 {
		t.Fatalf("slow failures banned the user: %d", r.code)
	}

	// Per address: five failures with different usernames ban the address.
	for i := 0; i < RegulationMaxRetries; i++ {
		e.firstFactor("nobody"+string(rune('a'+i)), "x-wrong-password", ip("192.0.2.1")...)
	}
	if r := e.firstFactor("bob", testPass, ip("192.0.2.1")...); r.code != 429 {
		t.Fatalf("banned address: %d, want 429", r.code)
	}
	if r := e.firstFactor("bob", testPass, ip("192.0.2.2")...); r.code != 200 {
		t.Fatalf("another address: %d", r.code)
	}

	// Wrong TOTP codes count as failures too.
	e.clock.Add(RegulationBanTime)
	ff := e.firstFactor("bob", testPass, ip("192.0.2.3")...)
	for i := 0; i < RegulationMaxRetries; i++ {
		e.post("/api/secondfactor/totp", ff.cookie.Value, map[string]string{"token": "12345" + string(rune('0'+i))}, ip("192.0.2.3")...)
	}
	e.clock.Add(30 * time.Second)
	ff2 := e.firstFactor("bob", testPass, ip("192.0.2.4")...)
	if ff2.code != 429 {
		t.Fatalf("bob after 5 wrong codes: %d, want 429 (banned)", ff2.code)
	}
}

func TestAccessRules(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	e.addUser("bob")
	e.addUser("carol", "family")
	e.addUser("root", AdminsGroup)
	const secret = "https://secret.demo.localhost/x"
	e.writeRules(AccessRule{Host: "secret.demo.localhost", Users: []string{"alice"}, Groups: []string{"family"}})

	cases := []struct {
		user string
		url  string
		want int
	}{
		{"alice", secret, 200},                // listed user
		{"bob", secret, 403},                  // two-factor user, not listed
		{"carol", secret, 200},                // member of a listed group
		{"root", secret, 200},                 // admins always
		{"bob", testApp, 200},                 // host without a rule: any user
		{"bob", "https://evil.example/", 403}, // outside the base domain
		{"bob", "https://demo.localhost.evil.example/", 403},
	}
	cookies := map[string]string{}
	for _, c := range cases {
		if cookies[c.user] == "" {
			cookies[c.user] = e.login(c.user)
		}
		r := e.authz(cookies[c.user], c.url)
		if r.code != c.want {
			t.Errorf("%s → %s: %d, want %d", c.user, c.url, r.code, c.want)
		}
		if c.want != 200 && r.header.Get("Remote-User") != "" {
			t.Errorf("%s → %s: denial carries Remote-User", c.user, c.url)
		}
	}

	// Rules change without a restart; a broken file keeps the last good rules.
	e.writeRules(AccessRule{Host: "secret.demo.localhost", Users: []string{"bob"}})
	if r := e.authz(cookies["alice"], secret); r.code != 403 {
		t.Fatalf("alice after rule change: %d, want 403", r.code)
	}
	if err := writeTestFile(RulesFilePath(e.dir), []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	e.manage.Reload(context.Background())
	if r := e.authz(cookies["alice"], secret); r.code != 403 {
		t.Fatalf("alice after broken rules file: %d, want 403 (last good rules)", r.code)
	}
	if r := e.authz(cookies["bob"], secret); r.code != 200 {
		t.Fatalf("bob after broken rules file: %d, want 200", r.code)
	}
}

func TestSameSiteUnsafeRequests(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	sess := e.login("alice")
	call := func(method, site, origin string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, e.base+"/api/authz/auth-request", nil)
		req.Header.Set("X-Original-URL", testApp)
		req.Header.Set("X-Original-Method", method)
		if site != "" {
			req.Header.Set("Sec-Fetch-Site", site)
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		return e.do(req, sess).code
	}
	cases := []struct {
		method, site, origin string
		want                 int
	}{
		{"POST", "same-site", "https://evil.demo.localhost", 403},
		{"DELETE", "same-site", "https://other.demo.localhost:8443", 403},
		{"PUT", "same-site", "", 403},
		{"POST", "same-site", "https://app.demo.localhost:8443", 200},
		{"POST", "same-origin", "https://app.demo.localhost:8443", 200},
		{"GET", "same-site", "https://evil.demo.localhost", 200},
		{"POST", "", "", 200},
		// Origin decides, with or without Fetch Metadata.
		{"POST", "", "https://evil.demo.localhost:8443", 403},
		{"PATCH", "", "https://other.demo.localhost:8443", 403},
		{"DELETE", "same-origin", "https://evil.demo.localhost:8443", 403},
		{"POST", "", "https://app.demo.localhost", 403},       // another port
		{"POST", "", "http://app.demo.localhost:8443", 403},   // another scheme
		{"POST", "", "null", 403},                             // opaque origin
		{"PUT", "", "https://app.demo.localhost:8443/x", 403}, // not an origin
		{"POST", "", "https://app.demo.localhost:8443", 200},
		{"POST", "cross-site", "", 403},
		{"OPTIONS", "", "https://evil.demo.localhost", 200},
		{"GET", "", "https://evil.demo.localhost", 200},
	}
	for _, c := range cases {
		if got := call(c.method, c.site, c.origin); got != c.want {
			t.Errorf("%s site=%q origin=%q: %d, want %d", c.method, c.site, c.origin, got, c.want)
		}
	}
}

func TestRedirectTargets(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	for _, target := range []string{"https://evil.example", "https://evil.example/?x=demo.localhost", "http://app.demo.localhost/",
		"//evil.example", "https://app.demo.localhost@evil.example/", "javascript:alert(1)",
		// Under the domain but not a name the relay serves, or another port.
		"https://unknown.demo.localhost:8443/", "https://demo.localhost:8443/", "https://app.demo.localhost:9292/",
		"https://app.demo.localhost/"} {
		e.clock.Add(30 * time.Second)
		ff := e.firstFactor("alice", testPass)
		r := e.post("/api/secondfactor/totp", ff.cookie.Value, map[string]string{"token": e.code("alice"), "targetURL": target})
		if r.code != 200 {
			t.Fatalf("login with target %q: %d", target, r.code)
		}
		if strings.Contains(r.raw, "redirect") {
			t.Errorf("target %q was accepted: %s", target, r.raw)
		}
	}
}

func TestSafeRedirect(t *testing.T) {
	cases := []struct {
		rd string
		ok bool
	}{
		{"https://app.demo.localhost/", true},
		{"https://demo.localhost/", true},
		{"https://a.b.demo.localhost:8443/p?q=1#f", true},
		{"https://evil.example", false},
		{"https://evil.example/demo.localhost", false},
		{"https://evildemo.localhost/", false},
		{"https://demo.localhost.evil.example/", false},
		{"http://app.demo.localhost/", false},
		{"//app.demo.localhost/", false},
		{"/relative", false},
		{"https://user:pw@app.demo.localhost/", false},
		{"https://app.demo.localhost\\@evil.example/", false},
		{"https://APP.demo.localhost/", false},
		{"https://app.demo.localhost:99999999/", false},
		{"https:app.demo.localhost", false},
		{"https://app.demo.localhost /", false},
		{"javascript://app.demo.localhost/%0aalert(1)", false},
		{"", false},
	}
	for _, c := range cases {
		if _, ok := SafeRedirect(c.rd, testDomain); ok != c.ok {
			t.Errorf("SafeRedirect(%q) ok = %v, want %v", c.rd, ok, c.ok)
		}
	}
}

func TestLoginAPIRefusesBadRequests(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	body := `{"username":"alice","password":"` + testPass + `"}`
	req, _ := http.NewRequest(http.MethodPost, e.base+"/api/firstfactor", strings.NewReader(body))
	req.Header.Set("Content-Type", "text/plain")
	if r := e.do(req, ""); r.code != http.StatusUnsupportedMediaType || r.cookie != nil {
		t.Errorf("text/plain: %d", r.code)
	}
	if r := e.post("/api/firstfactor", "", body, "Origin", "https://evil.example"); r.code != 403 || r.cookie != nil {
		t.Errorf("cross-origin: %d", r.code)
	}
	if r := e.post("/api/firstfactor", "", body, "Sec-Fetch-Site", "cross-site"); r.code != 403 || r.cookie != nil {
		t.Errorf("cross-site: %d", r.code)
	}
	for _, b := range []string{`{`, `[]`, `{"username":"alice"}`, body + `{}`, `{"username":1,"password":"x"}`} {
		if r := e.post("/api/firstfactor", "", b); r.code != 400 || r.body.Status != "KO" {
			t.Errorf("body %q: %d %s", b, r.code, r.raw)
		}
	}
	if r := e.post("/api/firstfactor", "", body, "Origin", testPortal); r.code != 200 {
		t.Errorf("same origin: %d %s", r.code, r.raw)
	}
}

func TestUsersFileReload(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	// A user added after start can log in at once.
	e.addUser("dave")
	sess := e.login("dave")
	if r := e.authz(sess, testApp); r.code != 200 {
		t.Fatalf("new user: %d", r.code)
	}
	// A disabled user loses access.
	if err := e.users.Update(func(f *UsersFile) error {
		u := f.Users["dave"]
		u.Disabled = true
		f.Users["dave"] = u
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e.manage.Reload(context.Background())
	if r := e.authz(sess, testApp); r.code != 401 {
		t.Fatalf("disabled user: %d, want 401", r.code)
	}
	e.clock.Add(30 * time.Second)
	if r := e.firstFactor("dave", testPass); r.code != 401 {
		t.Fatalf("disabled user login: %d, want 401", r.code)
	}
	if err := e.users.Update(func(f *UsersFile) error {
		u := f.Users["dave"]
		u.Disabled = false
		f.Users["dave"] = u
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e.manage.Reload(context.Background())
	if r := e.authz(sess, testApp); r.code != 200 {
		t.Fatalf("re-enabled user: %d, want 200", r.code)
	}
	// A broken users file keeps the last good copy.
	if err := writeTestFile(UsersFilePath(e.dir), []byte("users: [this is: not valid")); err != nil {
		t.Fatal(err)
	}
	e.manage.Reload(context.Background())
	if r := e.authz(sess, testApp); r.code != 200 {
		t.Fatalf("after a broken users file: %d, want 200", r.code)
	}
	// A user removed from the file loses access at once.
	if err := writeTestFile(UsersFilePath(e.dir), []byte("users: {}\n")); err != nil {
		t.Fatal(err)
	}
	e.manage.Reload(context.Background())
	if r := e.authz(sess, testApp); r.code != 401 {
		t.Fatalf("after removing the user: %d, want 401", r.code)
	}
}

// The fallback for a change nobody announced: the periodic check.
func TestUsersFilePolledWithoutRestart(t *testing.T) {
	e := newEnvPolling(t, 20*time.Millisecond)
	e.addUser("alice", "a")
	sess := e.login("alice")
	g := []string{"b", "c"}
	if _, _, err := e.users.Modify("alice", UserChange{Groups: &g}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		r := e.authz(sess, testApp)
		if r.header.Get("Remote-Groups") == "b,c" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("groups not reloaded: %q", r.header.Get("Remote-Groups"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPasswordChangeEndsSessions(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	sess := e.login("alice")
	pw := "a new password!"
	if _, changed, err := e.users.Modify("alice", UserChange{Password: &pw}); err != nil || !changed {
		t.Fatalf("modify: %v %v", changed, err)
	}
	e.manage.Reload(context.Background())
	if r := e.authz(sess, testApp); r.code != 401 {
		t.Fatalf("session after password change: %d, want 401", r.code)
	}
}

func TestManagementInterface(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.addUser("alice")
	e.addUser("bob")

	if _, err := e.manage.ResetTOTP(ctx, "nobody"); !errors.Is(err, ErrUserNotFound) {
		t.Fatalf("ResetTOTP(unknown) = %v, want ErrUserNotFound", err)
	}
	var me *ManageError
	if _, err := e.manage.ResetTOTP(ctx, "Bad/Name"); !errors.As(err, &me) || (me.Status != 400 && me.Status != 404) {
		t.Fatalf("ResetTOTP(bad name) = %v", err)
	}

	old := e.totp["alice"]
	sess := e.login("alice")
	enr, err := e.manage.ResetTOTP(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[A-Z2-7]{32}$`).MatchString(enr.Secret) || enr.Secret == old {
		t.Fatalf("secret %q", enr.Secret)
	}
	wantURI := "otpauth://totp/Portlama:alice?secret=" + enr.Secret + "&issuer=Portlama&algorithm=SHA1&digits=6&period=30"
	if enr.URI != wantURI {
		t.Fatalf("URI %q, want %q", enr.URI, wantURI)
	}
	if !strings.HasPrefix(enr.QR, "data:image/png;base64,iVBOR") {
		t.Fatalf("QR %.40q", enr.QR)
	}
	if r := e.authz(sess, testApp); r.code != 401 {
		t.Fatalf("session after TOTP reset: %d, want 401", r.code)
	}
	// The old secret no longer works, the new one does.
	e.clock.Add(30 * time.Second)
	ff := e.firstFactor("alice", testPass)
	oldCode, _ := codeAt(old, e.clock.Now())
	newCode, _ := codeAt(enr.Secret, e.clock.Now())
	if oldCode != newCode {
		if r := e.post("/api/secondfactor/totp", ff.cookie.Value, map[string]string{"token": oldCode}); r.code != 401 {
			t.Fatalf("old secret still works: %d", r.code)
		}
	}
	e.totp["alice"] = enr.Secret
	if r := e.post("/api/secondfactor/totp", ff.cookie.Value, map[string]string{"token": newCode}); r.code != 200 {
		t.Fatalf("new secret: %d %s", r.code, r.raw)
	}
	if has, err := e.manage.HasTOTP(ctx, "alice"); err != nil || !has {
		t.Fatalf("HasTOTP = %v %v", has, err)
	}

	// EndSessions (password change).
	s1 := e.login("bob")
	n, err := e.manage.EndSessions(ctx, "bob")
	if err != nil || n != 1 {
		t.Fatalf("EndSessions = %d %v", n, err)
	}
	if r := e.authz(s1, testApp); r.code != 401 {
		t.Fatalf("after EndSessions: %d", r.code)
	}

	// DeleteTOTP (user deletion) ends sessions and the user cannot finish a login.
	s2 := e.login("bob")
	if n, err := e.manage.DeleteTOTP(ctx, "bob"); err != nil || n != 1 {
		t.Fatalf("DeleteTOTP = %d %v", n, err)
	}
	if r := e.authz(s2, testApp); r.code != 401 {
		t.Fatalf("after DeleteTOTP: %d", r.code)
	}
	if has, _ := e.manage.HasTOTP(ctx, "bob"); has {
		t.Fatal("bob still has TOTP")
	}
	e.clock.Add(30 * time.Second)
	ff = e.firstFactor("bob", testPass)
	if r := e.post("/api/secondfactor/totp", ff.cookie.Value, map[string]string{"token": e.code("bob")}); r.code != 401 {
		t.Fatalf("TOTP without secret: %d, want 401", r.code)
	}

	// Modes of everything secret.
	for _, name := range []string{ManageSocketName, TOTPFileName, SessionsFileName, SecretsFileName, UsersFileName} {
		fi, err := os.Stat(filepath.Join(e.dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
}

func TestPortalPages(t *testing.T) {
	e := newEnv(t)
	ext := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9]`)
	for _, p := range []string{"/", "/logout", "/static/portal.js", "/static/portal.css"} {
		r := e.get(p, "")
		if r.code != 200 {
			t.Fatalf("%s: %d", p, r.code)
		}
		csp := r.header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
			t.Errorf("%s CSP %q", p, csp)
		}
		if ext.MatchString(r.raw) {
			t.Errorf("%s references another host: %q", p, ext.FindString(r.raw))
		}
	}
	r := e.get("/denied", "")
	if r.code != 403 || !strings.Contains(r.raw, "Access denied") || !strings.Contains(r.raw, testPortal+"/logout") {
		t.Fatalf("denied page: %d", r.code)
	}
	if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "style-src 'sha256-") || strings.Contains(csp, "script") {
		t.Fatalf("denied CSP %q", csp)
	}
	if r := e.get("/api/nothing", ""); r.code != 404 {
		t.Fatalf("unknown API path: %d", r.code)
	}
}

func TestConfigRefusesBadValues(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []Config{
		{Domain: testDomain},
		{Dir: dir},
		{Dir: dir, Domain: "Bad Domain"},
		{Dir: dir, Domain: testDomain, PortalURL: "http://auth.demo.localhost"},
		{Dir: dir, Domain: testDomain, PortalURL: "https://auth.evil.example"},
	} {
		if _, err := NewServer(c); err == nil {
			t.Errorf("NewServer(%+v) succeeded", c)
		}
	}
}

func TestUnusableAccessRulesRefuseStart(t *testing.T) {
	cfg := func(dir string) Config {
		return Config{Dir: dir, Domain: testDomain, PortalURL: testPortal, BcryptCost: bcrypt.MinCost}
	}
	// Missing file: a fresh relay, no rules.
	if _, err := NewServer(cfg(t.TempDir())); err != nil {
		t.Fatalf("without a rules file: %v", err)
	}
	// A valid file starts.
	good := t.TempDir()
	if err := WriteAccessRules(good, AccessRules{Rules: []AccessRule{{Host: "secret.demo.localhost", Users: []string{"alice"}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewServer(cfg(good)); err != nil {
		t.Fatalf("with valid rules: %v", err)
	}
	cases := map[string]func(path string) error{
		"unparseable":       func(p string) error { return writeTestFile(p, []byte("{not json")) },
		"rule without host": func(p string) error { return writeTestFile(p, []byte(`{"rules":[{"users":["a"]}]}`)) },
		"empty":             func(p string) error { return writeTestFile(p, nil) },
		"unreadable":        func(p string) error { return os.Mkdir(p, 0o700) }, // a directory: read fails even as root
	}
	for name, mk := range cases {
		dir := t.TempDir()
		if err := mk(RulesFilePath(dir)); err != nil {
			t.Fatal(err)
		}
		s, err := NewServer(cfg(dir))
		if err == nil || s != nil {
			t.Errorf("%s rules file: server started", name)
			continue
		}
		if !strings.Contains(err.Error(), RulesFilePath(dir)) {
			t.Errorf("%s rules file: error %q does not name the file", name, err)
		}
	}
}
