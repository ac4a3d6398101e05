package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/relaytest"
)

// redirectsToPortal asserts that nginx sent the visitor to the login portal
// with rd = the URL they asked for.
func redirectsToPortal(t *testing.T, st *relaytest.Stack, resp *http.Response, wanted string) {
	t.Helper()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("status %d, want 302 to the portal", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	portal, _ := url.Parse(st.Info.AuthURL)
	if loc.Host != portal.Host || loc.Query().Get("rd") != wanted {
		t.Fatalf("Location %q; want %s with rd=%s", loc, portal.Host, wanted)
	}
}

func TestProtectedAppLoginFlow(t *testing.T) {
	st := shared(t)
	c := visitor(st)
	app := appURL(st, "authenticated")
	target := app + "headers?x=1"

	resp, _ := getWith(t, c, target, nil, nil)
	redirectsToPortal(t, st, resp, target)

	u := newUser(t, st, "alice")
	cookie := login(t, st, u, time.Now())
	resp, body := getWith(t, c, target, cookie, map[string]string{"Remote-User": "mallory", "Remote-Groups": "admins"})
	if resp.StatusCode != 200 {
		t.Fatalf("with a session: %d %s", resp.StatusCode, body)
	}
	if !strings.Contains(body, "Remote-User: alice") || strings.Contains(body, "mallory") || strings.Contains(body, "admins") {
		t.Fatalf("app saw wrong identity headers:\n%s", body)
	}
	if strings.Contains(body, "portlama_session") {
		t.Fatalf("the login session cookie reached the app:\n%s", body)
	}
	// The session persists across requests.
	for i := 0; i < 3; i++ {
		if resp, _ := getWith(t, c, app, cookie, nil); resp.StatusCode != 200 {
			t.Fatalf("request %d with the session: %d", i, resp.StatusCode)
		}
	}

	// Bogus and tampered cookies redirect.
	for _, v := range []string{"bogus", cookie.Value[:len(cookie.Value)-2] + "xx", cookie.Value + "a", ""} {
		resp, _ := getWith(t, c, app, &http.Cookie{Name: "portlama_session", Value: v}, nil)
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("cookie %q: %d, want 302", v, resp.StatusCode)
		}
	}

	// Logout ends the session.
	authURL := strings.TrimSuffix(st.Info.AuthURL, "/")
	postJSON(t, c, authURL+"/api/logout", map[string]any{}, cookie)
	if resp, _ := getWith(t, c, app, cookie, nil); resp.StatusCode != http.StatusFound {
		t.Fatalf("after logout: %d, want 302", resp.StatusCode)
	}
}

func TestSessionSurvivesAuthServerRestart(t *testing.T) {
	st := startStack(t)
	c := visitor(st)
	u := newUser(t, st, "carol")
	cookie := login(t, st, u, time.Now())
	app := appURL(st, "authenticated")
	if resp, _ := getWith(t, c, app, cookie, nil); resp.StatusCode != 200 {
		t.Fatalf("before restart: %d", resp.StatusCode)
	}
	st.Restart("portlama-auth")
	if resp, _ := getWith(t, c, app, cookie, nil); resp.StatusCode != 200 {
		t.Fatalf("after an auth server restart: %d", resp.StatusCode)
	}
}

func TestLoginRefusals(t *testing.T) {
	st := shared(t)
	c := visitor(st)
	authURL := strings.TrimSuffix(st.Info.AuthURL, "/")
	u := newUser(t, st, "dave")

	if resp := postJSON(t, c, authURL+"/api/firstfactor", map[string]any{"username": "dave", "password": "wrong-password"}, nil); resp.StatusCode != 401 {
		t.Fatalf("wrong password: %d", resp.StatusCode)
	}
	resp := postJSON(t, c, authURL+"/api/firstfactor", map[string]any{"username": "dave", "password": u.password}, nil)
	half := sessionCookie(resp)
	if resp.StatusCode != 200 || half == nil {
		t.Fatalf("first factor: %d", resp.StatusCode)
	}
	if resp, _ := getWith(t, c, appURL(st, "authenticated"), half, nil); resp.StatusCode != http.StatusFound {
		t.Fatalf("password-only session reached the app: %d", resp.StatusCode)
	}
	wrong := "000000"
	if code(t, u.secret, time.Now()) == wrong {
		wrong = "000001"
	}
	if resp := postJSON(t, c, authURL+"/api/secondfactor/totp", map[string]any{"token": wrong}, half); resp.StatusCode != 401 {
		t.Fatalf("wrong code: %d", resp.StatusCode)
	}
	good := code(t, u.secret, time.Now())
	resp = postJSON(t, c, authURL+"/api/secondfactor/totp", map[string]any{"token": good}, half)
	if resp.StatusCode != 200 {
		t.Fatalf("right code: %d", resp.StatusCode)
	}
	// The same code again, in a new login, is a replay.
	resp = postJSON(t, c, authURL+"/api/firstfactor", map[string]any{"username": "dave", "password": u.password}, nil)
	half = sessionCookie(resp)
	if resp := postJSON(t, c, authURL+"/api/secondfactor/totp", map[string]any{"token": good}, half); resp.StatusCode != 401 {
		t.Fatalf("replayed code: %d", resp.StatusCode)
	}
}

func TestRedirectTargetStaysOnDomain(t *testing.T) {
	st := shared(t)
	c := visitor(st)
	portal := strings.TrimSuffix(st.Info.AuthURL, "/")
	u := newUser(t, st, "erin")
	cookie := login(t, st, u, time.Now())
	// Signed in, the portal sends the visitor on to rd — only under the base domain.
	for rd, allowed := range map[string]bool{
		"https://evil.example/":                   false,
		"https://" + st.Domain + ".evil.example/": false,
		"//evil.example/":                         false,
		appURL(st, "authenticated"):               true,
	} {
		resp, _ := getWith(t, c, portal+"/?rd="+url.QueryEscape(rd), cookie, nil)
		loc := resp.Header.Get("Location")
		if allowed && loc != rd {
			t.Errorf("rd=%s: Location %q, want the target", rd, loc)
		}
		if !allowed && strings.Contains(loc, "evil") {
			t.Errorf("rd=%s: open redirect to %q", rd, loc)
		}
	}
}

func TestRestrictedTunnel(t *testing.T) {
	st := shared(t)
	a := admin(t, st)
	panelURL := st.Info.PanelURL
	mustCall(t, a, "POST", panelURL+"/api/tunnels", map[string]any{
		"subdomain": "family", "port": extraApp(t, "family app"), "agentLabel": st.Info.AgentLabel,
		"accessMode": "restricted", "allowedUsers": []string{"frank"}, "allowedGroups": []string{"relatives"},
	}, 201)
	frank := newUser(t, st, "frank")
	gina := newUser(t, st, "gina", "relatives")
	henry := newUser(t, st, "henry", "friends")
	c := visitor(st)
	app := hostURL(st, "family", "/")
	frankCookie := login(t, st, frank, time.Now())
	// The agent picks the new tunnel up on its next poll.
	eventually(t, 10*time.Second, "restricted app reachable for an allowed user", func() error {
		resp, _ := getWith(t, c, app, frankCookie, nil)
		if resp.StatusCode != 200 {
			return &statusErr{resp.StatusCode}
		}
		return nil
	})
	if resp, _ := getWith(t, c, app, login(t, st, gina, time.Now()), nil); resp.StatusCode != 200 {
		t.Fatalf("member of an allowed group: %d, want 200", resp.StatusCode)
	}
	resp, body := getWith(t, c, app, login(t, st, henry, time.Now()), nil)
	if resp.StatusCode != 403 {
		t.Fatalf("signed-in user not allowed: %d, want 403: %s", resp.StatusCode, body)
	}
}

type statusErr struct{ code int }

func (e *statusErr) Error() string { return http.StatusText(e.code) }
