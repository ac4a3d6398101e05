package e2e

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/portlama/portlama/internal/acme"
	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/auth"
	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/nginx"
	"github.com/portlama/portlama/internal/onboarding/dnstest"
	"github.com/portlama/portlama/internal/panel"
	"github.com/portlama/portlama/internal/panelclient"
	"github.com/portlama/portlama/internal/pki"
	"github.com/portlama/portlama/internal/pki/pkitest"
	"github.com/portlama/portlama/internal/relay"
	"github.com/portlama/portlama/internal/relaytest"
	"github.com/portlama/portlama/internal/store"
	"github.com/portlama/portlama/internal/testutil"
)

// The static site tests run on a relay of their own: the demo stack has no
// DNS server and no certificate issuance, which custom domains need. (The
// provisioning issue's shared harness will replace this.)

const siteDomain = "sites.localhost"

// siteStack is real nginx, the panel (in this process, or the portlama
// binary), the auth server, a DNS server for custom domains and a
// certificate issuer that signs with the relay CA (ACME itself is tested
// with Pebble elsewhere).
type siteStack struct {
	t         *testing.T
	dir       string
	relay     config.Relay
	svc       *relay.Services // this process's services (also with a child panel: nginx's shared pieces)
	dns       *dnstest.Server
	admin     *panelclient.Client
	adminCert tls.Certificate
	pool      *x509.CertPool // the relay CA and the panel's IP certificate
	ipCert    string
	panel     *exec.Cmd // the child panel, or nil
	// stopAuth stops the auth server (and waits for it).
	stopAuth func()
}

// caIssuer issues certificates with the relay CA: the certificate
// interface tunnels and sites use, without a public CA.
type caIssuer struct{ p *pki.PKI }

func (i caIssuer) Obtain(_ context.Context, names []string) ([]byte, []byte, string, error) {
	c, k, err := i.p.IssueServer(names, 90*24*time.Hour)
	return c, k, "relay-ca", err
}

// startSites builds the relay in a temporary directory; with childPanel
// the panel runs as `portlama panel` (its memory can be measured alone).
func startSites(t *testing.T, childPanel bool) *siteStack {
	t.Helper()
	testutil.NeedBinary(t, "nginx")
	dir, err := os.MkdirTemp("", "portlama-sites-") // plain characters: nginx paths
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	st := &siteStack{t: t, dir: dir}
	st.dns, err = dnstest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.dns.Close() })
	addrs := config.Addrs{NginxListenHost: "127.0.0.1"}
	ps := testutil.FreePorts(t, 5)
	addrs.Panel, addrs.Tunnel = "127.0.0.1:"+strconv.Itoa(ps[0]), "127.0.0.1:"+strconv.Itoa(ps[1])
	addrs.HTTPSPort, addrs.PanelIPPort, addrs.HTTPPort = ps[2], ps[3], ps[4]
	authLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addrs.Auth = authLn.Addr().String()
	st.relay = config.Relay{Layout: config.DirLayout(dir), Addrs: addrs, DNSServer: st.dns.Addr}
	l := st.relay.Layout
	data, _ := store.Marshal(st.relay)
	writeTestFile(t, filepath.Join(dir, "relay.json"), data, 0o600)
	for _, d := range []string{l.DataDir, l.TunnelDir(), l.AuthDir(), l.CertsDir, l.ACMEWebroot} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(l.WWWDir, 0o755); err != nil {
		t.Fatal(err)
	}
	p, _, err := pki.Init(pki.Config{Dir: l.PKIDir(), GenerateKey: pkitest.GenerateKey}, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	writeTestFile(t, l.ProxySecretFile(), []byte(hex.EncodeToString(secret)+"\n"), 0o600)
	if _, err := config.NewPanelStore(l.PanelConfig()).Init(func(c *config.PanelConfig) error {
		d, e := siteDomain, "ops@"+siteDomain
		c.IP, c.DataDir, c.Domain, c.Email = "127.0.0.1", l.DataDir, &d, &e
		c.Onboarding.Status = config.StatusCompleted
		c.RelayPortRange = config.PortRange{Min: 27000, Max: 27099}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	certs := &acme.Store{Dir: l.CertsDir, Domain: func() string { return siteDomain }}
	certPEM, keyPEM, err := p.IssueServer([]string{siteDomain, "*." + siteDomain}, 90*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := certs.Install(siteDomain, certPEM, keyPEM, []string{siteDomain, "*." + siteDomain}, "relay-ca"); err != nil {
		t.Fatal(err)
	}

	inst, err := nginx.NewInstance(nginx.InstanceConfig{Prefix: filepath.Join(dir, "nginx-run"), NginxDir: l.NginxDir, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := inst.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inst.Stop(context.Background()) })
	st.svc, err = relay.Open(relay.Options{Config: st.relay, Nginx: inst, Issuer: caIssuer{p}})
	if err != nil {
		t.Fatal(err)
	}
	shared, err := st.svc.Render.Shared(nginx.SharedParams{ProxySecret: hex.EncodeToString(secret)})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.svc.Nginx.WriteShared(ctx, shared); err != nil {
		t.Fatal(err)
	}
	tlsFiles := nginx.CertFiles(l, siteDomain)
	var vhosts []nginx.Vhost
	for _, render := range []func(string, nginx.TLSFiles) (nginx.Vhost, error){st.svc.Render.PanelDomain, st.svc.Render.Auth} {
		v, err := render(siteDomain, tlsFiles)
		if err != nil {
			t.Fatal(err)
		}
		vhosts = append(vhosts, v)
	}
	if err := st.svc.Nginx.Apply(ctx, vhosts...); err != nil {
		t.Fatal(err)
	}

	// The auth server, as `portlama auth-server` runs it.
	portal := addrs.HostURL("auth", siteDomain)
	asrv, err := auth.NewServer(auth.Config{Dir: l.AuthDir(), Domain: siteDomain, PortalURL: portal, BcryptCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	mln, err := auth.ListenManageSocket(auth.ManageSocketPath(l.AuthDir()))
	if err != nil {
		t.Fatal(err)
	}
	authCtx, authCancel := context.WithCancel(ctx)
	authDone := make(chan struct{})
	go func() { defer close(authDone); asrv.Serve(authCtx, authLn, mln) }()
	st.stopAuth = func() { authCancel(); <-authDone }
	t.Cleanup(st.stopAuth)

	if childPanel {
		st.startChildPanel(ctx)
	} else {
		srv, err := panel.New(panel.FromRelay(st.svc, "test", nil))
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", addrs.Panel)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { defer close(done); srv.Serve(ctx, ln) }()
		t.Cleanup(func() { cancel(); <-done })
	}

	st.ipCert = p.Path(pki.SelfSignedCertFile)
	st.pool = x509.NewCertPool()
	for _, f := range []string{st.ipCert, p.Path(pki.CACertFile)} {
		pem, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		st.pool.AppendCertsFromPEM(pem)
	}
	adminCert, err := tls.LoadX509KeyPair(p.Path(pki.ClientCertFile), p.Path(pki.ClientKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	st.adminCert = adminCert
	st.admin = st.panelClient(&adminCert)
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	for {
		if _, err := st.admin.Health(wctx); err == nil {
			break
		} else if wctx.Err() != nil {
			t.Fatalf("the panel did not answer through nginx: %v", err)
		}
		select {
		case <-wctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	return st
}

// startChildPanel runs `portlama panel --relay-config relay.json`.
func (st *siteStack) startChildPanel(ctx context.Context) {
	t := st.t
	logf, err := os.Create(filepath.Join(st.dir, "panel.log"))
	if err != nil {
		t.Fatal(err)
	}
	relayBin, _ := relaytest.Binaries(t)
	cmd := exec.CommandContext(ctx, relayBin, "panel", "--relay-config", filepath.Join(st.dir, "relay.json"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	st.panel = cmd
	exited := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		<-exited
		if t.Failed() {
			log, _ := os.ReadFile(logf.Name())
			t.Logf("panel log:\n%s", log)
		}
	})
}

func writeTestFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := store.WriteFileAtomic(path, data, mode); err != nil {
		t.Fatal(err)
	}
}

// dial reaches nginx on loopback for every name (what curl's --resolve
// does), keeping the port.
func (st *siteStack) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	return d.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
}

// client is an HTTP client presenting cert (nil: none) that trusts the
// relay CA and the panel's IP certificate; it does not follow redirects.
func (st *siteStack) client(cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: st.pool}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	tr := &http.Transport{TLSClientConfig: cfg, DialContext: st.dial}
	st.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Timeout: 60 * time.Second, Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (st *siteStack) panelURL() string {
	return "https://127.0.0.1:" + strconv.Itoa(st.relay.Addrs.PanelIPPort)
}

func (st *siteStack) panelClient(cert *tls.Certificate) *panelclient.Client {
	return panelclient.New(st.panelURL(), st.client(cert))
}

// siteURL is https://<fqdn>:<port><path>.
func (st *siteStack) siteURL(fqdn, path string) string {
	return "https://" + fqdn + ":" + strconv.Itoa(st.relay.Addrs.HTTPSPort) + path
}

// addUser creates a user with a TOTP secret through the API and signs it
// in through the portal; it returns the session cookie.
func (st *siteStack) addUser(name string, groups ...string) *http.Cookie {
	t := st.t
	ctx := context.Background()
	if groups == nil {
		groups = []string{}
	}
	pw := "pw-" + name + "-0123456789"
	if _, err := st.admin.CreateUser(ctx, api.CreateUserRequest{Username: name, DisplayName: name, Email: name + "@example.com", Password: pw, Groups: groups}); err != nil {
		t.Fatalf("create user %s: %v", name, err)
	}
	r, err := st.admin.ResetTOTP(ctx, name)
	if err != nil {
		t.Fatalf("reset TOTP of %s: %v", name, err)
	}
	u, err := url.Parse(r.TOTPURI)
	if err != nil {
		t.Fatal(err)
	}
	portal := panelclient.NewPortal(st.relay.Addrs.HostURL("auth", siteDomain), st.client(nil))
	ck, err := portal.Login(ctx, name, pw, code(t, u.Query().Get("secret"), time.Now()), "")
	if err != nil {
		t.Fatalf("login of %s: %v", name, err)
	}
	return ck
}

// agentCert creates an agent certificate through the API and returns it.
func (st *siteStack) agentCert(label string, caps []string, sites []string) tls.Certificate {
	t := st.t
	ctx := context.Background()
	res, err := st.admin.CreateAgentCert(ctx, api.NewAgentRequest{Label: label, Capabilities: &caps, AllowedSites: sites})
	if err != nil {
		t.Fatalf("create agent %s: %v", label, err)
	}
	return decodeAgentP12(t, st.admin, label, res.P12Password)
}

// enrollAgent sets up a portlama-agent home for a new agent (a one-time
// token, as users do) and returns the home directory.
func (st *siteStack) enrollAgent(label string, caps []string, sites []string) string {
	t := st.t
	tok, err := st.admin.CreateEnrollmentToken(context.Background(), api.NewAgentRequest{Label: label, Capabilities: &caps, AllowedSites: sites})
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	out, err := st.agentCLI(home, "setup", "--token", tok.Token, "--panel-url", st.panelURL(), "--ca-cert", st.ipCert, "--force")
	if err != nil {
		t.Fatalf("portlama-agent setup: %v\n%s", err, out)
	}
	return home
}

// agentCLI runs the portlama-agent binary with home.
func (st *siteStack) agentCLI(home string, args ...string) (string, error) {
	_, agentBin := relaytest.Binaries(st.t)
	cmd := exec.Command(agentBin, append([]string{"--home", home}, args...)...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		err = fmt.Errorf("exit %d", ee.ExitCode())
	}
	return strings.TrimSpace(string(out)), err
}
