package auth

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/validate"
)

func FuzzDecodeFirstFactor(f *testing.F) {
	for _, s := range []string{
		`{"username":"alice","password":"secret123","keepMeLoggedIn":true,"targetURL":"https://app.demo.localhost/"}`,
		`{"username":"","password":""}`, `{`, `[]`, `null`, `{"username":"a","password":"b"}{}`,
		`{"username":"a\u0000","password":"\ud800"}`, strings.Repeat(`{"a":`, 100),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := DecodeFirstFactor(data)
		if err != nil {
			return
		}
		if req.Username == "" || req.Password == "" || len(req.Username) > 64 || len(req.Password) > 1024 {
			t.Fatalf("accepted %+v", req)
		}
		if len(data) > maxLoginBody {
			t.Fatal("accepted an oversized body")
		}
	})
}

func FuzzDecodeTOTP(f *testing.F) {
	for _, s := range []string{`{"token":"123456","targetURL":"https://a.demo.localhost/"}`, `{"token":"12345"}`,
		`{"token":"١٢٣٤٥٦"}`, `{"token":123456}`, `{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := DecodeTOTP(data)
		if err != nil {
			return
		}
		if len(req.Token) != 6 || strings.Trim(req.Token, "0123456789") != "" {
			t.Fatalf("accepted token %q", req.Token)
		}
	})
}

func FuzzSafeRedirect(f *testing.F) {
	for _, s := range []string{"https://app.demo.localhost/x?y=1", "https://evil.example", "//evil.example",
		"https://demo.localhost.evil.example/", "https://a@demo.localhost", "https://demo.localhost\\@evil",
		"https://[::1]/", "https://app.demo.localhost:8443/", "https://%61pp.demo.localhost/", "HTTPS://APP.DEMO.LOCALHOST/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rd string) {
		out, ok := SafeRedirect(rd, testDomain)
		if !ok {
			return
		}
		// Whatever is accepted must, as a browser would parse it, be https
		// on the base domain or below, without userinfo.
		u, err := url.Parse(out)
		if err != nil || u.Scheme != "https" || u.User != nil || u.Opaque != "" {
			t.Fatalf("SafeRedirect(%q) = %q", rd, out)
		}
		h := u.Hostname()
		if h != testDomain && !strings.HasSuffix(h, "."+testDomain) {
			t.Fatalf("SafeRedirect(%q) = %q: host %q outside the domain", rd, out, h)
		}
		if strings.ContainsAny(out, "\\\t\r\n ") {
			t.Fatalf("SafeRedirect(%q) = %q: ambiguous characters", rd, out)
		}
		if again, ok := SafeRedirect(out, testDomain); !ok || again != out {
			t.Fatalf("not stable: %q → %q → %q", rd, out, again)
		}
	})
}

// FuzzSessionCookie checks that no cookie value other than a stored session
// id is ever accepted, and that decoding never panics.
func FuzzSessionCookie(f *testing.F) {
	key := make([]byte, 32)
	st := &sessionStore{path: f.TempDir() + "/s.json", key: key, m: map[string]*session{}}
	now := time.Unix(1_800_000_000, 0)
	id, err := st.create(session{User: "alice", Level: LevelTwoFactor, Created: now.UnixMilli(), LastSeen: now.UnixMilli()})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{id, id[:42], id + "=", strings.ToUpper(id), "", "bogus", strings.Repeat("A", 43), "%00", id[1:] + "A"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		sess, ok := st.lookup(v, now, false)
		if ok != (v == id) {
			t.Fatalf("lookup(%q) ok = %v", v, ok)
		}
		if ok && sess.User != "alice" {
			t.Fatalf("lookup(%q) = %+v", v, sess)
		}
	})
}

func FuzzParseUsersFile(f *testing.F) {
	f.Add([]byte("users:\n  admin:\n    displayname: admin\n    email: admin@portlama.local\n    password: $2a$12$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234\n    groups:\n      - admins\n"))
	f.Add([]byte("users: {}"))
	f.Add([]byte("users: [1,2]"))
	f.Add([]byte("&a [*a]"))
	f.Add([]byte("users:\n  x:\n    bogus: 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		uf, err := ParseUsersFile(data)
		if err != nil {
			return
		}
		if uf.Users == nil {
			t.Fatal("nil users map")
		}
		out, err := MarshalUsersFile(uf)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		back, err := ParseUsersFile(out)
		if err != nil || len(back.Users) != len(uf.Users) {
			t.Fatalf("round trip: %v (%d vs %d users)", err, len(back.Users), len(uf.Users))
		}
	})
}

func FuzzParseAccessRules(f *testing.F) {
	f.Add([]byte(`{"rules":[{"host":"a.demo.localhost","users":["alice"],"groups":["g"]}]}`))
	f.Add([]byte(`{"rules":[{"host":""}]}`))
	f.Add([]byte(`{"rules":null}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"rules":[],"hosts":["app.demo.localhost","Other.Demo.localhost"]}`))
	f.Add([]byte(`{"hosts":["a b"]}`))
	f.Add([]byte(`{"hosts":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ar, err := ParseAccessRules(data)
		if err != nil {
			return
		}
		p, err := newPolicy(ar)
		if err != nil {
			t.Fatalf("parsed rules rejected: %v", err)
		}
		for h := range p.hosts {
			if validate.FQDN(h) != nil || h != strings.ToLower(h) {
				t.Fatalf("host %q admitted as a redirect target", h)
			}
		}
		rs := p.rules
		for h := range rs {
			// A host with a rule admits nobody outside it but admins.
			r := rs[h]
			if !rs.allows(h, "x-nobody-x", []string{AdminsGroup}) {
				t.Fatal("admins refused")
			}
			listed := false
			for _, u := range r.Users {
				listed = listed || u == "x-nobody-x"
			}
			if !listed && rs.allows(h, "x-nobody-x", nil) {
				t.Fatalf("unlisted user admitted on %q", h)
			}
		}
	})
}

func FuzzSameOriginAs(f *testing.F) {
	for _, s := range []string{"https://app.demo.localhost:8443", "https://app.demo.localhost", "null", "",
		"https://evil.demo.localhost", "https://app.demo.localhost:8443/", "https://u@app.demo.localhost:8443",
		"http://app.demo.localhost:8443", "https://APP.demo.localhost:8443", "https://app.demo.localhost:08443"} {
		f.Add(s)
	}
	target, _ := url.Parse("https://app.demo.localhost:8443/ws?x=1")
	f.Fuzz(func(t *testing.T, origin string) {
		if !sameOriginAs(origin, target) {
			return
		}
		o, err := url.Parse(origin)
		if err != nil || !strings.EqualFold(o.Hostname(), "app.demo.localhost") || o.Port() != "8443" || !strings.EqualFold(o.Scheme, "https") {
			t.Fatalf("%q accepted as the origin of %s", origin, target)
		}
	})
}

func FuzzCookiePathPrefixes(f *testing.F) {
	for _, s := range []string{"/", "", "/api/state", "/a//b", "/a/b/c/d/e/f/g/h", "x/y", "/a;b", "/%2F/.."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		got := cookiePathPrefixes(path)
		if len(got) == 0 || got[0] != "/" || len(got) > 1+2*maxStrayPathSegments {
			t.Fatalf("%q: %q", path, got)
		}
		for _, p := range got {
			if !strings.HasPrefix(path+"/", p) && p != "/" {
				t.Fatalf("%q: %q is not a prefix", path, p)
			}
			if strings.ContainsAny(p, ";,") || !cookiePathSafe(strings.ReplaceAll(p, "/", "x")) {
				t.Fatalf("%q: unsafe cookie path %q", path, p)
			}
		}
	})
}

// FuzzDropForeignCookies: whatever the Cookie header, the clean-up only
// writes well-formed expiries of names it read, never the session cookie,
// and stays within its budget.
func FuzzDropForeignCookies(f *testing.F) {
	big := strings.Repeat("x", 3000)
	for _, s := range []string{"a=" + big + "; b=" + big + "; c=" + big, SessionCookieName + "=s; z=" + big + big + big,
		"a\r\nX: y=" + big + big + big, "=; ;;" + big + big + big, "a b=1; c,d=" + big + big + big} {
		f.Add(s)
	}
	s := &Server{cfg: Config{Domain: "demo.localhost"}, log: slog.New(slog.DiscardHandler)}
	f.Fuzz(func(t *testing.T, cookie string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Cookie", cookie)
		w := httptest.NewRecorder()
		s.dropForeignCookies(w, r)
		total := 0
		for _, v := range w.Header().Values("Set-Cookie") {
			total += len(v)
			name, _, _ := strings.Cut(v, "=")
			if name == SessionCookieName || !cookieNameSafe(name) || !strings.Contains(cookie, name) ||
				strings.ContainsAny(v, "\r\n\x00") || !strings.Contains(v, "; Max-Age=0; Secure") {
				t.Fatalf("bad expiry %q for Cookie %q", v, cookie)
			}
		}
		if total > foreignCookieBudget {
			t.Fatalf("%d bytes of Set-Cookie", total)
		}
	})
}
