package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/acme"
	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/demo"
	"github.com/portlama/portlama/internal/nginx"
	"github.com/portlama/portlama/internal/panelclient"
	"github.com/portlama/portlama/internal/pebble"
	"github.com/portlama/portlama/internal/provision"
	"github.com/portlama/portlama/internal/relaytest"
	"github.com/portlama/portlama/internal/system"
)

func ctxFor(t *testing.T, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return c
}

// servedCert returns the certificate nginx serves for host (SNI), after
// verifying it against roots.
func servedCert(t *testing.T, st *relaytest.Stack, host string, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(st.Info.HTTPSPort)), &tls.Config{ServerName: host, RootCAs: roots})
	if err != nil {
		t.Fatalf("TLS to %s: %v", host, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

func pebbleRoots(t *testing.T, st *relaytest.Stack) *x509.CertPool {
	t.Helper()
	pool, err := st.Pebble.RootPool(ctxFor(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return pool
}

// snapshotFiles reads the files provisioning writes, to compare runs.
func snapshotFiles(t *testing.T, st *relaytest.Stack) map[string][]byte {
	t.Helper()
	l := st.Relay.Layout
	out := map[string][]byte{}
	var paths []string
	for _, sub := range []string{"panel", "auth", "tunnel"} {
		paths = append(paths, st.Services.Certs.Paths(sub+"."+st.Domain).Cert)
	}
	for _, v := range []string{"portlama-panel-domain", "portlama-auth", "portlama-tunnel"} {
		paths = append(paths, filepath.Join(l.NginxSitesAvailable(), v))
	}
	paths = append(paths, filepath.Join(l.TunnelDir(), "server.key"), filepath.Join(l.TunnelDir(), "fingerprint"),
		filepath.Join(l.TunnelDir(), "acl.json"), filepath.Join(l.AuthDir(), "secrets.json"), l.PanelConfig())
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("read %s: %v", p, err)
		}
		out[p] = b
	}
	return out
}

// The whole onboarding through the API, from FRESH to COMPLETED, with
// Pebble-issued certificates; then idempotence and a restart of every
// process.
func TestOnboardingThroughAPI(t *testing.T) {
	st := relaytest.NewStack(t, relaytest.Fresh())
	pc := st.Admin()
	ctx := ctxFor(t, 3*time.Minute)
	if s, err := pc.OnboardingStatus(ctx); err != nil || s.Status != api.StatusFresh {
		t.Fatalf("status %+v %v", s, err)
	}
	// Management is closed until onboarding completes.
	if _, err := pc.ListTunnels(ctx); relaytest.ErrorStatus(err) != 503 {
		t.Fatalf("management before onboarding: %v", err)
	}
	// Provisioning before the DNS check is refused.
	if _, err := pc.StartProvisioning(ctx); relaytest.ErrorStatus(err) != 409 {
		t.Fatalf("provision while FRESH: %v", err)
	}

	res, frames := st.Onboard()
	if res.AdminUsername != "admin" || res.AdminPassword == nil || len(*res.AdminPassword) != 22 ||
		res.PanelURL != st.URL("panel", "") || res.AuthURL != st.URL("auth", "") {
		t.Fatalf("result %+v", res)
	}
	// Snapshot, then running/done for the six tasks in order, then the
	// completion.
	want := []string{"start-tunnel-server", "start-auth-server", "issue-certs", "configure-nginx", "verify-services", "finalize"}
	if len(frames) != 14 || frames[0].Type != "state" || frames[13].Task != "complete" || frames[13].Progress.Current != 6 {
		t.Fatalf("%d frames: %+v", len(frames), frames)
	}
	for i, id := range want {
		run, done := frames[1+2*i], frames[2+2*i]
		if run.Task != id || run.Status != "running" || done.Task != id || done.Status != "done" || done.Progress.Current != i+1 {
			t.Fatalf("task %d: %+v / %+v", i, run, done)
		}
	}

	// panel., auth. and tunnel.<d> serve certificates issued by Pebble
	// (the chain verifies against Pebble's root), one per name.
	roots := pebbleRoots(t, st)
	for _, sub := range []string{"panel", "auth", "tunnel"} {
		c := servedCert(t, st, sub+"."+st.Domain, roots)
		if !strings.HasPrefix(c.Issuer.CommonName, "Pebble Intermediate CA") || c.DNSNames[0] != sub+"."+st.Domain {
			t.Fatalf("%s: issuer %q names %v", sub, c.Issuer.CommonName, c.DNSNames)
		}
	}
	// The renewal timer runs.
	if ar, err := pc.AutoRenewStatus(ctx); err != nil || !ar.Active || ar.NextRun == nil {
		t.Fatalf("auto-renew-status %+v %v", ar, err)
	}
	// The portal's admin user signs in with the one-time password (first
	// factor; its TOTP is set up later through Users).
	auth := strings.TrimSuffix(res.AuthURL, "/")
	if r := postJSON(t, st.Visitor(), auth+"/api/firstfactor", map[string]any{"username": "admin", "password": *res.AdminPassword}, nil); r.StatusCode != 200 {
		t.Fatalf("admin first factor with the provisioning password: %d", r.StatusCode)
	}
	if r := postJSON(t, st.Visitor(), auth+"/api/firstfactor", map[string]any{"username": "admin", "password": "wrong-password-123"}, nil); r.StatusCode != 401 {
		t.Fatalf("admin with a wrong password: %d", r.StatusCode)
	}

	// Every onboarding route now answers 410; management works, also at
	// https://panel.<d>.
	for name, call := range map[string]func() error{
		"domain": func() error {
			_, err := pc.SetDomain(ctx, api.SetDomainRequest{Domain: "x.example", Email: "a@x.example"})
			return err
		},
		"verify-dns": func() error { _, err := pc.VerifyDNS(ctx); return err },
		"provision":  func() error { _, err := pc.StartProvisioning(ctx); return err },
		"stream":     func() error { _, err := pc.OpenProvisionStream(ctx); return err },
	} {
		if err := call(); relaytest.ErrorStatus(err) != 410 {
			t.Errorf("%s after completion: %v", name, err)
		}
	}
	if _, err := st.AdminAt(st.URL("panel", "")).ListTunnels(ctx); err != nil {
		t.Fatalf("management at panel.<d>: %v", err)
	}
	// The password was shown once: a later snapshot has none.
	deadline := time.Now().Add(provision.PasswordTTL + 5*time.Second)
	for st.Services.Job.Snapshot().Result.AdminPassword != nil {
		if time.Now().After(deadline) {
			t.Fatal("admin password still in the job's state")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Running every task again changes nothing: no new certificate, the
	// same vhosts, keys and state.
	before := snapshotFiles(t, st)
	for _, task := range st.Services.Provisioner.Tasks() {
		if task.ID == provision.TaskStartAuth || task.ID == provision.TaskFinalize {
			continue // resets the admin password by design / needs a run's result
		}
		if _, _, err := task.Run(ctx, &provision.Run{}); err != nil {
			t.Fatalf("re-running %s: %v", task.ID, err)
		}
	}
	for p, b := range snapshotFiles(t, st) {
		if !bytes.Equal(b, before[p]) {
			t.Errorf("re-running the tasks changed %s", p)
		}
	}

	// Restart every process: the relay keeps serving.
	for _, u := range []string{system.UnitTunnel, system.UnitAuth, system.UnitNginx} {
		st.Restart(u)
	}
	if err := st.RestartPanel(ctx); err != nil {
		t.Fatal(err)
	}
	if s, err := pc.OnboardingStatus(ctx); err != nil || s.Status != api.StatusCompleted {
		t.Fatalf("after restarts: %+v %v", s, err)
	}
	if _, err := st.AdminAt(st.URL("panel", "")).ListTunnels(ctx); err != nil {
		t.Fatalf("panel.<d> after restarts: %v", err)
	}
	servedCert(t, st, "auth."+st.Domain, roots)
	ag := st.EnrollAgent("after-restart", api.CapTunnelsWrite)
	port := st.StartApp("after restart app")
	st.CreateTunnel(api.CreateTunnelRequest{Subdomain: "later", Port: port, AgentLabel: ag.Label, AccessMode: api.AccessPublic})
	st.WaitHTTP(nil, st.URL("later", "/"), 200, 0)
}

// A provisioning task that fails (the ACME server unreachable) leaves the
// relay PROVISIONING with the failure on the stream; a retry completes.
func TestProvisioningRetryAfterFailure(t *testing.T) {
	st := relaytest.NewStack(t, relaytest.Fresh())
	pc := st.Admin()
	ctx := ctxFor(t, 3*time.Minute)
	if _, err := pc.SetDomain(ctx, api.SetDomainRequest{Domain: st.Domain, Email: "ops@" + st.Domain}); err != nil {
		t.Fatal(err)
	}
	if r, err := pc.VerifyDNS(ctx); err != nil || !r.OK {
		t.Fatalf("%+v %v", r, err)
	}
	if err := st.Pebble.StopCA(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := demo.RunProvisioning(ctx, pc, func(api.ProvisionFrame) {})
	var pe *demo.ProvisionError
	if !errors.As(err, &pe) || pe.Task != "issue-certs" || pe.Message != "Failed: Issuing TLS certificates" ||
		!strings.Contains(pe.Detail, "Cannot reach the certificate authority") {
		t.Fatalf("provisioning without a CA: %v", err)
	}
	if s, _ := pc.OnboardingStatus(ctx); s.Status != api.StatusProvisioning {
		t.Fatalf("state after the failure: %s", s.Status)
	}
	// Management stays closed; the failure is in the snapshot.
	if _, err := pc.ListTunnels(ctx); relaytest.ErrorStatus(err) != 503 {
		t.Fatalf("management after a failed run: %v", err)
	}
	stream, err := pc.OpenProvisionStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	snap, _, err := stream.Next(ctx)
	stream.Close()
	if err != nil || snap.IsRunning || snap.Tasks[2].Status != "error" || snap.Tasks[0].Status != "done" {
		t.Fatalf("snapshot %+v %v", snap, err)
	}

	// The CA is back (with no memory of the account): the retry resumes.
	if err := st.Pebble.StartCA(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.TrustACMERoot(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := demo.RunProvisioning(ctx, pc, func(api.ProvisionFrame) {})
	if err != nil || res.AdminPassword == nil {
		t.Fatalf("retry: %+v %v", res, err)
	}
	roots := pebbleRoots(t, st)
	for _, sub := range []string{"panel", "auth", "tunnel"} {
		servedCert(t, st, sub+"."+st.Domain, roots)
	}
}

// DNS-01 gives one wildcard certificate; a new tunnel then gets its vhost
// with no issuance at all.
func TestWildcardCertificate(t *testing.T) {
	st := relaytest.NewStack(t, relaytest.WithWildcard())
	names, err := st.Services.Certs.Names()
	if err != nil || strings.Join(names, ",") != st.Domain {
		t.Fatalf("certificates after provisioning: %v %v", names, err)
	}
	m, _ := st.Services.Certs.Meta(st.Domain)
	if m.Challenge != acme.ChallengeDNS01 || len(m.Domains) != 2 {
		t.Fatalf("meta %+v", m)
	}
	roots := pebbleRoots(t, st)
	if c := servedCert(t, st, "panel."+st.Domain, roots); !containsName(c.DNSNames, "*."+st.Domain) {
		t.Fatalf("panel.<d> serves %v", c.DNSNames)
	}
	if recs := st.DigitalOcean.Records(); len(recs) != 0 {
		t.Fatalf("DNS-01 records left at the provider: %v", recs)
	}
	// With the CA gone, a tunnel still gets its vhost: nothing is ordered.
	ctx := ctxFor(t, 2*time.Minute)
	if err := st.Pebble.StopCA(ctx); err != nil {
		t.Fatal(err)
	}
	ag := st.EnrollAgent("wild-home", api.CapTunnelsWrite)
	port := st.StartApp("wildcard app")
	st.CreateTunnel(api.CreateTunnelRequest{Subdomain: "wildapp", Port: port, AgentLabel: ag.Label, AccessMode: api.AccessPublic})
	st.WaitHTTP(nil, st.URL("wildapp", "/"), 200, 0)
	if names, _ := st.Services.Certs.Names(); len(names) != 1 {
		t.Fatalf("a tunnel under the wildcard got its own certificate: %v", names)
	}
	if c := servedCert(t, st, "wildapp."+st.Domain, roots); !containsName(c.DNSNames, "*."+st.Domain) {
		t.Fatalf("wildapp serves %v", c.DNSNames)
	}

	// Apps under the wildcard share one nginx server block
	// (docs/architecture.md, "Scale"): each keeps its access class, and a
	// name without a tunnel reaches no app.
	a := admin(t, st)
	locked := st.CreateTunnel(api.CreateTunnelRequest{Subdomain: "wildlocked", Port: st.StartApp("locked app"), AgentLabel: ag.Label, AccessMode: api.AccessAuthenticated})
	family := st.CreateTunnel(api.CreateTunnelRequest{Subdomain: "wildfamily", Port: st.StartApp("family app"), AgentLabel: ag.Label, AccessMode: api.AccessRestricted, AllowedUsers: []string{"wilma"}})
	c := visitor(st)
	lockedURL := st.URL("wildlocked", "/headers?y=1")
	resp, _ := getWith(t, c, lockedURL, nil, map[string]string{"Remote-User": "wilma"})
	redirectsToPortal(t, st, resp, lockedURL)
	wilma, fred := newUser(t, st, "wilma"), newUser(t, st, "fred")
	fredCookie := login(t, st, fred, time.Now())
	st.WaitHTTP(c, lockedURL, 200, 0, fredCookie)
	if _, body := getWith(t, c, lockedURL, fredCookie, map[string]string{"Remote-User": "wilma"}); !strings.Contains(body, "Remote-User: fred") || strings.Contains(body, "wilma") {
		t.Fatalf("the app saw the wrong identity:\n%s", body)
	}
	if resp, _ := getWith(t, c, st.URL("wildfamily", "/"), fredCookie, nil); resp.StatusCode != 403 {
		t.Fatalf("restricted app, user not allowed: %d, want 403", resp.StatusCode)
	}
	st.WaitHTTP(c, st.URL("wildfamily", "/"), 200, 0, login(t, st, wilma, time.Now()))
	if resp, body := getWith(t, c, st.URL("wildnosuch", "/"), fredCookie, nil); resp.StatusCode != 404 || strings.Contains(body, "wildcard app") {
		t.Fatalf("unknown name under the wildcard: %d %q, want 404", resp.StatusCode, body)
	}
	// In force when the API answers: disabled and deleted apps are gone.
	noWarning(t, mustCall(t, a, "PATCH", st.Info.PanelURL+"/api/tunnels/"+locked.ID, map[string]any{"enabled": false}, 200))
	if resp, _ := getWith(t, c, lockedURL, fredCookie, nil); resp.StatusCode != 404 {
		t.Fatalf("disabled app: %d, want 404", resp.StatusCode)
	}
	noWarning(t, mustCall(t, a, "DELETE", st.Info.PanelURL+"/api/tunnels/"+family.ID, nil, 200))
	if resp, _ := getWith(t, c, st.URL("wildfamily", "/"), nil, nil); resp.StatusCode != 404 {
		t.Fatalf("deleted app: %d, want 404", resp.StatusCode)
	}
	if resp, _ := getWith(t, c, st.URL("wildapp", "/"), nil, nil); resp.StatusCode != 200 {
		t.Fatalf("public app after the others changed: %d", resp.StatusCode)
	}

	// A relay from before the shared server (the app in a server block of
	// its own, no route), or one restored without sites-enabled/.routes,
	// is converted when the panel starts; a start with nothing to convert
	// does not reload nginx.
	wild, err := st.Services.Tunnels.All()
	if err != nil {
		t.Fatal(err)
	}
	var app api.Tunnel
	for _, tun := range wild {
		if tun.Subdomain == "wildapp" {
			app = tun
		}
	}
	cert, _ := st.Services.Certs.Existing(app.FQDN)
	own, err := st.Services.Render.App(nginx.AppParams{Domain: st.Domain, Subdomain: "wildapp", RelayPort: app.RelayPort,
		Public: true, Owner: app.AgentLabel, TLS: nginx.TLSFiles{Cert: cert.Cert, Key: cert.Key}})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Services.Nginx.Apply(ctx, own); err != nil { // Route nil: the route goes
		t.Fatal(err)
	}
	appFile := filepath.Join(st.Relay.Layout.NginxSitesAvailable(), "portlama-app-wildapp")
	routeLink := filepath.Join(nginx.RoutesDir(st.Relay.Layout.NginxSitesEnabled()), "portlama-app-wildapp")
	if _, err := os.Lstat(routeLink); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the old layout still has a route: %v", err)
	}
	if resp, body := getWith(t, c, st.URL("wildapp", "/"), nil, nil); resp.StatusCode != 200 || !strings.Contains(body, "wildcard app") {
		t.Fatalf("app in its own server block: %d %q", resp.StatusCode, body)
	}
	st.Restart(system.UnitPanel)
	if data, err := os.ReadFile(appFile); err != nil || strings.Contains(string(data), "listen") || !strings.Contains(string(data), "upstream") {
		t.Fatalf("after the panel's start the app's vhost is still a server block (%v):\n%s", err, data)
	}
	if target, err := os.Readlink(routeLink); err != nil || target != appFile+".route" {
		t.Fatalf("route after the panel's start: %q %v", target, err)
	}
	if resp, body := getWith(t, c, st.URL("wildapp", "/"), nil, nil); resp.StatusCode != 200 || !strings.Contains(body, "wildcard app") {
		t.Fatalf("app in the shared server after the panel's start: %d %q", resp.StatusCode, body)
	}
	if resp, _ := getWith(t, c, lockedURL, fredCookie, nil); resp.StatusCode != 404 {
		t.Fatalf("the disabled app after the panel's start: %d, want 404", resp.StatusCode)
	}
	reloads := st.Nginx.Reloads()
	st.Restart(system.UnitPanel)
	if n := st.Nginx.Reloads() - reloads; n != 0 {
		t.Fatalf("a panel start with every vhost up to date reloaded nginx %d times", n)
	}
}

// panelclientFor is the panel client by IP presenting cert.
func panelclientFor(st *relaytest.Stack, cert *tls.Certificate) *panelclient.Client {
	return panelclient.New(st.Info.PanelURL, st.Client(cert))
}

func containsName(names []string, n string) bool {
	for _, x := range names {
		if x == n {
			return true
		}
	}
	return false
}

// `portlama certs renew` renews a certificate within 30 days of expiry,
// leaves one with 60 days, and nginx serves the new one afterwards.
func TestCertsRenewCommand(t *testing.T) {
	st := relaytest.NewStack(t)
	ctx := ctxFor(t, 3*time.Minute)
	// Replace panel.<d>'s certificate with a 20-day one and auth.<d>'s
	// with a 60-day one, both from Pebble.
	for _, c := range []struct{ sub, profile string }{{"panel", pebble.ProfileShort}, {"auth", pebble.ProfileSixty}} {
		iss, err := acme.NewIssuer(acme.IssuerConfig{
			AccountDir: filepath.Join(t.TempDir(), "account"), Webroot: st.Relay.Layout.ACMEWebroot,
			Settings: func() (acme.Settings, error) {
				return acme.Settings{DirectoryURL: st.Pebble.DirectoryURL, Email: "ops@" + st.Domain}, nil
			},
			CACertFile: st.Pebble.CACertFile, Profile: c.profile,
		})
		if err != nil {
			t.Fatal(err)
		}
		name := c.sub + "." + st.Domain
		certPEM, keyPEM, ch, err := iss.Obtain(ctx, []string{name})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Services.Certs.Install(name, certPEM, keyPEM, []string{name}, ch); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Services.Nginx.TestAndReload(ctx); err != nil {
		t.Fatal(err)
	}
	roots := pebbleRoots(t, st)
	short := servedCert(t, st, "panel."+st.Domain, roots)
	sixty := servedCert(t, st, "auth."+st.Domain, roots)
	if d := time.Until(short.NotAfter); d > 21*24*time.Hour {
		t.Fatalf("panel.<d> serves a certificate with %v left", d)
	}

	relayBin, _ := relaytest.Binaries(t)
	out, err := exec.CommandContext(ctx, relayBin, "certs", "renew", "--relay-config", st.RelayConfigPath()).CombinedOutput()
	if err != nil {
		t.Fatalf("portlama certs renew: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "renewed panel."+st.Domain) || strings.Contains(string(out), "renewed auth."+st.Domain) {
		t.Fatalf("output:\n%s", out)
	}
	renewed := servedCert(t, st, "panel."+st.Domain, roots)
	if renewed.SerialNumber.Cmp(short.SerialNumber) == 0 || time.Until(renewed.NotAfter) < 80*24*time.Hour {
		t.Fatalf("nginx serves %v until %v after the renewal", renewed.SerialNumber, renewed.NotAfter)
	}
	if kept := servedCert(t, st, "auth."+st.Domain, roots); kept.SerialNumber.Cmp(sixty.SerialNumber) != 0 {
		t.Fatal("the 60-day certificate was renewed")
	}
	// Forced renewal through the API.
	pc := st.Admin()
	r, err := pc.RenewCert(ctx, "auth."+st.Domain)
	if err != nil || !r.OK || r.NewExpiry == nil || r.Warning != "" {
		t.Fatalf("renew through the API: %+v %v", r, err)
	}
	if c := servedCert(t, st, "auth."+st.Domain, roots); c.SerialNumber.Cmp(sixty.SerialNumber) == 0 {
		t.Fatal("forced renewal not served")
	}
	if _, err := pc.RenewCert(ctx, "nope."+st.Domain); relaytest.ErrorStatus(err) != 404 {
		t.Fatalf("renew of an unknown certificate: %v", err)
	}
	certs, err := pc.Certs(ctx)
	if err != nil || len(certs) != 5 {
		t.Fatalf("GET /api/certs: %+v %v", certs, err)
	}
}

// After a rotation nginx refuses the old admin certificate and the new P12
// works; `portlama reset-admin` likewise, and turns panel 2FA off.
func TestAdminRotationAndReset(t *testing.T) {
	st := relaytest.NewStack(t, relaytest.WithRelayCA())
	ctx := ctxFor(t, 2*time.Minute)
	health := st.Info.PanelURL + "/api/health"
	oldCert, err := tls.LoadX509KeyPair(st.Info.AdminCert, st.Info.AdminKey)
	if err != nil {
		t.Fatal(err)
	}
	mustCall(t, st.Client(&oldCert), "GET", health, nil, 200)

	rot, err := st.Admin().RotateAdmin(ctx)
	if err != nil || rot.P12 == "" || len(rot.P12Password) != 32 || !strings.HasPrefix(rot.Warning, "Your current browser certificate is now invalid") {
		t.Fatalf("rotate: %+v %v", rot, err)
	}
	// A new connection with the old certificate is refused by nginx (the CRL).
	code, body := call(t, st.Client(&oldCert), "GET", health, nil)
	refusedByNginx(t, "rotated-out admin certificate", code, body)
	code, body = call(t, st.Client(&oldCert), "GET", st.URL("panel", "/api/health"), nil)
	refusedByNginx(t, "rotated-out admin certificate on panel.<d>", code, body)
	rotated := relaytest.P12Base64Cert(t, rot.P12, rot.P12Password)
	mustCall(t, st.Client(&rotated), "GET", st.Info.PanelURL+"/api/tunnels", nil, 200)
	// The answer survives the nginx reload its own request causes, every
	// time (nginx 1.22 dropped buffered answers of a worker shutting down).
	for i := 0; i < 3; i++ {
		pc := panelclientFor(st, &rotated)
		r, err := pc.RotateAdmin(ctx)
		if err != nil {
			t.Fatalf("rotation %d: %v", i+2, err)
		}
		next := relaytest.P12Base64Cert(t, r.P12, r.P12Password)
		code, body := call(t, st.Client(&rotated), "GET", health, nil)
		refusedByNginx(t, "rotated-out certificate", code, body)
		rotated = next
	}
	mustCall(t, st.Client(&rotated), "GET", st.Info.PanelURL+"/api/tunnels", nil, 200)

	relayBin, _ := relaytest.Binaries(t)
	out, err := exec.CommandContext(ctx, relayBin, "reset-admin", "--relay-config", st.RelayConfigPath()).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "previous one is revoked") || !strings.Contains(string(out), "https://127.0.0.1:") {
		t.Fatalf("reset-admin: %v\n%s", err, out)
	}
	code, body = call(t, st.Client(&rotated), "GET", health, nil)
	refusedByNginx(t, "admin certificate after reset-admin", code, body)
	pw, err := os.ReadFile(filepath.Join(st.Relay.Layout.PKIDir(), ".p12-password"))
	if err != nil || !strings.Contains(string(out), string(pw)) {
		t.Fatalf("printed password does not match .p12-password: %v", err)
	}
	p12, err := os.ReadFile(st.Info.AdminP12)
	if err != nil {
		t.Fatal(err)
	}
	fresh := relaytest.P12Cert(t, p12, string(pw))
	mustCall(t, st.Client(&fresh), "GET", st.Info.PanelURL+"/api/tunnels", nil, 200)
	if c, _ := st.Services.Panel.Load(); c.Panel2FA.Enabled || c.SessionSecret != nil {
		t.Fatalf("2FA after reset-admin: %+v", c.Panel2FA)
	}
}
