package panel

import (
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/auth"
	"github.com/portlama/portlama/internal/config"
)

func TestIdentitySelf(t *testing.T) {
	f := newAuthFixture(t, config.StatusCompleted)
	noHeaders := `{"error":"Identity headers not present — this endpoint requires an Authelia-protected vhost"}`
	// Through the mTLS vhosts nginx blanks the Remote-* headers.
	blank := adminHeaders()
	blank.Set("Remote-User", "")
	blank.Set("Remote-Groups", "")
	f.do("GET", "/api/identity/self", "", blank).expect(t, 400, noHeaders)
	f.do("GET", "/api/identity/self", "", adminHeaders()).expect(t, 400, noHeaders)
	// Headers from a forward-auth vhost are read.
	fwd := adminHeaders()
	fwd.Set("Remote-User", "bob")
	fwd.Set("Remote-Name", "Bob B")
	fwd.Set("Remote-Email", "bob@example.com")
	fwd.Set("Remote-Groups", "family, admins,,")
	f.do("GET", "/api/identity/self", "", fwd).expect(t, 200,
		`{"username":"bob","displayName":"Bob B","email":"bob@example.com","groups":["family","admins"]}`)
	// A client without proof of origin cannot forge them.
	forged := http.Header{}
	forged.Set("Remote-User", "bob")
	forged.Set(HeaderClientVerify, "SUCCESS")
	forged.Set(HeaderClientDN, "CN=admin,O=Portlama")
	forged.Set(HeaderClientSerial, adminSerial)
	f.do("GET", "/api/identity/self", "", forged).expect(t, 403, "")
}

func TestIdentityUsers(t *testing.T) {
	f := newAuthFixture(t, config.StatusCompleted)
	f.addAgent("home", "BEEF", api.CapIdentityQuery)
	for _, u := range []auth.NewUser{
		{Username: "bob", DisplayName: "Bob", Email: "bob@example.com", Password: authTestPass, Groups: []string{"family", "media"}},
		{Username: "carol", DisplayName: "Carol", Email: "carol@example.com", Password: authTestPass, Groups: []string{"family"}},
	} {
		if _, err := f.users.Create(u); err != nil {
			t.Fatal(err)
		}
	}
	for _, hdr := range []func() http.Header{adminHeaders, func() http.Header { return agentHeaders("home", "BEEF") }} {
		r := f.do("GET", "/api/identity/users", "", hdr())
		r.expect(t, 200, `{"users":[
			{"username":"admin","displayname":"Administrator","email":"admin@example.com","groups":["admins"]},
			{"username":"bob","displayname":"Bob","email":"bob@example.com","groups":["family","media"]},
			{"username":"carol","displayname":"Carol","email":"carol@example.com","groups":["family"]}]}`)
		if strings.Contains(r.raw, "$2") || strings.Contains(r.raw, "password") {
			t.Fatalf("password hashes listed: %s", r.raw)
		}
		f.do("GET", "/api/identity/users/bob", "", hdr()).expect(t, 200,
			`{"user":{"username":"bob","displayname":"Bob","email":"bob@example.com","groups":["family","media"]}}`)
		f.do("GET", "/api/identity/users/Some.User-1_x", "", hdr()).expect(t, 404, `{"error":"User not found"}`)
		f.do("GET", "/api/identity/groups", "", hdr()).expect(t, 200, `{"groups":["admins","family","media"]}`)
	}
	for _, bad := range []string{strings.Repeat("a", 101), "bob%20x", "bob%2Cx", "b%C3%B6b"} {
		r := f.do("GET", "/api/identity/users/"+bad, "", adminHeaders())
		r.expect(t, 400, "")
		if p := r.issuePaths(); len(p) != 1 || p[0] != `["username"]` {
			t.Fatalf("%s: %s", bad, r.raw)
		}
	}
	f.do("GET", "/api/identity/users/"+strings.Repeat("a", 100), "", adminHeaders()).expect(t, 404, "")

	// An unreadable users file is a 500 here (not an empty list).
	if err := os.WriteFile(f.users.Path(), []byte("users: [broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/api/identity/users", "/api/identity/users/bob", "/api/identity/groups"} {
		r := f.do("GET", p, "", adminHeaders())
		if r.status != 500 || r.body["error"] != "Failed to read user database" || strings.Contains(r.raw, "broken") && strings.Contains(r.raw, "$2") {
			t.Fatalf("%s: %d %s", p, r.status, r.raw)
		}
	}
}

func FuzzIdentityUsername(f *testing.F) {
	for _, s := range []string{"bob", "Some.User-1_x", "", strings.Repeat("a", 100), strings.Repeat("a", 101), "b ob", "bö", "a/b", "a\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := identityUsername(s)
		ok := len(s) >= 1 && len(s) <= 100
		for _, c := range s {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("_.-", c)) {
				ok = false
			}
		}
		if (err == nil) != ok {
			t.Fatalf("identityUsername(%q) = %v, want ok=%v", s, err, ok)
		}
	})
}
