package auth

import (
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

// strayCleared reports whether the response expires a session cookie on
// domain and path.
func strayCleared(h http.Header, domain, path string) bool {
	for _, line := range h.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(line)
		if err != nil || c.Name != SessionCookieName {
			continue
		}
		if c.Domain == domain && c.Path == path && c.MaxAge < 0 && c.Value == "" {
			return true
		}
	}
	return false
}

func ownCookieCleared(h http.Header) bool { return strayCleared(h, testDomain, "/") }

func TestPlantedSecondSessionCookie(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	e.addUser("mallory")
	alice := e.login("alice")
	mallory := e.login("mallory")
	two := func(first, second string) string {
		return SessionCookieName + "=" + first + "; " + SessionCookieName + "=" + second
	}

	// Sanity: each cookie alone is a session.
	if r := e.authz(alice, testApp); r.code != 200 || r.header.Get("Remote-User") != "alice" {
		t.Fatalf("alice alone: %d %q", r.code, r.header.Get("Remote-User"))
	}

	for _, order := range [][2]string{{mallory, alice}, {alice, mallory}, {alice, alice}} {
		cookie := two(order[0], order[1])
		// Auth request: no session → login redirect marked for cleaning.
		r := e.authz("", testApp, "Cookie", cookie)
		if r.code != http.StatusUnauthorized || r.header.Get("Remote-User") != "" {
			t.Fatalf("auth request with two cookies: %d user %q, want 401", r.code, r.header.Get("Remote-User"))
		}
		loc, err := url.Parse(r.header.Get("Location"))
		if err != nil || loc.Query().Get("rd") != testApp || loc.Query().Get(strayParam) != "1" {
			t.Fatalf("Location %q", r.header.Get("Location"))
		}
		// Portal API: not signed in, and the extra cookies are cleared.
		st := e.get("/api/state", "", "Cookie", cookie)
		if st.code != 200 || !strings.Contains(st.raw, `"username":""`) {
			t.Fatalf("state with two cookies: %d %s, want signed out", st.code, st.raw)
		}
		for _, p := range []string{"/api", "/api/", "/api/state"} {
			if !strayCleared(st.header, testDomain, p) || !strayCleared(st.header, "", p) {
				t.Errorf("state: stray cookie on %s not cleared: %q", p, st.header.Values("Set-Cookie"))
			}
		}
		if ownCookieCleared(st.header) {
			t.Error("state cleared the server's own cookie")
		}
		// Second factor with two cookies: refused.
		if r := e.post("/api/secondfactor/totp", "", map[string]string{"token": "123456"}, "Cookie", cookie); r.code != http.StatusUnauthorized {
			t.Fatalf("TOTP with two cookies: %d, want 401", r.code)
		}
		// The portal page does not bounce back with two cookies.
		if r := e.get("/?rd="+url.QueryEscape(testApp), "", "Cookie", cookie); r.code != 200 {
			t.Fatalf("portal with two cookies: %d, want the login page", r.code)
		}
	}

	// The portal clears cookies planted on the target's paths.
	r := e.get("/?rd="+url.QueryEscape("https://app.demo.localhost:8443/foo/bar?x=1")+"&"+strayParam+"=1", "")
	for _, p := range []string{"/foo", "/foo/", "/foo/bar"} {
		if !strayCleared(r.header, testDomain, p) {
			t.Errorf("portal: stray cookie on the target's %s not cleared: %q", p, r.header.Values("Set-Cookie"))
		}
	}
	if ownCookieCleared(r.header) {
		t.Error("portal cleared the server's own cookie")
	}
	// Without the marker, nothing is cleared.
	if r := e.get("/?rd="+url.QueryEscape("https://app.demo.localhost:8443/foo/bar"), ""); len(r.header.Values("Set-Cookie")) != 0 {
		t.Errorf("portal without marker set cookies: %q", r.header.Values("Set-Cookie"))
	}

	// One cookie: a normal session, nothing cleared.
	st := e.get("/api/state", alice)
	if !strings.Contains(st.raw, `"username":"alice"`) || len(st.header.Values("Set-Cookie")) != 0 {
		t.Fatalf("state with one cookie: %s %q", st.raw, st.header.Values("Set-Cookie"))
	}
	// Logout with a planted cookie still ends the user's own session.
	bye := e.login("alice")
	if r := e.post("/api/logout", "", "", "Cookie", two("planted", bye), "Origin", testPortal); r.code != 200 || !ownCookieCleared(r.header) {
		t.Fatalf("logout with a planted cookie: %d %q", r.code, r.header.Values("Set-Cookie"))
	}
	if r := e.authz(bye, testApp); r.code != http.StatusUnauthorized {
		t.Fatalf("session after logout with a planted cookie: %d, want 401", r.code)
	}

	// A login with a planted cookie clears it and sets a fresh session.
	e.clock.Add(30 * time.Second)
	ff := e.firstFactor("alice", testPass, "Cookie", two(mallory, "planted"))
	if ff.code != 200 || ff.cookie == nil || ff.cookie.Value == "" {
		t.Fatalf("first factor with a planted cookie: %d %s", ff.code, ff.raw)
	}
	if !strayCleared(ff.header, testDomain, "/api") {
		t.Errorf("first factor did not clear the stray cookie: %q", ff.header.Values("Set-Cookie"))
	}
}

func TestCookiePathPrefixes(t *testing.T) {
	cases := map[string][]string{
		"":               {"/"},
		"/":              {"/"},
		"/api/state":     {"/", "/api", "/api/", "/api/state", "/api/state/"},
		"/a/b/":          {"/", "/a", "/a/", "/a/b", "/a/b/"},
		"/a;b/c":         {"/"},
		"/1/2/3/4/5/6/7": {"/", "/1", "/1/", "/2"},
	}
	for in, want := range cases {
		got := cookiePathPrefixes(in)
		if in == "/1/2/3/4/5/6/7" {
			if len(got) != 1+2*maxStrayPathSegments {
				t.Errorf("%q: %d prefixes, want %d", in, len(got), 1+2*maxStrayPathSegments)
			}
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}
