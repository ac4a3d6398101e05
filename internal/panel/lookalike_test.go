package panel

import (
	"slices"
	"testing"

	"github.com/portlama/portlama/internal/config"
)

// Look-alikes are refused: punycode subdomains (a browser shows xn--… as
// other characters) and display names with bidi or other invisible format
// characters. Nothing is created by the refusals.
func TestLookAlikesRefused(t *testing.T) {
	e := newRelayEnv(t)
	e.newAgent(t, "home")
	for _, sub := range []string{"xn--80ak6aa92e", "xn--pple-43d", "ab--c"} {
		r := e.do("POST", "/api/tunnels", `{"subdomain":"`+sub+`","port":8080}`, adminHeaders())
		r.expect(t, 400, "")
		if !slices.Contains(r.issuePaths(), `["subdomain"]`) {
			t.Fatalf("subdomain %s: %s", sub, r.raw)
		}
	}
	if n := len(listTunnels(t, e, adminHeaders())); n != 0 {
		t.Fatalf("%d tunnels created", n)
	}

	f := newAuthFixture(t, config.StatusCompleted)
	for _, name := range []string{`admin\u202egnp.exe`, `Bob\u200b`, `\ufeffAlice`} {
		r := f.do("POST", "/api/users", `{"username":"mallory","displayname":"`+name+`","email":"m@example.com","password":"12345678"}`, adminHeaders())
		r.expect(t, 400, "")
		if !slices.Contains(r.issuePaths(), `["displayname"]`) {
			t.Fatalf("display name %s: %s", name, r.raw)
		}
	}
	if _, err := f.users.Get("mallory"); err == nil {
		t.Fatal("a user was created with a look-alike display name")
	}
}
