package relay

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/nginx"
	"github.com/portlama/portlama/internal/pki"
	"github.com/portlama/portlama/internal/pki/pkitest"
	"github.com/portlama/portlama/internal/provision"
	"github.com/portlama/portlama/internal/supervisor"
	"github.com/portlama/portlama/internal/tunnel"
	"github.com/portlama/portlama/internal/tunnels"
)

// countingNginx stands in for nginx itself; nginx.Manager writes the real
// files.
type countingNginx struct {
	mu       sync.Mutex
	reloads  int
	failTest bool
}

func (c *countingNginx) Test(context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failTest {
		return "nginx: [emerg] unexpected \"}\"", errors.New("exit status 1")
	}
	return "ok", nil
}
func (c *countingNginx) Reload(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reloads++
	return nil
}
func (c *countingNginx) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reloads
}

// caIssuer issues from the relay CA (the offline demo's issuer).
type caIssuer struct{ s **Services }

func (c caIssuer) Obtain(_ context.Context, names []string) ([]byte, []byte, string, error) {
	cert, key, err := (*c.s).PKI.IssueServer(names, 90*24*time.Hour)
	return cert, key, "relay-ca", err
}

type env struct {
	s   *Services
	ngx *countingNginx
	ctx context.Context
}

func open(t *testing.T) *env {
	t.Helper()
	l := config.DirLayout(t.TempDir())
	ctx := context.Background()
	if _, err := provision.Install(ctx, provision.InstallConfig{Layout: l, IP: "192.0.2.7", GenerateKey: pkitest.GenerateKey,
		Panel: func(c *config.PanelConfig) {
			d, e := "example.com", "ops@example.com"
			c.Domain, c.Email, c.Onboarding.Status = &d, &e, config.StatusCompleted
		}}); err != nil {
		t.Fatal(err)
	}
	// The panel's health route, on the address provisioning checks.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(api.Health{Status: "ok", Version: "1"})
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	addrs := config.DefaultAddrs()
	addrs.Panel = ln.Addr().String()
	e := &env{ngx: &countingNginx{}, ctx: ctx}
	e.s, err = Open(Options{Config: config.Relay{Layout: l, Addrs: addrs}, Nginx: e.ngx, Services: supervisor.New(nil), Issuer: caIssuer{&e.s},
		Resolver: relayIP{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := provision.WriteShared(ctx, l, e.s.Render, e.s.Nginx); err != nil {
		t.Fatal(err)
	}
	return e
}

// relayIP resolves every name to the relay's address (sites check DNS).
type relayIP struct{}

func (relayIP) LookupA(context.Context, string) ([]string, error) { return []string{"192.0.2.7"}, nil }

func (e *env) linked(name string) bool {
	_, err := os.Lstat(filepath.Join(e.s.Config.Layout.NginxSitesEnabled(), name))
	return err == nil
}

func (e *env) exists(name string) bool {
	_, err := os.Stat(filepath.Join(e.s.Config.Layout.NginxSitesAvailable(), name))
	return err == nil
}

func TestOpenNeedsAnInstalledRelay(t *testing.T) {
	_, err := Open(Options{Config: config.Relay{Layout: config.DirLayout(t.TempDir()), Addrs: config.DefaultAddrs()}})
	if err == nil || !strings.Contains(err.Error(), "is it installed?") {
		t.Fatalf("open of an empty directory: %v", err)
	}
}

// Every adapter Open connects, through the service that uses it.
func TestAdapters(t *testing.T) {
	e := open(t)
	s, ctx := e.s, e.ctx

	// SyncTunnelACL: acl.json exists before any agent.
	if err := s.SyncTunnelACL(ctx); err != nil {
		t.Fatal(err)
	}
	if f, err := s.ACL.Load(); err != nil || len(f.Agents) != 0 {
		t.Fatalf("acl.json %+v %v", f, err)
	}

	// credentials: an agent gets tunnel credentials.
	if _, err := s.Agents.IssueP12(ctx, "home", []string{api.CapTunnelsRead, api.CapTunnelsWrite}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ACL.Credential(ctx, "home"); err != nil {
		t.Fatalf("no credentials after enrollment: %v", err)
	}

	// tunnelVhosts + the certificate store with its issuer + agentPorts +
	// accessRules: a restricted tunnel gets a certificate, a vhost, its
	// relay port in the ACL and an access rule.
	tun, err := s.Tunnels.Create(ctx, tunnelCaller(), api.CreateTunnelRequest{Subdomain: "app", Port: 8080, AgentLabel: "home",
		AccessMode: api.AccessRestricted, AllowedUsers: []string{"alice"}})
	if err != nil {
		t.Fatal(err)
	}
	if !e.exists("portlama-app-app") || !e.linked("portlama-app-app") {
		t.Fatal("no vhost for the tunnel")
	}
	if _, err := s.Certs.NotAfter("app.example.com"); err != nil {
		t.Fatalf("no certificate for the tunnel: %v", err)
	}
	if f, _ := s.ACL.Load(); len(f.Agents) != 1 || len(f.Agents[0].RelayPorts) != 1 || f.Agents[0].RelayPorts[0] != tun.RelayPort {
		t.Fatalf("acl %+v", f)
	}
	rules, err := os.ReadFile(filepath.Join(s.Config.Layout.AuthDir(), "access-rules.json"))
	if err != nil || !strings.Contains(string(rules), `"app.example.com"`) || !strings.Contains(string(rules), `"alice"`) {
		t.Fatalf("access rules %s %v", rules, err)
	}
	off := false
	if _, err := s.Tunnels.Update(ctx, tunnelCaller(), tun.ID, api.UpdateTunnelRequest{Enabled: &off}); err != nil {
		t.Fatal(err)
	}
	if !e.exists("portlama-app-app") || e.linked("portlama-app-app") {
		t.Fatal("a disabled tunnel's vhost is still enabled")
	}

	// nginxReloader: a revocation reloads nginx; agentPorts: the revoked
	// agent's tunnels keep their ports in tunnels.json without an error.
	before := e.ngx.count()
	if _, err := s.Agents.Revoke(ctx, "home"); err != nil {
		t.Fatal(err)
	}
	if e.ngx.count() == before {
		t.Fatal("revocation did not reload nginx")
	}
	if _, err := s.ACL.Credential(ctx, "home"); err == nil {
		t.Fatal("a revoked agent keeps tunnel credentials")
	}
	if err := (agentPorts{s}).SetPorts(ctx, "home", []int{tun.RelayPort}); err != nil {
		t.Fatalf("ports of a revoked agent: %v", err)
	}
	if _, err := s.Tunnels.Delete(ctx, tunnelCaller(), tun.ID); err != nil {
		t.Fatal(err)
	}
	if e.exists("portlama-app-app") {
		t.Fatal("vhost left after delete")
	}

	// IPVhost.
	if !e.linked(nginx.VhostPanelIP) {
		t.Fatal("IP vhost not enabled by the shared configuration")
	}
	if err := s.IPVhost.Disable(ctx); err != nil || e.linked(nginx.VhostPanelIP) {
		t.Fatalf("disable IP vhost: %v", err)
	}
	if err := s.IPVhost.Enable(ctx); err != nil || !e.linked(nginx.VhostPanelIP) {
		t.Fatalf("enable IP vhost: %v", err)
	}

	// PanelHealth, TunnelServerURL, Fingerprint.
	if err := s.PanelHealth(ctx); err != nil {
		t.Fatal(err)
	}
	if got := s.TunnelServerURL("example.com"); got != "https://tunnel.example.com:443" {
		t.Fatalf("tunnel server URL %q", got)
	}
	if _, err := s.Fingerprint(); err == nil {
		t.Fatal("fingerprint before the key exists")
	}
	tc := tunnel.DirConfig(s.Config.Layout.TunnelDir())
	fp, _ := tunnel.EnsureKey(tc.KeyFile, tc.FingerprintFile)
	if got, err := s.Fingerprint(); err != nil || got != fp {
		t.Fatalf("fingerprint %q %v", got, err)
	}

	// acmeSettings come from panel.json.
	set, err := s.acmeSettings()
	if err != nil || set.Email != "ops@example.com" || set.DirectoryURL != config.DefaultACMEDirectoryURL || set.Wildcard {
		t.Fatalf("acme settings %+v %v", set, err)
	}

	// RenewCertificate: a new certificate and one reload.
	if _, err := s.Certs.Obtain(ctx, "panel.example.com", []string{"panel.example.com"}); err != nil {
		t.Fatal(err)
	}
	before = e.ngx.count()
	na, reloadErr, err := s.RenewCertificate(ctx, "panel.example.com")
	if err != nil || reloadErr != nil || na.IsZero() || e.ngx.count() != before+1 {
		t.Fatalf("renew: %v %v %v", na, reloadErr, err)
	}
	// RenewDue: nothing is due, nginx is not reloaded.
	before = e.ngx.count()
	if res, err := s.RenewDue(ctx); err != nil || len(res.Renewed) != 0 || e.ngx.count() != before {
		t.Fatalf("renew due: %+v %v", res, err)
	}
}

func tunnelCaller() tunnels.Caller { return tunnels.Caller{Admin: true} }

// RewriteVhosts puts back what the state files say, touches nothing that
// is right, skips a host without a certificate and restores every file
// when nginx rejects the result.
func TestRewriteVhosts(t *testing.T) {
	e := open(t)
	s, ctx := e.s, e.ctx
	if _, err := s.Agents.IssueP12(ctx, "home", []string{api.CapTunnelsRead, api.CapTunnelsWrite}, nil); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i, sub := range []string{"app", "off", "gone"} {
		tun, err := s.Tunnels.Create(ctx, tunnelCaller(), api.CreateTunnelRequest{Subdomain: sub, Port: 8080 + i, AgentLabel: "home"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, tun.ID)
	}
	off := false
	if _, err := s.Tunnels.Update(ctx, tunnelCaller(), ids[1], api.UpdateTunnelRequest{Enabled: &off}); err != nil {
		t.Fatal(err)
	}
	site, err := s.Sites.Create(ctx, api.CreateSiteRequest{Name: "blog", Type: api.SiteManaged})
	if err != nil {
		t.Fatal(err)
	}
	siteVhost := nginx.SiteVhostName(site.Site.ID)
	avail := s.Config.Layout.NginxSitesAvailable()
	read := func(name string) string {
		data, _ := os.ReadFile(filepath.Join(avail, name))
		return string(data)
	}
	want := map[string]string{}
	for _, n := range []string{"portlama-app-app", "portlama-app-off", "portlama-app-gone", siteVhost} {
		want[n] = read(n)
	}

	before := e.ngx.count()
	if err := s.RewriteVhosts(ctx); err != nil || e.ngx.count() != before {
		t.Fatalf("rewrite with every vhost right: %v, %d reloads", err, e.ngx.count()-before)
	}

	// An old template, a lost file, a lost link; and a host whose
	// certificate is gone keeps its (edited) file.
	writeFile := func(name, content string) {
		if err := os.WriteFile(filepath.Join(avail, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeFile("portlama-app-app", "# an older version's vhost\n")
	os.Remove(filepath.Join(avail, siteVhost))
	os.Remove(filepath.Join(s.Config.Layout.NginxSitesEnabled(), "portlama-app-gone"))
	if err := s.Certs.DeleteIndividual(ctx, "gone.example.com"); err != nil {
		t.Fatal(err)
	}
	writeFile("portlama-app-gone", "# kept\n")

	// nginx rejects the result: every file is as it was.
	e.ngx.failTest = true
	if err := s.RewriteVhosts(ctx); err == nil || !strings.Contains(err.Error(), "rewrite 3 vhosts") {
		t.Fatalf("rewrite that nginx rejects: %v", err)
	}
	if read("portlama-app-app") != "# an older version's vhost\n" || e.exists(siteVhost) {
		t.Fatal("a rejected rewrite left files changed")
	}
	e.ngx.failTest = false

	before = e.ngx.count()
	if err := s.RewriteVhosts(ctx); err != nil || e.ngx.count() != before+1 {
		t.Fatalf("rewrite: %v, %d reloads, want 1", err, e.ngx.count()-before)
	}
	for _, n := range []string{"portlama-app-app", "portlama-app-off", siteVhost} {
		if got := read(n); got != want[n] {
			t.Errorf("%s after the rewrite:\n%s\nwant:\n%s", n, got, want[n])
		}
	}
	if !e.linked("portlama-app-app") || e.linked("portlama-app-off") || !e.linked(siteVhost) {
		t.Fatal("links after the rewrite do not follow the tunnels' and the site's state")
	}
	if read("portlama-app-gone") != "# kept\n" || e.linked("portlama-app-gone") {
		t.Fatal("the vhost of a host without a certificate was touched")
	}
}

// The vhosts provisioning wrote are rendered again at the panel's start
// once onboarding has completed and their certificates are on disk.
func TestRewriteVhostsOfProvisioning(t *testing.T) {
	e := open(t)
	s, ctx := e.s, e.ctx
	names := []string{nginx.VhostPanelDomain, nginx.VhostAuth, nginx.VhostTunnel}
	avail := s.Config.Layout.NginxSitesAvailable()
	read := func(name string) string {
		data, _ := os.ReadFile(filepath.Join(avail, name))
		return string(data)
	}

	// No certificates of their own yet (this relay renders them with their
	// own, not the wildcard): nothing is written, even with a wildcard on
	// disk that the apps would use.
	if _, err := s.Certs.Obtain(ctx, "example.com", []string{"example.com", "*.example.com"}); err != nil {
		t.Fatal(err)
	}
	if err := s.RewriteVhosts(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if e.exists(n) {
			t.Fatalf("%s written without its certificate", n)
		}
	}

	for _, sub := range []string{"panel", "auth", "tunnel"} {
		fqdn := sub + ".example.com"
		if _, err := s.Certs.Obtain(ctx, fqdn, []string{fqdn}); err != nil {
			t.Fatal(err)
		}
	}
	before := e.ngx.count()
	if err := s.RewriteVhosts(ctx); err != nil || e.ngx.count() != before+1 {
		t.Fatalf("first rewrite: %v, %d reloads, want 1", err, e.ngx.count()-before)
	}
	want := map[string]string{}
	for _, n := range names {
		want[n] = read(n)
		if !strings.Contains(want[n], "example.com") || !e.linked(n) {
			t.Fatalf("%s is not rendered and enabled:\n%s", n, want[n])
		}
	}

	// An older version's text is replaced; the next start changes nothing.
	old := "# an older version's tunnel vhost\n"
	if err := os.WriteFile(filepath.Join(avail, nginx.VhostTunnel), []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	before = e.ngx.count()
	if err := s.RewriteVhosts(ctx); err != nil || e.ngx.count() != before+1 {
		t.Fatalf("rewrite of an old vhost: %v, %d reloads, want 1", err, e.ngx.count()-before)
	}
	if got := read(nginx.VhostTunnel); got != want[nginx.VhostTunnel] {
		t.Fatalf("the tunnel vhost after the rewrite:\n%s\nwant:\n%s", got, want[nginx.VhostTunnel])
	}
	before = e.ngx.count()
	if err := s.RewriteVhosts(ctx); err != nil || e.ngx.count() != before {
		t.Fatalf("rewrite with nothing to do: %v, %d reloads", err, e.ngx.count()-before)
	}

	// Before onboarding has completed (a relay being provisioned again),
	// provisioning owns them: left alone.
	if _, err := s.Panel.Update(func(c *config.PanelConfig) error {
		c.Onboarding.Status = config.StatusProvisioning
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(avail, nginx.VhostTunnel), []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.RewriteVhosts(ctx); err != nil || read(nginx.VhostTunnel) != old {
		t.Fatalf("rewrite during provisioning: %v, tunnel vhost %q", err, read(nginx.VhostTunnel))
	}
}

// ResetAdmin rotates the admin credential, revokes the old one, turns
// panel 2FA off and enables the IP vhost again.
func TestResetAdmin(t *testing.T) {
	e := open(t)
	s, ctx := e.s, e.ctx
	old, err := s.PKI.AdminCert()
	if err != nil {
		t.Fatal(err)
	}
	secret, session := "JBSWY3DPEHPK3PXP", strings.Repeat("ab", 32)
	if _, err := s.Panel.Update(func(c *config.PanelConfig) error {
		c.Panel2FA.Enabled, c.Panel2FA.SetupComplete, c.Panel2FA.Secret, c.SessionSecret = true, true, &secret, &session
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.IPVhost.Disable(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := s.ResetAdmin(ctx)
	if err != nil || res.ReloadErr != nil || len(res.Password) != 32 || res.PanelURL != "https://192.0.2.7:9292" {
		t.Fatalf("reset: %+v %v", res, err)
	}
	if rev, _ := s.PKI.IsRevoked(pki.FormatSerial(old.SerialNumber)); !rev {
		t.Fatal("old admin serial not revoked")
	}
	c, _ := s.Panel.Load()
	if c.Panel2FA.Enabled || c.Panel2FA.Secret != nil || c.SessionSecret != nil {
		t.Fatalf("2FA after reset: %+v %v", c.Panel2FA, c.SessionSecret)
	}
	if !e.linked(nginx.VhostPanelIP) {
		t.Fatal("IP vhost not enabled again")
	}
	pw, _ := os.ReadFile(filepath.Join(s.Config.Layout.PKIDir(), pki.P12PasswordFile))
	if string(pw) != res.Password {
		t.Fatal("printed password differs from .p12-password")
	}
}
