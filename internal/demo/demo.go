// Package demo runs the whole relay on one machine, on loopback: real nginx
// (a child process with its own prefix), the panel, the tunnel server and the
// auth server (children running the portlama binary), a sample web app, and
// an agent (the portlama-agent binary) that enrolled with a one-time token and
// tunnels the app. `portlama demo` runs it in the foreground; the end-to-end
// tests start the same stack with Start and drive it.
//
// Everything lives in one directory: the relay's files (relay.json names
// them), nginx's prefix, the agent's home, each process's log, and
// demo.json, the machine-readable summary written once everything answers.
package demo

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/portlama/portlama/internal/acme"
	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/invitepage"
	"github.com/portlama/portlama/internal/nginx"
	"github.com/portlama/portlama/internal/panel"
	"github.com/portlama/portlama/internal/panelclient"
	"github.com/portlama/portlama/internal/pki"
	"github.com/portlama/portlama/internal/relay"
	"github.com/portlama/portlama/internal/sampleapp"
	"github.com/portlama/portlama/internal/store"
	"github.com/portlama/portlama/internal/tunnel"
)

// Domain is the demo's base domain. Names under .localhost resolve to
// loopback in curl and browsers; demo.json still gives --resolve values.
const Domain = "demo.localhost"

// AgentLabel is the demo agent's label.
const AgentLabel = "demo-home"

// Options configure a demo stack. Zero values pick the defaults.
type Options struct {
	// Dir holds everything; created when missing.
	Dir string
	// RelayBinary runs `tunnel-server` and `auth-server`; default: this
	// executable. AgentBinary is portlama-agent; default: next to
	// RelayBinary.
	RelayBinary string
	AgentBinary string
	// Public nginx ports on 127.0.0.1: HTTPS (domain vhosts, default 8443),
	// the panel by IP (default 9292) and HTTP (default 8080). 0 picks the
	// default; -1 picks a free port (tests).
	HTTPSPort, PanelPort, HTTPPort int
	// RelayPortMin/Max bound the tunnels' relay ports (default 20000–29999).
	RelayPortMin, RelayPortMax int
	// Version is what the panel reports in /api/health.
	Version string
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
}

// App is one app the demo exposes (demo.json "apps").
type App struct {
	URL     string `json:"url"`
	Access  string `json:"access"`
	Resolve string `json:"resolve"`
}

// Site is a static site the demo serves (demo.json "sites").
type Site struct {
	URL     string `json:"url"`
	Resolve string `json:"resolve"`
}

// User is the demo's two-factor user (demo.json "user").
type User struct {
	Username   string `json:"username"`
	Password   string `json:"password"`
	TOTPSecret string `json:"totpSecret"`
}

// Info is demo.json.
type Info struct {
	PanelURL         string `json:"panelURL"`
	CACert           string `json:"caCert"`
	AdminCert        string `json:"adminCert"`
	AdminKey         string `json:"adminKey"`
	AdminP12         string `json:"adminP12"`
	AdminP12Password string `json:"adminP12Password"`
	HTTPSPort        int    `json:"httpsPort"`
	Domain           string `json:"domain"`
	Apps             []App  `json:"apps"`
	Sites            []Site `json:"sites"`
	AgentLabel       string `json:"agentLabel"`
	User             *User  `json:"user,omitempty"`
	AuthURL          string `json:"authURL,omitempty"`
	AuthResolve      string `json:"authResolve,omitempty"`
	// Not part of the contract's list, but handy for scripts and tests.
	IPCert           string `json:"ipCert"`
	AppPort          int    `json:"appPort"`
	ProtectedAppPort int    `json:"protectedAppPort"`
	Dir              string `json:"dir"`
}

// Stack is a running demo.
type Stack struct {
	Info     Info
	Relay    config.Relay
	Services *relay.Services

	opts   Options
	log    *slog.Logger
	nginx  *nginx.Instance
	tunnel *child
	auth   *child
	agent  *child
	cancel context.CancelFunc
	bg     chan error // background goroutines (panel, app) report here

	adminOnce sync.Once
	admin     *http.Client
	adminErr  error
}

func (o *Options) defaults() error {
	if o.Dir == "" {
		return errors.New("demo: no directory")
	}
	abs, err := filepath.Abs(o.Dir)
	if err != nil {
		return err
	}
	o.Dir = abs
	if o.RelayBinary == "" {
		if o.RelayBinary, err = os.Executable(); err != nil {
			return fmt.Errorf("find the portlama binary: %w", err)
		}
	}
	if o.AgentBinary == "" {
		o.AgentBinary = filepath.Join(filepath.Dir(o.RelayBinary), "portlama-agent")
	}
	if _, err := os.Stat(o.AgentBinary); err != nil {
		return fmt.Errorf("the demo runs the agent binary %s, which is missing: build it with `make build` (or pass --agent-binary)", o.AgentBinary)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.RelayPortMin == 0 {
		o.RelayPortMin, o.RelayPortMax = 20000, 29999
	}
	return nil
}

// port resolves a port option: 0 → def, -1 → a free port; it checks that
// the port is free, with advice if it is not.
func port(v, def int, flag string) (int, error) {
	switch v {
	case 0:
		v = def
	case -1:
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port, nil
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(v)))
	if err != nil {
		return 0, fmt.Errorf("port %d is in use on 127.0.0.1; stop what uses it or choose another with %s", v, flag)
	}
	l.Close()
	return v, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Start brings the whole stack up and returns once the sample app answers
// through nginx, the tunnel and the agent. On failure everything started so
// far is stopped.
func Start(ctx context.Context, o Options) (_ *Stack, err error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	s := &Stack{opts: o, log: o.Logger, bg: make(chan error, 4)}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	steps := []struct {
		what string
		fn   func(context.Context) error
	}{
		{"prepare the relay's files", s.prepare},
		{"start nginx", s.startNginx},
		{"start the tunnel and auth servers", s.startServers},
		{"start the panel", func(context.Context) error { return s.startPanel(runCtx) }},
		{"start the sample app", func(context.Context) error { return s.startApp(runCtx) }},
		{"enroll the agent", s.enrollAgent},
		{"create the tunnels", s.createTunnels},
		{"create the sample site", s.createSite},
		{"create the demo user", s.createUser},
		{"start the agent", s.startAgent},
		{"wait for the app through the tunnel", s.waitForApps},
	}
	for _, st := range steps {
		s.log.Info(st.what)
		if err := st.fn(ctx); err != nil {
			return nil, fmt.Errorf("demo: %s: %w", st.what, err)
		}
	}
	data, err := store.Marshal(s.Info)
	if err != nil {
		return nil, err
	}
	if err := store.WriteFileAtomic(filepath.Join(o.Dir, "demo.json"), data, 0o600); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Stack) prepare(ctx context.Context) error {
	o := s.opts
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return err
	}
	// A previous run's demo.json must not be mistaken for this one's.
	os.Remove(filepath.Join(o.Dir, "demo.json"))
	httpsPort, err := port(o.HTTPSPort, 8443, "--https-port")
	if err != nil {
		return err
	}
	panelPort, err := port(o.PanelPort, 9292, "--panel-port")
	if err != nil {
		return err
	}
	httpPort, err := port(o.HTTPPort, 8080, "--http-port")
	if err != nil {
		return err
	}
	addrs := config.Addrs{NginxListenHost: "127.0.0.1", HTTPSPort: httpsPort, PanelIPPort: panelPort, HTTPPort: httpPort}
	for _, a := range []*string{&addrs.Panel, &addrs.Tunnel, &addrs.Auth} {
		if *a, err = freeAddr(); err != nil {
			return err
		}
	}
	s.Relay = config.Relay{Layout: config.DirLayout(o.Dir), Addrs: addrs}
	data, err := store.Marshal(s.Relay)
	if err != nil {
		return err
	}
	if err := store.WriteFileAtomic(filepath.Join(o.Dir, "relay.json"), data, 0o600); err != nil {
		return err
	}
	l := s.Relay.Layout
	for _, d := range []string{l.DataDir, l.TunnelDir(), l.AuthDir(), l.WWWDir, l.CertsDir, l.ACMEWebroot} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	p, _, err := pki.Init(pki.Config{Dir: l.PKIDir(), Logger: s.log}, "127.0.0.1")
	if err != nil {
		return err
	}
	if err := ensureSecret(l.ProxySecretFile()); err != nil {
		return err
	}
	if _, err := config.NewPanelStore(l.PanelConfig()).Init(func(c *config.PanelConfig) error {
		d, e := Domain, "demo@"+Domain
		c.IP, c.DataDir, c.Domain, c.Email = "127.0.0.1", l.DataDir, &d, &e
		// The demo provisions itself (tunnel and auth servers, certificates,
		// vhosts), so onboarding is complete.
		c.Onboarding.Status = config.StatusCompleted
		c.RelayPortRange = config.PortRange{Min: o.RelayPortMin, Max: o.RelayPortMax}
		return nil
	}); err != nil {
		return err
	}
	// No public CA can certify a made-up domain: the relay CA issues the
	// wildcard certificate, and the agent and curl trust that CA.
	certs := &acme.Store{Dir: l.CertsDir, Domain: func() string { return Domain }}
	if _, err := certs.ForHost(ctx, "app."+Domain); err != nil {
		certPEM, keyPEM, err := p.IssueServer([]string{Domain, "*." + Domain}, 397*24*time.Hour)
		if err != nil {
			return err
		}
		if err := certs.Install(Domain, certPEM, keyPEM, []string{Domain, "*." + Domain}, "demo-ca"); err != nil {
			return err
		}
	}
	pw, err := os.ReadFile(filepath.Join(l.PKIDir(), pki.P12PasswordFile))
	if err != nil {
		return err
	}
	s.Info = Info{
		PanelURL:         fmt.Sprintf("https://127.0.0.1:%d", panelPort),
		CACert:           filepath.Join(l.PKIDir(), pki.CACertFile),
		AdminCert:        filepath.Join(l.PKIDir(), pki.ClientCertFile),
		AdminKey:         filepath.Join(l.PKIDir(), pki.ClientKeyFile),
		AdminP12:         filepath.Join(l.PKIDir(), pki.ClientP12File),
		AdminP12Password: string(pw),
		IPCert:           filepath.Join(l.PKIDir(), pki.SelfSignedCertFile),
		HTTPSPort:        httpsPort,
		Domain:           Domain,
		AgentLabel:       AgentLabel,
		Dir:              o.Dir,
	}
	return nil
}

func ensureSecret(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	return store.WriteFileAtomic(path, []byte(hex.EncodeToString(b)+"\n"), 0o600)
}

func (s *Stack) startNginx(ctx context.Context) error {
	inst, err := nginx.NewInstance(nginx.InstanceConfig{
		Prefix:   filepath.Join(s.opts.Dir, "nginx-run"),
		NginxDir: s.Relay.Layout.NginxDir,
		Workers:  1,
		Logger:   s.log,
	})
	if err != nil {
		return fmt.Errorf("%w (install nginx: sudo apt-get install nginx)", err)
	}
	if err := inst.Start(ctx); err != nil {
		return err
	}
	s.nginx = inst
	svc, err := relay.Open(s.Relay, inst, s.log)
	if err != nil {
		return err
	}
	s.Services = svc
	secret, err := panel.ReadProxySecret(s.Relay.Layout.ProxySecretFile())
	if err != nil {
		return err
	}
	shared, err := svc.Render.Shared(nginx.SharedParams{ProxySecret: secret})
	if err != nil {
		return err
	}
	// The tunnel vhost proves itself to the tunnel server with its own
	// secret; the tunnel server reads the same file.
	tunnelSecret, err := tunnel.EnsureProxySecret(tunnel.DirConfig(s.Relay.Layout.TunnelDir()).SecretFile)
	if err != nil {
		return err
	}
	ts, err := svc.Render.TunnelSecret(tunnelSecret)
	if err != nil {
		return err
	}
	shared.Files = append(shared.Files, ts)
	if err := svc.Nginx.WriteShared(ctx, shared); err != nil {
		return err
	}
	if err := invitepage.Write(s.Relay.Layout.WWWDir); err != nil {
		return err
	}
	tlsFiles := nginx.CertFiles(s.Relay.Layout, Domain)
	var vhosts []nginx.Vhost
	for _, render := range []func(string, nginx.TLSFiles) (nginx.Vhost, error){svc.Render.PanelDomain, svc.Render.Auth, svc.Render.Tunnel} {
		v, err := render(Domain, tlsFiles)
		if err != nil {
			return err
		}
		vhosts = append(vhosts, v)
	}
	return svc.Nginx.Apply(ctx, vhosts...)
}

func (s *Stack) logPath(name string) string { return filepath.Join(s.opts.Dir, name+".log") }

func (s *Stack) startServers(ctx context.Context) error {
	relayCfg := filepath.Join(s.opts.Dir, "relay.json")
	s.tunnel = &child{name: "tunnel server", argv: []string{s.opts.RelayBinary, "tunnel-server", "--relay-config", relayCfg}, log: s.logPath("tunnel-server")}
	s.auth = &child{name: "auth server", argv: []string{s.opts.RelayBinary, "auth-server", "--relay-config", relayCfg}, log: s.logPath("auth-server")}
	for _, c := range []struct {
		c    *child
		addr string
	}{{s.tunnel, s.Relay.Addrs.Tunnel}, {s.auth, s.Relay.Addrs.Auth}} {
		if err := c.c.start(); err != nil {
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := waitTCP(wctx, c.addr, c.c)
		cancel()
		if err != nil {
			return fmt.Errorf("%s did not come up (%v); its log:\n%s", c.c.name, err, c.c.tail())
		}
	}
	return nil
}

// RestartTunnelServer kills the tunnel server with SIGKILL and starts it
// again (tests of the agent's recovery).
func (s *Stack) RestartTunnelServer(ctx context.Context) error {
	s.tunnel.kill()
	if err := s.tunnel.start(); err != nil {
		return err
	}
	return waitTCP(ctx, s.Relay.Addrs.Tunnel, s.tunnel)
}

// RestartAuthServer stops the auth server and starts it again.
func (s *Stack) RestartAuthServer(ctx context.Context) error {
	s.auth.stop()
	if err := s.auth.start(); err != nil {
		return err
	}
	return waitTCP(ctx, s.Relay.Addrs.Auth, s.auth)
}

func (s *Stack) startPanel(ctx context.Context) error {
	srv, err := relay.NewPanel(s.Services, s.opts.Version, s.log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.Relay.Addrs.Panel)
	if err != nil {
		return err
	}
	go func() { s.bg <- srv.Serve(ctx, ln) }()
	return nil
}

// startApp runs the sample app on two local ports, one per tunnel: a
// tunnel's local port is unique per agent.
func (s *Stack) startApp(ctx context.Context) error {
	for _, a := range []struct {
		port *int
		name string
	}{{&s.Info.AppPort, "Portlama demo app"}, {&s.Info.ProtectedAppPort, "Portlama demo app (protected)"}} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		*a.port = ln.Addr().(*net.TCPAddr).Port
		go func() { s.bg <- sampleapp.Serve(ctx, ln, a.name) }()
	}
	return nil
}

// AdminClient returns an HTTP client that presents the admin certificate
// and trusts the panel's self-signed IP certificate and the relay CA.
func (s *Stack) AdminClient() (*http.Client, error) {
	s.adminOnce.Do(func() {
		cert, err := tls.LoadX509KeyPair(s.Info.AdminCert, s.Info.AdminKey)
		if err != nil {
			s.adminErr = err
			return
		}
		pool := x509.NewCertPool()
		for _, f := range []string{s.Info.IPCert, s.Info.CACert} {
			pem, err := os.ReadFile(f)
			if err != nil {
				s.adminErr = err
				return
			}
			pool.AppendCertsFromPEM(pem)
		}
		s.admin = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool},
			// Names under the demo domain resolve to nginx on loopback.
			DialContext: s.DialContext,
		}}
	})
	return s.admin, s.adminErr
}

// DialContext dials nginx for any name under the demo domain (what curl's
// --resolve does) and everything else normally.
func (s *Stack) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, p, err := net.SplitHostPort(addr)
	if err == nil && (host == Domain || strings.HasSuffix(host, "."+Domain)) {
		addr = net.JoinHostPort("127.0.0.1", p)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// Panel returns the typed panel client that calls the panel through nginx
// with the admin certificate.
func (s *Stack) Panel() (*panelclient.Client, error) {
	c, err := s.AdminClient()
	if err != nil {
		return nil, err
	}
	return panelclient.New(s.Info.PanelURL, c), nil
}

func (s *Stack) enrollAgent(ctx context.Context) error {
	pc, err := s.Panel()
	if err != nil {
		return err
	}
	caps := []api.Capability{api.CapTunnelsRead, api.CapTunnelsWrite}
	tok, err := pc.CreateEnrollmentToken(ctx, api.NewAgentRequest{Label: AgentLabel, Capabilities: &caps})
	if err != nil {
		return err
	}
	argv := []string{s.opts.AgentBinary, "--home", s.agentHome(), "setup",
		"--token", tok.Token, "--panel-url", s.Info.PanelURL, "--ca-cert", s.Info.IPCert, "--force"}
	setup := &child{name: "agent setup", argv: argv, log: s.logPath("agent")}
	if err := setup.start(); err != nil {
		return err
	}
	<-setup.exited()
	if setup.err != nil {
		return fmt.Errorf("portlama-agent setup failed (%v):\n%s", setup.err, setup.tail())
	}
	return nil
}

func (s *Stack) agentHome() string { return filepath.Join(s.opts.Dir, "agent-home") }

func (s *Stack) createTunnels(ctx context.Context) error {
	pc, err := s.Panel()
	if err != nil {
		return err
	}
	list, err := pc.ListTunnels(ctx)
	if err != nil {
		return err
	}
	// A restarted demo reuses its directory: point existing tunnels at the
	// app's new port by recreating them.
	for _, t := range list {
		if err := pc.DeleteTunnel(ctx, t.ID); err != nil {
			return err
		}
	}
	s.Info.Apps = nil
	for _, t := range []struct {
		sub    string
		access api.AccessMode
		port   int
	}{{"app", api.AccessPublic, s.Info.AppPort}, {"secure", api.AccessAuthenticated, s.Info.ProtectedAppPort}} {
		if _, err := pc.CreateTunnel(ctx, api.CreateTunnelRequest{
			Subdomain:   t.sub,
			Port:        t.port,
			AgentLabel:  AgentLabel,
			AccessMode:  t.access,
			Description: "Portlama demo app (" + string(t.access) + ")",
		}); err != nil {
			return err
		}
		s.Info.Apps = append(s.Info.Apps, App{
			URL:     s.Relay.Addrs.HostURL(t.sub, Domain) + "/",
			Access:  string(t.access),
			Resolve: fmt.Sprintf("%s.%s:%d:127.0.0.1", t.sub, Domain, s.Info.HTTPSPort),
		})
	}
	return nil
}

// SampleSite is the name of the demo's static site (<name>.<domain>).
const SampleSite = "site"

// createSite (re)creates the sample static site, served by nginx from the
// relay's disk, and uploads its two files.
func (s *Stack) createSite(ctx context.Context) error {
	pc, err := s.Panel()
	if err != nil {
		return err
	}
	list, err := pc.ListSites(ctx)
	if err != nil {
		return err
	}
	for _, old := range list {
		if old.Name == SampleSite {
			if _, err := pc.DeleteSite(ctx, old.ID); err != nil {
				return err
			}
		}
	}
	res, err := pc.CreateSite(ctx, api.CreateSiteRequest{Name: SampleSite, Type: api.SiteManaged})
	if err != nil {
		return err
	}
	file := func(p, content string) panelclient.UploadFile {
		return panelclient.UploadFile{Path: p, Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(content)), nil }}
	}
	if _, err := pc.UploadSiteFiles(ctx, res.Site.ID, ".", []panelclient.UploadFile{
		file("index.html", `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Portlama demo site</title>`+
			`<link rel="stylesheet" href="style.css"></head><body><h1>A static site</h1>`+
			`<p>Served by nginx from the relay's disk: it stays online when the home machine is off.</p></body></html>`+"\n"),
		file("style.css", "body { font-family: sans-serif; max-width: 40em; margin: 3em auto; }\n"),
	}, nil); err != nil {
		return err
	}
	s.Info.Sites = []Site{{
		URL:     s.Relay.Addrs.HostURL(SampleSite, Domain) + "/",
		Resolve: fmt.Sprintf("%s.%s:%d:127.0.0.1", SampleSite, Domain, s.Info.HTTPSPort),
	}}
	return nil
}

// DemoUser is the demo's two-factor user.
const DemoUser = "demo"

func (s *Stack) createUser(ctx context.Context) error {
	pc, err := s.Panel()
	if err != nil {
		return err
	}
	users, err := pc.ListUsers(ctx)
	if err != nil {
		return err
	}
	password := randomHex(8)
	exists := false
	for _, u := range users {
		exists = exists || u.Username == DemoUser
	}
	name, email, groups := "Demo User", "demo@"+Domain, []string{"family"}
	if exists {
		_, err = pc.UpdateUser(ctx, DemoUser, api.UpdateUserRequest{DisplayName: &name, Email: &email, Password: &password, Groups: &groups})
	} else {
		_, err = pc.CreateUser(ctx, api.CreateUserRequest{Username: DemoUser, DisplayName: name, Email: email, Password: password, Groups: groups})
	}
	if err != nil {
		return err
	}
	totp, err := pc.ResetTOTP(ctx, DemoUser)
	if err != nil {
		return err
	}
	u, err := url.Parse(totp.TOTPURI)
	if err != nil || u.Query().Get("secret") == "" {
		return fmt.Errorf("reset-totp returned no secret in %q", totp.TOTPURI)
	}
	s.Info.User = &User{Username: DemoUser, Password: password, TOTPSecret: u.Query().Get("secret")}
	s.Info.AuthURL = s.Relay.Addrs.HostURL("auth", Domain) + "/"
	s.Info.AuthResolve = fmt.Sprintf("auth.%s:%d:127.0.0.1", Domain, s.Info.HTTPSPort)
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Stack) startAgent(ctx context.Context) error {
	s.agent = &child{name: "agent", argv: []string{s.opts.AgentBinary, "--home", s.agentHome(), "run", "--poll-interval", "2s"},
		log: s.logPath("agent")}
	return s.agent.start()
}

func (s *Stack) waitForApps(ctx context.Context) error {
	c, err := s.AdminClient()
	if err != nil {
		return err
	}
	url := s.Info.Apps[0].URL
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := c.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer 200 within 30 s (last: %v); agent log:\n%s", url, err, s.agent.tail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Wait blocks until ctx ends or a part of the stack fails on its own.
func (s *Stack) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-s.bg:
		return fmt.Errorf("demo: a component stopped: %v", err)
	case <-s.tunnel.exited():
		return fmt.Errorf("demo: the tunnel server exited; its log:\n%s", s.tunnel.tail())
	case <-s.auth.exited():
		return fmt.Errorf("demo: the auth server exited; its log:\n%s", s.auth.tail())
	case <-s.agent.exited():
		return fmt.Errorf("demo: the agent exited; its log:\n%s", s.agent.tail())
	}
}

// Stop stops everything the stack started.
func (s *Stack) Stop() {
	for _, c := range []*child{s.agent, s.auth, s.tunnel} {
		if c != nil {
			c.stop()
		}
	}
	if s.cancel != nil {
		s.cancel()
	}
	if s.nginx != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s.nginx.Stop(ctx)
		cancel()
	}
}
