package panel

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/agent"
	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/panelclient"
)

// asNginx is a transport that adds what nginx adds for a client
// certificate (the headers of h), as the mTLS vhosts do.
type asNginx struct {
	h    http.Header
	next http.RoundTripper
}

func (a asNginx) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range a.h {
		r.Header[k] = v
	}
	return a.next.RoundTrip(r)
}

func clientFor(h *harness, hdr http.Header) *panelclient.Client {
	return panelclient.New(h.http.URL, &http.Client{Transport: asNginx{h: hdr, next: http.DefaultTransport}})
}

// The typed client against the real panel: every relay route, with typed
// answers and typed errors.
func TestClientRelayRoutes(t *testing.T) {
	e := newRelayEnv(t)
	ctx := context.Background()
	home := e.newAgent(t, "home", api.CapTunnelsWrite, api.CapPanelExpose, api.CapSystemRead)
	a := clientFor(e.harness, e.realAdminHeaders(t))
	ag := clientFor(e.harness, home.headers())

	if h, err := a.Health(ctx); err != nil || h.Version != "1.2.3" {
		t.Fatalf("health %+v %v", h, err)
	}
	if st, err := a.SystemStats(ctx); err != nil || st.CPU.Cores != 2 {
		t.Fatalf("stats %+v %v", st, err)
	}
	if st, err := a.OnboardingStatus(ctx); err != nil || st.Status != config.StatusCompleted {
		t.Fatalf("onboarding %+v %v", st, err)
	}
	if _, err := a.SetDomain(ctx, api.SetDomainRequest{Domain: "example.com", Email: "a@example.com"}); err == nil || !errors.Is(err, &api.Error{Status: http.StatusGone}) {
		t.Fatalf("set domain after completion: %v", err)
	}
	if _, err := a.VerifyDNS(ctx); !errors.Is(err, &api.Error{Status: http.StatusGone}) {
		t.Fatalf("verify dns after completion: %v", err)
	}

	tun, err := a.CreateTunnel(ctx, api.CreateTunnelRequest{Subdomain: "app", Port: 8080, AgentLabel: "home"})
	if err != nil || tun.FQDN != "app.example.com" || !tun.IsEnabled() {
		t.Fatalf("create %+v %v", tun, err)
	}
	if list, err := ag.ListTunnels(ctx); err != nil || len(list) != 1 || list[0].ID != tun.ID {
		t.Fatalf("list %+v %v", list, err)
	}
	if off, err := ag.SetTunnelEnabled(ctx, tun.ID, false); err != nil || off.IsEnabled() {
		t.Fatalf("disable %+v %v", off, err)
	}
	mode := api.AccessPublic
	if _, err := ag.UpdateTunnel(ctx, tun.ID, api.UpdateTunnelRequest{AccessMode: &mode}); !errors.Is(err, &api.Error{Status: http.StatusForbidden}) {
		t.Fatalf("agent sets public: %v", err)
	}
	if _, err := ag.SetTunnelEnabled(ctx, tun.ID, true); err != nil {
		t.Fatal(err)
	}
	cfg, err := ag.AgentConfig(ctx)
	if err != nil || len(cfg.Tunnels) != 1 || cfg.Remotes()[0] != cfg.ChiselArgs[len(cfg.ChiselArgs)-1] {
		t.Fatalf("agent-config %+v %v", cfg, err)
	}
	if _, err := a.AgentConfig(ctx); !errors.Is(err, &api.Error{Status: 400, Message: "Agent label is required (must use agent certificate)"}) {
		t.Fatalf("admin agent-config: %v", err)
	}
	if pl, err := ag.MacPlist(ctx); err != nil || !strings.Contains(pl.Plist, "com.portlama.chisel") || pl.Instructions.Install == "" {
		t.Fatalf("mac plist %+v %v", pl, err)
	}
	if raw, err := ag.MacPlistFile(ctx); err != nil || !strings.HasPrefix(string(raw), "<?xml") {
		t.Fatalf("mac plist file %q %v", raw, err)
	}
	if st, err := ag.AgentPanelStatus(ctx); err != nil || st.Enabled || st.FQDN != nil {
		t.Fatalf("panel status %+v %v", st, err)
	}
	pt, err := ag.ExposePanel(ctx, 9000)
	if err != nil || pt.Type != api.TypePanel || pt.Subdomain != "agent-home" {
		t.Fatalf("expose %+v %v", pt, err)
	}
	_, err = ag.ExposePanel(ctx, 9001)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict || ae.Tunnel == nil || ae.Tunnel.ID != pt.ID {
		t.Fatalf("second expose: %v (tunnel key %+v)", err, ae)
	}
	if st, err := ag.AgentPanelStatus(ctx); err != nil || !st.Enabled || st.Port == nil || *st.Port != 9000 {
		t.Fatalf("panel status after expose %+v %v", st, err)
	}
	if err := ag.RetractPanel(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ag.DeleteTunnel(ctx, tun.ID); err != nil {
		t.Fatal(err)
	}
	if err := ag.DeleteTunnel(ctx, tun.ID); !errors.Is(err, &api.Error{Status: 404, Message: "Tunnel not found"}) {
		t.Fatalf("delete twice: %v", err)
	}

	// Certificates and agents.
	if certs, err := a.Certs(ctx); err != nil || len(certs) == 0 {
		t.Fatalf("certs %+v %v", certs, err)
	}
	if m, err := a.AdminAuthMode(ctx); err != nil || m.AdminAuthMode != "p12" {
		t.Fatalf("auth mode %+v %v", m, err)
	}
	if p12, err := a.AdminP12(ctx); err != nil || len(p12) == 0 {
		t.Fatalf("admin p12: %d bytes %v", len(p12), err)
	}
	caps := []api.Capability{api.CapTunnelsRead}
	if iss, err := a.CreateAgentCert(ctx, api.NewAgentRequest{Label: "work", Capabilities: &caps}); err != nil || iss.P12Password == "" {
		t.Fatalf("agent p12 %+v %v", iss, err)
	}
	if _, err := a.CreateAgentCert(ctx, api.NewAgentRequest{Label: "work"}); !errors.Is(err, &api.Error{Status: http.StatusConflict}) {
		t.Fatalf("duplicate agent: %v", err)
	}
	bad := []api.Capability{"root:all"}
	_, err = a.CreateAgentCert(ctx, api.NewAgentRequest{Label: "x", Capabilities: &bad})
	var vd api.ValidationDetails
	if !errors.As(err, &ae) || !ae.Is(api.ErrValidation) || !ae.DecodeDetails(&vd) || len(vd.Issues) == 0 {
		t.Fatalf("bad capability: %v", err)
	}
	if p12, err := a.AgentP12(ctx, "work"); err != nil || len(p12) == 0 {
		t.Fatalf("agent p12 download %v", err)
	}
	if got, err := a.SetAgentCapabilities(ctx, "work", []api.Capability{api.CapSystemRead}); err != nil || got[0] != api.CapTunnelsRead {
		t.Fatalf("capabilities %v %v", got, err)
	}
	if got, err := a.SetAgentAllowedSites(ctx, "work", []string{"blog"}); err != nil || len(got) != 1 {
		t.Fatalf("allowed sites %v %v", got, err)
	}
	if list, err := a.ListAgents(ctx); err != nil || len(list) != 2 {
		t.Fatalf("agents %+v %v", list, err)
	}
	tok, err := a.CreateEnrollmentToken(ctx, api.NewAgentRequest{Label: "laptop"})
	if err != nil || len(tok.Token) != 64 {
		t.Fatalf("token %+v %v", tok, err)
	}
	if _, err := a.Enroll(ctx, strings.Repeat("0", 64), []byte("-----BEGIN CERTIFICATE REQUEST-----\nAA==\n-----END CERTIFICATE REQUEST-----\n")); !errors.Is(err, &api.Error{Status: 401, Message: "Invalid enrollment token"}) {
		t.Fatalf("enroll with a wrong token: %v", err)
	}
	if revoked, err := a.RevokeEnrollmentToken(ctx, "laptop"); err != nil || !revoked {
		t.Fatalf("revoke token %v %v", revoked, err)
	}
	if _, err := a.UpgradeCert(ctx, []byte("x")); !errors.Is(err, &api.Error{Status: 403}) {
		t.Fatalf("admin upgrade-cert: %v", err)
	}
	if _, err := ag.UpgradeCert(ctx, []byte("-----BEGIN CERTIFICATE REQUEST-----\nAA==\n-----END CERTIFICATE REQUEST-----\n")); !errors.Is(err, &api.Error{Status: 400, Message: "Invalid CSR"}) {
		t.Fatalf("bad csr: %v", err)
	}
	if err := a.RevokeAgent(ctx, "work"); err != nil {
		t.Fatal(err)
	}
	// A capability refusal is typed and explained.
	_, err = clientFor(e.harness, home.headers()).Certs(ctx)
	if !errors.Is(err, api.ErrScope) || !strings.Contains(agent.Explain(err).Error(), "Insufficient certificate scope") {
		t.Fatalf("agent on an admin route: %v", err)
	}
	// Without proof of origin the panel answers 403 mTLS certificate required.
	_, err = panelclient.New(e.http.URL, http.DefaultClient).ListTunnels(ctx)
	if !errors.Is(err, api.ErrCertificateRequired) || !errors.Is(err, &api.Error{Status: 403}) {
		t.Fatalf("no certificate: %v", err)
	}
	// Rotation revokes the certificate that asked for it.
	if rot, err := a.RotateAdmin(ctx); err != nil || rot.P12 == "" || rot.P12Password == "" {
		t.Fatalf("rotate %v", err)
	}
	if _, err := a.Certs(ctx); !errors.Is(err, api.ErrRevoked) {
		t.Fatalf("old admin certificate after rotation: %v", err)
	}
}

// The users, invitations, identity and panel 2FA routes through the typed
// client, with the 2FA session cookie kept by the client.
func TestClientAuthRoutes(t *testing.T) {
	f := newAuthFixture(t, config.StatusCompleted)
	ctx := context.Background()
	a := clientFor(f.harness, adminHeaders())

	u, err := a.CreateUser(ctx, api.CreateUserRequest{Username: "bob", DisplayName: "Bob", Email: "bob@example.com", Password: authTestPass, Groups: []string{"family"}})
	if err != nil || u.Username != "bob" {
		t.Fatalf("create %+v %v", u, err)
	}
	name := "Robert"
	if u, err := a.UpdateUser(ctx, "bob", api.UpdateUserRequest{DisplayName: &name}); err != nil || u.DisplayName != name {
		t.Fatalf("update %+v %v", u, err)
	}
	if r, err := a.ResetTOTP(ctx, "bob"); err != nil || !strings.HasPrefix(r.TOTPURI, "otpauth://") {
		t.Fatalf("reset totp %+v %v", r, err)
	}
	if list, err := a.ListUsers(ctx); err != nil || len(list) != 2 {
		t.Fatalf("users %+v %v", list, err)
	}
	if list, err := a.DirectoryUsers(ctx); err != nil || len(list) != 2 {
		t.Fatalf("directory %+v %v", list, err)
	}
	if u, err := a.DirectoryUser(ctx, "bob"); err != nil || u.Email != "bob@example.com" {
		t.Fatalf("directory user %+v %v", u, err)
	}
	if g, err := a.Groups(ctx); err != nil || strings.Join(g, ",") != "admins,family" {
		t.Fatalf("groups %v %v", g, err)
	}
	if _, err := a.Self(ctx); !errors.Is(err, &api.Error{Status: 400}) {
		t.Fatalf("self through the panel: %v", err)
	}
	if err := a.DeleteUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteUser(ctx, "bob"); !errors.Is(err, &api.Error{Status: 404, Message: "User not found"}) {
		t.Fatalf("delete twice: %v", err)
	}

	inv, err := a.CreateInvitation(ctx, api.CreateInvitationRequest{Username: "ivy", Email: "ivy@example.com"})
	if err != nil || inv.InviteURL == nil || !strings.HasSuffix(*inv.InviteURL, "#"+inv.Token) {
		t.Fatalf("invite %+v %v", inv, err)
	}
	public := panelclient.New(f.http.URL, http.DefaultClient)
	if d, err := public.LookupInvite(ctx, inv.Token); err != nil || d.Username != "ivy" {
		t.Fatalf("lookup %+v %v", d, err)
	}
	if acc, err := public.AcceptInvite(ctx, inv.Token, authTestPass); err != nil || acc.TOTPURI == nil {
		t.Fatalf("accept %+v %v", acc, err)
	}
	if _, err := public.LookupInvite(ctx, inv.Token); !errors.Is(err, &api.Error{Status: http.StatusGone}) {
		t.Fatalf("lookup after accept: %v", err)
	}
	if list, err := a.ListInvitations(ctx); err != nil || len(list) != 1 || list[0].Status != api.InvitationAccepted {
		t.Fatalf("invitations %+v %v", list, err)
	}
	if err := a.RevokeInvitation(ctx, inv.Invitation.ID); err != nil {
		t.Fatal(err)
	}

	// Panel 2FA: setup, confirm (the client keeps the cookie), a 401
	// 2fa_required for a client without the session, verify, disable.
	if st, err := a.TwoFAStatus(ctx); err != nil || st.Enabled {
		t.Fatalf("2fa status %+v %v", st, err)
	}
	setup, err := a.SetupTwoFA(ctx)
	if err != nil || setup.ManualKey == "" {
		t.Fatalf("setup %+v %v", setup, err)
	}
	if err := a.ConfirmTwoFA(ctx, totpCode(t, setup.ManualKey, f.clock.now())); err != nil {
		t.Fatal(err)
	}
	if a.TwoFASession() == nil {
		t.Fatal("the client did not keep the 2FA session")
	}
	if _, err := a.ListUsers(ctx); err != nil {
		t.Fatalf("with the session: %v", err)
	}
	other := clientFor(f.harness, adminHeaders())
	if _, err := other.ListUsers(ctx); !errors.Is(err, api.ErrTwoFARequired) {
		t.Fatalf("without the session: %v", err)
	}
	f.clock.advance(30 * time.Second)
	if err := other.VerifyTwoFA(ctx, totpCode(t, setup.ManualKey, f.clock.now())); err != nil || other.TwoFASession() == nil {
		t.Fatalf("verify: %v", err)
	}
	f.clock.advance(30 * time.Second)
	if err := other.DisableTwoFA(ctx, totpCode(t, setup.ManualKey, f.clock.now())); err != nil {
		t.Fatal(err)
	}
	if other.TwoFASession() != nil {
		t.Fatal("the cleared session cookie was kept")
	}
}
