package panel

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/auth"
	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/invitepage"
	"github.com/portlama/portlama/internal/testutil"
	"github.com/portlama/portlama/internal/validate"
)

// invite creates an invitation through the API and returns the answer.
func (f *authFixture) invite(t *testing.T, body string) result {
	t.Helper()
	r := f.do("POST", "/api/invitations", body, adminHeaders())
	r.expect(t, 201, "")
	return r
}

func tokenOf(t *testing.T, r result) string {
	t.Helper()
	tok, _ := r.body["token"].(string)
	if validate.Token(tok) != nil {
		t.Fatalf("token in %s", r.raw)
	}
	return tok
}

func TestInvitationsCreateAndList(t *testing.T) {
	f := newAuthFixture(t, config.StatusCompleted)
	f.do("GET", "/api/invitations", "", adminHeaders()).expect(t, 200, `{"invitations":[]}`)

	r := f.invite(t, `{"username":"bob","email":"bob@example.com","groups":["family"],"expiresInDays":3,"extra":"ignored"}`)
	tok := tokenOf(t, r)
	inv := r.body["invitation"].(map[string]any)
	id, _ := inv["id"].(string)
	if validate.UUID(id) != nil {
		t.Fatalf("id %q", id)
	}
	want := `{"ok":true,"invitation":{"id":"` + id + `","username":"bob","email":"bob@example.com","groups":["family"],` +
		`"createdAt":"2027-01-15T08:00:00.000Z","expiresAt":"2027-01-18T08:00:00.000Z"},` +
		`"inviteUrl":"https://auth.example.com/invite/#` + tok + `","token":"` + tok + `"}`
	r.expect(t, 201, want)

	// default expiry 7 days, default groups []
	r2 := f.invite(t, `{"username":"carol","email":"carol@example.com"}`)
	inv2 := r2.body["invitation"].(map[string]any)
	if inv2["expiresAt"] != "2027-01-22T08:00:00.000Z" || len(inv2["groups"].([]any)) != 0 {
		t.Fatalf("defaults: %s", r2.raw)
	}

	list := f.do("GET", "/api/invitations", "", adminHeaders())
	list.expect(t, 200, "")
	if strings.Contains(list.raw, tok) || strings.Contains(list.raw, `"token"`) {
		t.Fatalf("list reveals the token: %s", list.raw)
	}
	items := list.body["invitations"].([]any)
	first := items[0].(map[string]any)
	if len(items) != 2 || first["status"] != "pending" || first["used"] != false || first["acceptedAt"] != nil || first["username"] != "bob" {
		t.Fatalf("list %s", list.raw)
	}

	f.do("POST", "/api/invitations", `{"username":"bob","email":"other@example.com"}`, adminHeaders()).
		expect(t, 409, `{"error":"A pending invitation already exists for this username"}`)
	f.do("POST", "/api/invitations", `{"username":"admin","email":"a@example.com"}`, adminHeaders()).
		expect(t, 409, `{"error":"Username already exists as an Authelia user"}`)

	for _, body := range []string{
		``, `{"email":"d@example.com"}`, `{"username":"Dave","email":"d@example.com"}`,
		`{"username":"dave","email":"d"}`, `{"username":"dave","email":"d@example.com","expiresInDays":0}`,
		`{"username":"dave","email":"d@example.com","expiresInDays":31}`, `{"username":"dave","email":"d@example.com","expiresInDays":"7"}`,
		`{"username":"dave","email":"d@example.com","expiresInDays":1.5}`, `{"username":"dave","email":"d@example.com","groups":["x y"]}`,
	} {
		r := f.do("POST", "/api/invitations", body, adminHeaders())
		r.expect(t, 400, "")
		if r.body["error"] != "Validation failed" {
			t.Fatalf("%s: %s", body, r.raw)
		}
	}
	data, err := os.ReadFile(f.srv.cfg.Layout.InvitationsFile())
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(f.srv.cfg.Layout.InvitationsFile()); fi.Mode().Perm() != 0o600 {
		t.Fatalf("invitations.json mode %v", fi.Mode().Perm())
	}
	var stored []map[string]any
	if err := json.Unmarshal(data, &stored); err != nil || len(stored) != 2 || stored[0]["token"] != tok {
		t.Fatalf("invitations.json: %s", data)
	}
}

func TestInvitationURLs(t *testing.T) {
	f := newAuthFixture(t, config.StatusCompleted, func(c *Config) { c.Addrs.HTTPSPort = 8443 })
	r := f.invite(t, `{"username":"bob","email":"bob@example.com"}`)
	tok := tokenOf(t, r)
	if r.body["inviteUrl"] != "https://auth.example.com:8443/invite/#"+tok {
		t.Fatalf("inviteUrl %v", r.body["inviteUrl"])
	}
	a := f.do("POST", "/api/invite/accept", acceptBody(tok, `{"password":"`+authTestPass+`"}`), nil)
	a.expect(t, 200, "")
	if a.body["loginUrl"] != "https://auth.example.com:8443/" {
		t.Fatalf("loginUrl %v", a.body["loginUrl"])
	}

	// Without a domain the URL is null.
	g := newAuthFixture(t, config.StatusCompleted)
	if _, err := g.store.Update(func(c *config.PanelConfig) error { c.Domain = nil; return nil }); err != nil {
		t.Fatal(err)
	}
	r = g.invite(t, `{"username":"bob","email":"bob@example.com"}`)
	if v, ok := r.body["inviteUrl"]; !ok || v != nil {
		t.Fatalf("inviteUrl without domain: %s", r.raw)
	}
}

func TestInvitationsRevoke(t *testing.T) {
	f := newAuthFixture(t, config.StatusCompleted)
	r := f.invite(t, `{"username":"bob","email":"bob@example.com"}`)
	tok := tokenOf(t, r)
	id := r.body["invitation"].(map[string]any)["id"].(string)
	f.do("DELETE", "/api/invitations/not-a-uuid", "", adminHeaders()).expect(t, 400, "")
	for _, unknown := range []string{"1b4e28ba-2fa1-4d2e-883f-0016d3cca427", "00000000-0000-0000-0000-000000000000", "1B4E28BA-2FA1-4D2E-883F-0016D3CCA427"} {
		f.do("DELETE", "/api/invitations/"+unknown, "", adminHeaders()).
			expect(t, 404, `{"error":"Invitation not found"}`)
	}
	f.do("DELETE", "/api/invitations/"+id, "", adminHeaders()).expect(t, 200, `{"ok":true}`)
	f.do("DELETE", "/api/invitations/"+id, "", adminHeaders()).expect(t, 404, `{"error":"Invitation not found"}`)
	f.do("POST", "/api/invite/lookup", lookupBody(tok), nil).expect(t, 404, `{"error":"Invitation not found"}`)
	f.do("GET", "/api/invitations", "", adminHeaders()).expect(t, 200, `{"invitations":[]}`)
	// A revoked invitation no longer blocks a new one.
	f.invite(t, `{"username":"bob","email":"bob@example.com"}`)
}

func TestInvitationsBrokenFile(t *testing.T) {
	f := newAuthFixture(t, config.StatusCompleted)
	if err := os.WriteFile(f.srv.cfg.Layout.InvitationsFile(), []byte("{broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := f.do("GET", "/api/invitations", "", adminHeaders())
	r.expect(t, 500, "")
	if r.body["error"] != "Failed to read invitations" {
		t.Fatal(r.raw)
	}
	r = f.do("POST", "/api/invitations", `{"username":"bob","email":"bob@example.com"}`, adminHeaders())
	r.expect(t, 500, "")
	if r.body["error"] != "Failed to save invitation" {
		t.Fatal(r.raw)
	}
	r = f.do("DELETE", "/api/invitations/1b4e28ba-2fa1-4d2e-883f-0016d3cca427", "", adminHeaders())
	if r.status != 500 || r.body["error"] != "Failed to revoke invitation" {
		t.Fatal(r.raw)
	}
}

// lookupBody is the body of POST /api/invite/lookup.
func lookupBody(tok string) string { return `{"token":"` + tok + `"}` }

// acceptBody adds the token to an accept body ("" stands for a body
// without a password).
func acceptBody(tok, body string) string {
	if body == "" || body == "{}" {
		return lookupBody(tok)
	}
	return `{"token":"` + tok + `",` + strings.TrimPrefix(body, "{")
}

// Tokens never travel in paths (they would be logged): the old path routes
// do not exist, and the public routes need a well-formed token in the body.
func TestInvitationTokenNotInPath(t *testing.T) {
	f := newAuthFixture(t, config.StatusCompleted)
	tok := tokenOf(t, f.invite(t, `{"username":"bob","email":"bob@example.com"}`))
	f.do("GET", "/api/invite/"+tok, "", nil).expect(t, 404, `{"error":"Not found"}`)
	f.do("POST", "/api/invite/"+tok+"/accept", `{"password":"`+authTestPass+`"}`, nil).expect(t, 404, `{"error":"Not found"}`)
	f.do("POST", "/api/invite/lookup", "", nil).expect(t, 400, "")
	f.do("POST", "/api/invite/lookup", `{"token":12}`, nil).expect(t, 400, "")
	f.do("POST", "/api/invite/accept", `{"password":"`+authTestPass+`"}`, nil).expect(t, 400, "")
	if _, err := f.users.Get("bob"); err == nil {
		t.Fatal("user created by a refused request")
	}
	f.do("POST", "/api/invite/lookup", lookupBody(tok), nil).expect(t, 200, "")
}

// TestInvitationAccept is the whole flow: invite, open, accept, log in to
// the real auth server with password and TOTP, and no reuse.
func TestInvitationAccept(t *testing.T) {
	// Public routes are not onboarding-gated: the invitation is created
	// after completion, then the state is moved back to check that.
	f := newAuthFixture(t, config.StatusCompleted)
	tok := tokenOf(t, f.invite(t, `{"username":"bob","email":"bob@example.com","groups":["family","media"],"expiresInDays":1}`))
	f.setStatus(config.StatusProvisioning)

	// No certificate, no proof of origin needed.
	f.do("POST", "/api/invite/lookup", lookupBody(tok), nil).expect(t, 200,
		`{"username":"bob","email":"bob@example.com","expiresAt":"2027-01-16T08:00:00.000Z"}`)
	f.do("POST", "/api/invite/lookup", lookupBody(strings.ToUpper(tok)), nil).expect(t, 400, "")
	f.do("POST", "/api/invite/lookup", lookupBody(tok[:63]), nil).expect(t, 400, "")
	f.do("POST", "/api/invite/lookup", lookupBody(strings.Repeat("0", 64)), nil).expect(t, 404, `{"error":"Invitation not found"}`)

	for _, body := range []string{``, `{}`, `{"password":"short"}`, `{"password":12345678}`, `{"password":"` + strings.Repeat("p", 129) + `"}`} {
		f.do("POST", "/api/invite/accept", acceptBody(tok, body), nil).expect(t, 400, "")
	}
	f.do("POST", "/api/invite/accept", acceptBody(strings.Repeat("0", 64), `{"password":"`+authTestPass+`"}`), nil).
		expect(t, 404, `{"error":"Invitation not found"}`)
	// Cross-origin browsers are refused; the auth origin is allowed.
	f.do("POST", "/api/invite/accept", acceptBody(tok, `{"password":"`+authTestPass+`"}`), http.Header{"Origin": {"https://evil.example"}}).
		expect(t, 403, `{"error":"Cross-origin request refused"}`)
	if _, err := f.users.Get("bob"); err == nil {
		t.Fatal("user created by a refused request")
	}

	r := f.do("POST", "/api/invite/accept", acceptBody(tok, `{"password":"`+authTestPass+`"}`),
		http.Header{"Origin": {"https://auth.example.com"}})
	r.expect(t, 200, "")
	uri, _ := r.body["totpUri"].(string)
	qr, _ := r.body["totpQr"].(string)
	if r.body["ok"] != true || r.body["username"] != "bob" || r.body["loginUrl"] != "https://auth.example.com/" ||
		!strings.HasPrefix(uri, "otpauth://totp/Portlama:bob?secret=") || !strings.HasPrefix(qr, "data:image/png;base64,") {
		t.Fatalf("accept answer %s", r.raw)
	}
	u, err := f.users.Get("bob")
	if err != nil || u.DisplayName != "bob" || u.Email != "bob@example.com" || strings.Join(u.Groups, ",") != "family,media" {
		t.Fatalf("created user %+v %v", u, err)
	}
	if err := f.login(t, "bob", authTestPass, secretOf(t, uri)); err != nil {
		t.Fatalf("invited user cannot log in: %v", err)
	}
	if err := f.login(t, "bob", "wrong password!", secretOf(t, uri)); err == nil {
		t.Fatal("wrong password accepted")
	}

	used := `{"error":"This invitation has already been used"}`
	f.do("POST", "/api/invite/lookup", lookupBody(tok), nil).expect(t, 410, used)
	f.do("POST", "/api/invite/accept", acceptBody(tok, `{"password":"another password"}`), nil).expect(t, 410, used)
	if err := f.login(t, "bob", "another password", secretOf(t, uri)); err == nil {
		t.Fatal("reusing the invitation changed the password")
	}

	f.setStatus(config.StatusCompleted)
	list := f.do("GET", "/api/invitations", "", adminHeaders())
	item := list.body["invitations"].([]any)[0].(map[string]any)
	if item["status"] != "accepted" || item["used"] != true || item["acceptedAt"] != "2027-01-15T08:00:00.000Z" {
		t.Fatalf("after accept: %s", list.raw)
	}
}

func TestInvitationExpired(t *testing.T) {
	f := newAuthFixture(t, config.StatusCompleted)
	tok := tokenOf(t, f.invite(t, `{"username":"bob","email":"bob@example.com","expiresInDays":1}`))
	f.clock.advance(24 * time.Hour)
	f.do("POST", "/api/invite/lookup", lookupBody(tok), nil).expect(t, 200, "")
	f.clock.advance(time.Second)
	expired := `{"error":"This invitation has expired"}`
	f.do("POST", "/api/invite/lookup", lookupBody(tok), nil).expect(t, 410, expired)
	f.do("POST", "/api/invite/accept", acceptBody(tok, `{"password":"`+authTestPass+`"}`), nil).expect(t, 410, expired)
	if _, err := f.users.Get("bob"); err == nil {
		t.Fatal("expired invitation created a user")
	}
	list := f.do("GET", "/api/invitations", "", adminHeaders())
	if item := list.body["invitations"].([]any)[0].(map[string]any); item["status"] != "expired" {
		t.Fatalf("status %v", item["status"])
	}
	// An expired invitation does not block a new one.
	f.invite(t, `{"username":"bob","email":"bob@example.com"}`)
}

func TestInvitationAcceptExistingUser(t *testing.T) {
	f := newAuthFixture(t, config.StatusCompleted)
	tok := tokenOf(t, f.invite(t, `{"username":"bob","email":"bob@example.com"}`))
	// The admin creates bob directly before the invitee accepts.
	f.do("POST", "/api/users", `{"username":"bob","displayname":"Bob","email":"b@example.com","password":"12345678"}`, adminHeaders()).expect(t, 201, "")
	f.do("POST", "/api/invite/accept", acceptBody(tok, `{"password":"`+authTestPass+`"}`), nil).
		expect(t, 409, `{"error":"This username already exists"}`)
	if u, _ := f.users.Get("bob"); u.DisplayName != "Bob" {
		t.Fatalf("existing user changed: %+v", u)
	}
}

func TestInvitationAcceptWithoutAuthServer(t *testing.T) {
	f := newAuthFixture(t, config.StatusCompleted, func(c *Config) {
		c.Auth.TOTP = auth.NewManageClient("/nonexistent/portlama/manage.sock")
	})
	tok := tokenOf(t, f.invite(t, `{"username":"bob","email":"bob@example.com"}`))
	f.do("POST", "/api/invite/accept", acceptBody(tok, `{"password":"`+authTestPass+`"}`), nil).expect(t, 200,
		`{"ok":true,"username":"bob","loginUrl":"https://auth.example.com/","totpUri":null,"totpQr":null}`)
	if _, err := f.users.Get("bob"); err != nil {
		t.Fatalf("account not created: %v", err)
	}
	f.do("POST", "/api/invite/lookup", lookupBody(tok), nil).expect(t, 410, `{"error":"This invitation has already been used"}`)
}

// pageDriver runs the invitation page's script in node against a minimal
// DOM built from index.html's element ids, with fetch going to the real
// panel. It fills in the password (first mismatched, then matching),
// submits, and prints what the page shows as JSON.
const pageDriver = `
const fs = require('fs'), vm = require('vm');
const [,, dir, base, token] = process.argv;
const html = fs.readFileSync(dir + '/index.html', 'utf8');
const js = fs.readFileSync(dir + '/invite.js', 'utf8');
const els = {};
for (const m of html.matchAll(/<([a-z0-9]+)[^>]*\sid="([^"]+)"([^>]*)>/g)) {
  const attrs = m[0];
  els[m[2]] = { id: m[2], hidden: /\shidden[\s>]/.test(attrs), textContent: '', value: '', src: '', href: '',
    disabled: false, listeners: {}, focus() {}, addEventListener(t, fn) { (this.listeners[t] ||= []).push(fn); } };
}
const requests = [], replaced = [];
const document = {
  readyState: 'complete',
  getElementById(id) { if (!els[id]) throw new Error('no element #' + id); return els[id]; },
  addEventListener() {},
};
const sandbox = {
  document, window: { location: { pathname: '/invite/', hash: '#' + token },
    history: { replaceState(s, t, url) { sandbox.window.location.hash = ''; replaced.push(url); } } },
  URLSearchParams, Date, JSON, isNaN,
  fetch: (path, opts) => { requests.push({ path, method: opts.method, headers: opts.headers, body: opts.body }); return fetch(base + path, opts); },
};
vm.runInNewContext(js, sandbox);
const settle = () => new Promise(r => setTimeout(r, 300));
const visible = () => ['loading', 'error', 'form-section', 'done'].filter(s => !els[s].hidden);
(async () => {
  await settle();
  const out = { afterLoad: visible(), username: els.username.value, email: els.email.value, expires: els.expires.textContent };
  const submit = async () => { for (const fn of els['accept-form'].listeners.submit || []) fn({ preventDefault() {} }); await settle(); };
  els.password.value = 'correct horse battery'; els.confirm.value = 'correct horse batterx';
  await submit();
  out.mismatch = { shown: visible(), error: els['form-error'].textContent, errorHidden: els['form-error'].hidden };
  els.confirm.value = 'correct horse battery';
  await submit();
  out.done = { shown: visible(), user: els['done-username'].textContent, qr: els.qr.src.slice(0, 22), key: els['manual-key'].textContent,
    totpShown: !els.totp.hidden, login: els['login-link'].href, passwordCleared: els.password.value === '' };
  out.requests = requests.map(r => r.method + ' ' + r.path);
  out.tokenInBodies = requests.every(r => JSON.parse(r.body).token === token);
  out.fragmentCleared = replaced.length === 1 && sandbox.window.location.hash === '';
  console.log(JSON.stringify(out));
})().catch(e => { console.error(e); process.exit(1); });
`

// TestInvitationPage runs the real page script against the real panel and
// auth server, then logs in with the key the page displayed.
func TestInvitationPage(t *testing.T) {
	node := testutil.NeedBinary(t, "node")
	f := newAuthFixture(t, config.StatusCompleted)
	tok := tokenOf(t, f.invite(t, `{"username":"bob","email":"bob@example.com"}`))
	www := t.TempDir()
	if err := invitepage.Write(www); err != nil {
		t.Fatal(err)
	}
	driver := filepath.Join(t.TempDir(), "driver.js")
	if err := os.WriteFile(driver, []byte(pageDriver), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, node, driver, filepath.Join(www, invitepage.Dir), f.http.URL, tok).CombinedOutput()
	if err != nil {
		t.Fatalf("page driver: %v\n%s", err, out)
	}
	var got struct {
		AfterLoad []string `json:"afterLoad"`
		Username  string   `json:"username"`
		Email     string   `json:"email"`
		Mismatch  struct {
			Shown       []string `json:"shown"`
			Error       string   `json:"error"`
			ErrorHidden bool     `json:"errorHidden"`
		} `json:"mismatch"`
		Done struct {
			Shown           []string `json:"shown"`
			User            string   `json:"user"`
			QR              string   `json:"qr"`
			Key             string   `json:"key"`
			TOTPShown       bool     `json:"totpShown"`
			Login           string   `json:"login"`
			PasswordCleared bool     `json:"passwordCleared"`
		} `json:"done"`
		Requests        []string `json:"requests"`
		TokenInBodies   bool     `json:"tokenInBodies"`
		FragmentCleared bool     `json:"fragmentCleared"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("driver output %s: %v", out, err)
	}
	if strings.Join(got.AfterLoad, ",") != "form-section" || got.Username != "bob" || got.Email != "bob@example.com" {
		t.Fatalf("after load: %s", out)
	}
	if strings.Join(got.Mismatch.Shown, ",") != "form-section" || got.Mismatch.ErrorHidden || !strings.Contains(got.Mismatch.Error, "do not match") {
		t.Fatalf("mismatched passwords: %s", out)
	}
	d := got.Done
	if strings.Join(d.Shown, ",") != "done" || d.User != "bob" || d.QR != "data:image/png;base64," || !d.TOTPShown ||
		d.Login != "https://auth.example.com/" || !d.PasswordCleared || len(d.Key) != 32 {
		t.Fatalf("after accept: %s", out)
	}
	// The token never appears in a path: it is read from the fragment
	// (which the page then drops from the address bar) and sent in bodies.
	want := "POST /api/invite/lookup,POST /api/invite/accept"
	if strings.Join(got.Requests, ",") != want || !got.TokenInBodies || !got.FragmentCleared {
		t.Fatalf("requests %v (token in bodies %v, fragment cleared %v), want %s", got.Requests, got.TokenInBodies, got.FragmentCleared, want)
	}
	// The key the page showed is the one the auth server checks.
	if err := f.login(t, "bob", authTestPass, d.Key); err != nil {
		t.Fatalf("login with the key shown by the page: %v", err)
	}
}

func TestInvitationAcceptConcurrent(t *testing.T) {
	f := newAuthFixture(t, config.StatusCompleted)
	tok := tokenOf(t, f.invite(t, `{"username":"bob","email":"bob@example.com"}`))
	const n = 6
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", f.http.URL+"/api/invite/accept",
				strings.NewReader(acceptBody(tok, fmt.Sprintf(`{"password":"password number %d"}`, i))))
			req.Header.Set("Content-Type", "application/json")
			resp, err := f.http.Client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	wg.Wait()
	close(statuses)
	ok := 0
	for st := range statuses {
		switch st {
		case 200:
			ok++
		case 409, 410:
		default:
			t.Errorf("status %d", st)
		}
	}
	if ok != 1 {
		t.Fatalf("%d concurrent acceptances succeeded, want exactly 1", ok)
	}
	f.do("POST", "/api/invite/lookup", lookupBody(tok), nil).expect(t, 410, `{"error":"This invitation has already been used"}`)
}
