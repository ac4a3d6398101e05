package e2e

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/api"
)

func TestInvitationFlow(t *testing.T) {
	st := shared(t)
	ctx := context.Background()
	inv, err := adminPanel(t, st).CreateInvitation(ctx, api.CreateInvitationRequest{
		Username: "ivy", Email: "ivy@example.com", Groups: []string{"family"},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The token is in the fragment, which the browser never sends.
	if inv.InviteURL == nil || !strings.HasSuffix(*inv.InviteURL, "/invite/#"+inv.Token) {
		t.Fatalf("inviteUrl %v", inv.InviteURL)
	}
	c := visitor(st)
	// The invitation page is served by nginx on the portal's host, with a
	// strict CSP, and loads nothing from other hosts.
	resp, page := getWith(t, c, *inv.InviteURL, nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") ||
		resp.Header.Get("Referrer-Policy") != "no-referrer" || strings.Contains(page, "http://") || strings.Contains(page, "https://") {
		t.Fatalf("invite page: %d CSP %q\n%s", resp.StatusCode, resp.Header.Get("Content-Security-Policy"), page)
	}
	// The public invite API on the portal's host, token in the body.
	public := panelAs(strings.TrimSuffix(st.Info.AuthURL, "/"), c)
	details, err := public.LookupInvite(ctx, inv.Token)
	if err != nil || details.Username != "ivy" {
		t.Fatalf("invitation details: %+v %v", details, err)
	}
	acc, err := public.AcceptInvite(ctx, inv.Token, "ivy-password-123")
	if err != nil || acc.TOTPURI == nil || acc.TOTPQR == nil {
		t.Fatalf("accept answer: %+v %v", acc, err)
	}
	u, err := url.Parse(*acc.TOTPURI)
	if err != nil || u.Query().Get("secret") == "" || !strings.HasPrefix(*acc.TOTPQR, "data:image/png;base64,") {
		t.Fatalf("accept answer: %+v", acc)
	}
	cookie := login(t, st, user{name: "ivy", password: "ivy-password-123", secret: u.Query().Get("secret")}, time.Now())
	if resp, _ := getWith(t, c, appURL(st, "authenticated"), cookie, nil); resp.StatusCode != 200 {
		t.Fatalf("invited user on the protected app: %d", resp.StatusCode)
	}
	_, err = public.AcceptInvite(ctx, inv.Token, "another-password")
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != 410 || !strings.Contains(ae.Message, "already been used") {
		t.Fatalf("reused invitation: %v", err)
	}
	// Tokens in paths are not routes.
	if code, _ := call(t, c, "GET", strings.TrimSuffix(st.Info.AuthURL, "/")+"/api/invite/"+inv.Token, nil); code != 404 {
		t.Fatalf("token in a path: %d, want 404", code)
	}
}

func TestPanelTwoFactor(t *testing.T) {
	st := startStack(t)
	a := admin(t, st)
	panelDomain := hostURL(st, "panel", "")
	agentCert := newAgentCert(t, st, "twofa-agent", "tunnels:read", "system:read")

	out := mustCall(t, a, "POST", panelDomain+"/api/settings/2fa/setup", nil, 200)
	var setup struct {
		ManualKey string `json:"manualKey"`
		TotpQR    string `json:"totpQr"`
	}
	decode(t, out, &setup)
	if setup.ManualKey == "" || !strings.HasPrefix(setup.TotpQR, "data:image/png;base64,") {
		t.Fatalf("setup: %s", out)
	}
	// Codes of increasing steps: previous (confirm), current (verify), next
	// (disable) — each valid when sent, none a replay of another.
	confirmCode := code(t, setup.ManualKey, time.Now().Add(-30*time.Second))
	mustCall(t, a, "POST", panelDomain+"/api/settings/2fa/confirm", map[string]any{"code": confirmCode}, 200)

	// Admin routes now need the 2FA session, by IP and by domain.
	c, body := call(t, a, "GET", panelDomain+"/api/tunnels", nil)
	if c != 401 || !strings.Contains(body, "2fa_required") {
		t.Fatalf("admin without a 2FA session: %d %s", c, body)
	}
	// The IP vhost is off while 2FA is on.
	if _, err := clientWith(st, nil).Get(st.Info.PanelURL + "/api/health"); err == nil {
		t.Fatal("the IP vhost still answers with 2FA on")
	}
	// An agent certificate is not affected.
	mustCall(t, clientWith(st, &agentCert), "GET", panelDomain+"/api/tunnels", nil, 200)

	// A replayed code is refused; a fresh one gives the session cookie.
	c, body = call(t, a, "POST", panelDomain+"/api/settings/2fa/verify", map[string]any{"code": confirmCode})
	if c != 401 {
		t.Fatalf("replayed confirm code on verify: %d %s", c, body)
	}
	req, _ := http.NewRequest("POST", panelDomain+"/api/settings/2fa/verify", strings.NewReader(`{"code":"`+code(t, setup.ManualKey, time.Now())+`"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var session *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "portlama_2fa_session" {
			session = ck
		}
	}
	if resp.StatusCode != 200 || session == nil {
		t.Fatalf("verify: %d, cookie %v", resp.StatusCode, session)
	}
	r2, _ := http.NewRequest("GET", panelDomain+"/api/tunnels", nil)
	r2.AddCookie(session)
	resp, err = a.Do(r2)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("with the 2FA session: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()

	// Disabling needs the session and a code, and brings the IP vhost back.
	r3, _ := http.NewRequest("POST", panelDomain+"/api/settings/2fa/disable", strings.NewReader(`{"code":"`+code(t, setup.ManualKey, time.Now().Add(30*time.Second))+`"}`))
	r3.Header.Set("Content-Type", "application/json")
	r3.AddCookie(session)
	resp, err = a.Do(r3)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("disable: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	mustCall(t, a, "GET", st.Info.PanelURL+"/api/tunnels", nil, 200)
}
