package auth

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/portlama/portlama/internal/manage"
)

// A rule is in force when Reload returns: the very next auth request is
// decided by it, every time, without waiting.
func TestReloadAppliesBeforeItReturns(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	e.addUser("bob")
	alice, bob := e.login("alice"), e.login("bob")
	const host = "secret.demo.localhost"
	target := "https://" + host + ":8443/"
	for i := 0; i < 20; i++ {
		allowed, other := "alice", bob
		if i%2 == 1 {
			allowed, other = "bob", alice
		}
		if err := WriteAccessRules(e.dir, AccessRules{Rules: []AccessRule{{Host: host, Users: []string{allowed}}}, Hosts: e.hosts}); err != nil {
			t.Fatal(err)
		}
		if err := e.manage.Reload(context.Background()); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if r := e.authz(other, target); r.code != http.StatusForbidden {
			t.Fatalf("round %d: the user just excluded got %d, want 403", i, r.code)
		}
	}
}

// The acknowledgement carries the generations of both files; content that
// does not parse is refused and changes nothing.
func TestReloadAcknowledgesOrRefuses(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	sess := e.login("alice")
	c := manage.NewClient("auth server", ManageSocketPath(e.dir))
	var ack manage.Ack
	if err := c.Do(context.Background(), http.MethodPost, manage.ReloadPath, nil, &ack); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{UsersFilePath(e.dir), RulesFilePath(e.dir)} {
		want, err := manage.FileGeneration(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := ack.Generations[filepathBase(p)]; got != want || !strings.HasPrefix(got, "sha256:") {
			t.Errorf("generation of %s = %q, want %q", p, got, want)
		}
	}

	e.writeRules(AccessRule{Host: "app.demo.localhost", Users: []string{"alice"}})
	if err := writeTestFile(RulesFilePath(e.dir), []byte(`{"rules":[{"host":"app.demo.localhost","users":["nobody"]}],"hosts":["not a host"]}`)); err != nil {
		t.Fatal(err)
	}
	var rej *manage.RejectedError
	if err := e.manage.Reload(context.Background()); !errors.As(err, &rej) || rej.Status != http.StatusConflict || !strings.Contains(rej.Message, RulesFileName) {
		t.Fatalf("bad rules: %v, want a refusal naming %s", err, RulesFileName)
	}
	if r := e.authz(sess, testApp); r.code != 200 {
		t.Fatalf("after refused rules: %d, want 200 (the previous rules)", r.code)
	}
	// A bad users file is refused too, and keeps the rules as they were.
	good, _ := os.ReadFile(UsersFilePath(e.dir))
	if err := writeTestFile(UsersFilePath(e.dir), []byte("users: [nope")); err != nil {
		t.Fatal(err)
	}
	if err := e.manage.Reload(context.Background()); !errors.As(err, &rej) || !strings.Contains(rej.Message, UsersFileName) {
		t.Fatalf("bad users file: %v", err)
	}
	if err := writeTestFile(UsersFilePath(e.dir), good); err != nil {
		t.Fatal(err)
	}
	// Stopped server: the change is saved but not confirmed.
	e.stop()
	if err := e.manage.Reload(context.Background()); !errors.Is(err, manage.ErrNotConfirmed) {
		t.Fatalf("stopped server: %v, want ErrNotConfirmed", err)
	}
}

func filepathBase(p string) string { return p[strings.LastIndexByte(p, '/')+1:] }

// Without a hosts list the portal sends a signed-in visitor only to itself
// and the panel; with one, also to those hosts.
func TestRedirectOnlyToKnownHosts(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	sess := e.login("alice")
	portal := func(rd string) (int, string) {
		r := e.get("/?rd="+url.QueryEscape(rd), sess)
		return r.code, r.header.Get("Location")
	}
	e.hosts = nil
	e.writeRules()
	for rd, want := range map[string]int{
		"https://panel.demo.localhost:8443/tunnels": 302,
		"https://auth.demo.localhost:8443/x":        302,
		"https://app.demo.localhost:8443/":          200, // no longer listed: the portal page
		"https://panel.demo.localhost/":             200, // another port
	} {
		if code, loc := portal(rd); code != want || (want == 302 && loc != rd) {
			t.Errorf("no hosts, rd=%s: %d %q, want %d", rd, code, loc, want)
		}
	}
	e.hosts = []string{"app.demo.localhost", "other.demo.localhost"}
	e.writeRules()
	for rd, want := range map[string]int{
		"https://app.demo.localhost:8443/a?b=c": 302,
		"https://other.demo.localhost:8443/":    302,
		"https://third.demo.localhost:8443/":    200,
	} {
		if code, loc := portal(rd); code != want || (want == 302 && loc != rd) {
			t.Errorf("hosts listed, rd=%s: %d %q, want %d", rd, code, loc, want)
		}
	}
	// A missing file fails closed as well.
	if err := os.Remove(RulesFilePath(e.dir)); err != nil {
		t.Fatal(err)
	}
	if err := e.manage.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code, _ := portal("https://app.demo.localhost:8443/"); code != 200 {
		t.Errorf("rules file removed: redirect to an app answered %d, want the portal page", code)
	}
}

// Signing out takes a POST from the portal's own page.
func TestLogoutNeedsTheSignInPage(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	sess := e.login("alice")
	if r := e.get("/logout", sess); r.code != 200 || r.cookie != nil {
		t.Fatalf("GET /logout: %d, cookie %v", r.code, r.cookie)
	}
	for _, hdr := range [][]string{
		nil, // no Origin, no Fetch Metadata
		{"Origin", "https://app.demo.localhost:8443"}, // a sibling app
		{"Origin", "null"},
		{"Sec-Fetch-Site", "same-site"},
		{"Origin", "https://auth.demo.localhost"}, // another port
	} {
		if r := e.post("/api/logout", sess, "", hdr...); r.code != http.StatusForbidden || r.cookie != nil {
			t.Errorf("logout with %q: %d, cookie %v; want 403", hdr, r.code, r.cookie)
		}
	}
	if r := e.authz(sess, testApp); r.code != 200 {
		t.Fatalf("session after refused sign-outs: %d, want 200", r.code)
	}
	if r := e.post("/api/logout", sess, "", "Sec-Fetch-Site", "same-origin"); r.code != 200 {
		t.Fatalf("logout from the portal (Fetch Metadata): %d", r.code)
	}
	if r := e.authz(sess, testApp); r.code != 401 {
		t.Fatalf("session after sign-out: %d, want 401", r.code)
	}
}

// A portal request with too many cookie bytes expires every foreign
// cookie on the portal host, the domain and its parents; the session stays.
func TestPortalExpiresForeignCookies(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	sess := e.login("alice")
	big := strings.Repeat("x", 3990)
	hdr := SessionCookieName + "=" + sess + "; a=" + big + "; b=" + big + "; c=" + big + "; small=1"
	r := e.get("/", "", "Cookie", hdr)
	cleared := map[string]bool{}
	for _, v := range r.header.Values("Set-Cookie") {
		name, rest, _ := strings.Cut(v, "=")
		if !strings.HasPrefix(rest, "; ") || !strings.Contains(v, "Max-Age=0") {
			t.Errorf("not an expiry: %q", v)
		}
		for _, d := range []string{"", "; Domain=demo.localhost"} {
			if strings.HasSuffix(v, "Secure"+d) {
				cleared[name+d] = true
			}
		}
	}
	for _, n := range []string{"a", "b", "c", "small"} {
		for _, d := range []string{"", "; Domain=demo.localhost"} {
			if !cleared[n+d] {
				t.Errorf("%s%s not expired; Set-Cookie: %q", n, d, r.header.Values("Set-Cookie"))
			}
		}
	}
	if cleared[SessionCookieName] || cleared[SessionCookieName+"; Domain=demo.localhost"] {
		t.Error("the session cookie was expired")
	}
	if r := e.authz(sess, testApp); r.code != 200 {
		t.Fatalf("session after the clean-up: %d", r.code)
	}
	// A normal Cookie header is left alone.
	if r := e.get("/", "", "Cookie", SessionCookieName+"="+sess+"; theme=dark"); len(r.header.Values("Set-Cookie")) != 0 {
		t.Errorf("small Cookie header: Set-Cookie %q", r.header.Values("Set-Cookie"))
	}
}
