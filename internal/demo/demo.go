// Package demo runs a whole relay on one machine, on loopback, through the
// product's own code paths: provision.Install prepares it, relay.Open wires
// it, and the onboarding a user clicks through — domain, DNS check against
// a local DNS server, provisioning with live progress — runs through the
// panel's API. What differs from a relay on a VPS is only what is passed
// in: the services are children of this process (package supervisor, not
// systemd), nginx is a self-run instance, and certificates come from a
// local Pebble (real ACME, the default) or from the relay CA (offline).
//
// `portlama demo` runs it in the foreground with a sample app behind a
// tunnel; the test harness (internal/relaytest) starts the same stack
// without the sample and drives it.
//
// Everything lives in one directory: the relay's files (relay.json names
// them), nginx's prefix, Pebble's files, the agent's home, each process's
// log, and demo.json, the machine-readable summary.
package demo

import (
	"context"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/nginx"
	"github.com/portlama/portlama/internal/onboarding/dnstest"
	"github.com/portlama/portlama/internal/panel"
	"github.com/portlama/portlama/internal/panelclient"
	"github.com/portlama/portlama/internal/pebble"
	"github.com/portlama/portlama/internal/pki"
	"github.com/portlama/portlama/internal/ports"
	"github.com/portlama/portlama/internal/provision"
	"github.com/portlama/portlama/internal/relay"
	"github.com/portlama/portlama/internal/store"
	"github.com/portlama/portlama/internal/supervisor"
	"github.com/portlama/portlama/internal/system"
)

// Domain is the demo's default base domain. Names under .localhost are
// loopback names (RFC 6761); demo.json gives curl --resolve values.
const Domain = "demo.localhost"

// AgentLabel is the demo agent's label.
const AgentLabel = "demo-home"

// Options configure a stack. Zero values pick the defaults.
type Options struct {
	// Dir holds everything; created when missing.
	Dir string
	// RelayBinary runs `tunnel-server`, `auth-server` and `certs renew`;
	// default: this executable. AgentBinary is portlama-agent; default:
	// next to RelayBinary (needed only with Sample).
	RelayBinary string
	AgentBinary string
	// Domain is the base domain onboarding sets; default Domain.
	Domain string
	// Public nginx ports on 127.0.0.1: HTTPS (domain vhosts, default 8443),
	// the panel by IP (default 9292) and HTTP (ACME http-01 and redirects,
	// default 8080). 0 picks the default; -1 picks a free port (tests).
	HTTPSPort, PanelPort, HTTPPort int
	// RelayPortMin/Max bound the tunnels' relay ports (default 20000–29999).
	RelayPortMin, RelayPortMax int

	// ACME makes certificates real ACME certificates from a local Pebble
	// (validated over http-01 through nginx, or DNS-01 with Wildcard);
	// false issues them from the relay CA, offline.
	ACME bool
	// Wildcard configures DNS-01 with the DigitalOcean provider against a
	// local stand-in of its API (ACME only): one certificate for <d> and
	// *.<d>, and no issuance for new tunnels.
	Wildcard bool
	// NoOnboarding leaves the relay FRESH (tests drive onboarding).
	NoOnboarding bool
	// EmptyDNS starts the offline DNS server (without ACME) with no
	// records: the test sets them through Stack.DNS (onboarding's DNS
	// check from "missing" to "ready").
	EmptyDNS bool
	// Sample runs the showcase: a sample app, an agent enrolled with a
	// one-time token, two tunnels (public, two-factor) and a user.
	Sample bool

	// Version is what the panel reports in /api/health.
	Version string
	// Logger receives the components' messages; nil discards them.
	Logger *slog.Logger
	// Progress receives the steps a user would see, one line each; nil
	// discards them.
	Progress func(format string, args ...any)
	// GenerateKey makes the PKI's RSA keys (tests pass pkitest's).
	GenerateKey func(bits int) (*rsa.PrivateKey, error)
}

// Info is demo.json.
type Info struct {
	PanelURL         string `json:"panelURL"`
	CACert           string `json:"caCert"` // trust for the domain vhosts: Pebble's root or the relay CA
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
	// The portal's admin user made by provisioning (its password is shown
	// once, here and in the printout).
	PortalAdmin *User `json:"portalAdmin,omitempty"`
	// Not part of the contract's list, but handy for scripts and tests.
	IPCert           string `json:"ipCert"`
	RelayCACert      string `json:"relayCaCert"`
	Issuer           string `json:"issuer"` // "pebble" or "relay-ca"
	AppPort          int    `json:"appPort,omitempty"`
	ProtectedAppPort int    `json:"protectedAppPort,omitempty"`
	Dir              string `json:"dir"`
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

// User is a portal user (demo.json "user").
type User struct {
	Username   string `json:"username"`
	Password   string `json:"password"`
	TOTPSecret string `json:"totpSecret,omitempty"`
}

// Stack is a running relay.
type Stack struct {
	Info     Info
	Relay    config.Relay
	Services *relay.Services
	// Supervisor runs the relay's services (nginx, portlama-tunnel,
	// portlama-auth, the renewal timer) and the demo's agent.
	Supervisor *supervisor.Supervisor
	Nginx      *nginx.Instance
	// Pebble is the ACME CA (nil with the relay CA); DigitalOcean the
	// stand-in DNS API (with Wildcard).
	Pebble       *pebble.Server
	DigitalOcean *pebble.DigitalOcean
	// Onboarding is what provisioning returned (the portal admin's
	// password is only here and in Info).
	Onboarding api.ProvisionResult

	opts     Options
	log      *slog.Logger
	progress func(string, ...any)
	// DNS is the offline DNS server onboarding checks (nil with ACME:
	// Pebble's DNS server answers every name).
	DNS          *dnstest.Server
	cancel       context.CancelFunc
	runCtx       context.Context
	bg           chan error
	panelMu      sync.Mutex // guards the panel fields below and Services on a restart
	panelStarted bool
	panelRun     chan struct{}
	panelStop    context.CancelFunc

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
	if o.Sample {
		if _, err := os.Stat(o.AgentBinary); err != nil {
			return fmt.Errorf("the demo runs the agent binary %s, which is missing: build it with `make build` (or pass --agent-binary)", o.AgentBinary)
		}
	}
	if o.Domain == "" {
		o.Domain = Domain
	}
	if o.Wildcard && !o.ACME {
		return errors.New("demo: a wildcard certificate needs ACME (DNS-01)")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.RelayPortMin == 0 {
		o.RelayPortMin, o.RelayPortMax = 20000, 29999
	}
	return nil
}

// Start brings the stack up: install, nginx, the panel, then onboarding
// through the API (unless NoOnboarding; a directory that is already
// onboarded gets its services back instead), then the sample (with
// Sample). On failure everything started so far is stopped.
func Start(ctx context.Context, o Options) (_ *Stack, err error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	s := &Stack{opts: o, log: o.Logger, bg: make(chan error, 4), Supervisor: supervisor.New(o.Logger), progress: o.Progress}
	if s.progress == nil {
		s.progress = func(string, ...any) {}
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel, s.runCtx = cancel, runCtx
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	steps := []struct {
		what string
		fn   func(context.Context) error
	}{
		{"prepare the relay (install: PKI, secrets, panel.json)", s.install},
		{"start nginx", s.startNginx},
		{"start the panel", func(ctx context.Context) error { return s.Supervisor.Enable(ctx, system.UnitPanel) }},
	}
	if !o.NoOnboarding {
		steps = append(steps, struct {
			what string
			fn   func(context.Context) error
		}{"onboard the relay through the API", s.onboard})
	}
	if o.Sample {
		steps = append(steps, sampleSteps(s, runCtx)...)
	}
	for _, st := range steps {
		s.log.Info(st.what)
		if err := st.fn(ctx); err != nil {
			return nil, fmt.Errorf("demo: %s: %w", st.what, err)
		}
	}
	if err := s.WriteInfo(); err != nil {
		return nil, err
	}
	return s, nil
}

// WriteInfo writes demo.json.
func (s *Stack) WriteInfo() error {
	data, err := store.Marshal(s.Info)
	if err != nil {
		return err
	}
	return store.WriteFileAtomic(filepath.Join(s.opts.Dir, "demo.json"), data, 0o600)
}

func (s *Stack) install(ctx context.Context) error {
	o := s.opts
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return err
	}
	// A previous run's demo.json must not be mistaken for this one's.
	os.Remove(filepath.Join(o.Dir, "demo.json"))
	ports, err := ports.Alloc([]ports.Spec{{V: o.HTTPSPort, Def: 8443, Flag: "--https-port"}, {V: o.PanelPort, Def: 9292, Flag: "--panel-port"},
		{V: o.HTTPPort, Def: 8080, Flag: "--http-port"}, {V: -1}, {V: -1}, {V: -1}})
	if err != nil {
		return err
	}
	addrs := config.Addrs{NginxListenHost: "127.0.0.1", HTTPSPort: ports[0], PanelIPPort: ports[1], HTTPPort: ports[2],
		Panel: loopback(ports[3]), Tunnel: loopback(ports[4]), Auth: loopback(ports[5])}
	layout := config.DirLayout(o.Dir)
	nginxPrefix := filepath.Join(o.Dir, "nginx-run")
	s.Relay = config.Relay{Layout: layout, Addrs: addrs, Nginx: &config.NginxInstance{Prefix: nginxPrefix}}

	directory := config.DefaultACMEDirectoryURL
	if o.ACME {
		s.progress("Starting Pebble, Let's Encrypt's test CA, and its DNS server (every name resolves to 127.0.0.1) ...")
		p, err := pebble.Start(ctx, pebble.Config{Dir: filepath.Join(o.Dir, "pebble"), HTTPPort: addrs.HTTPPort, Logger: s.log})
		if err != nil {
			return err
		}
		s.Pebble = p
		p.AddZone(o.Domain)
		if err := s.TrustACMERoot(ctx); err != nil {
			return err
		}
		directory = p.DirectoryURL
		s.Relay.DNSServer = p.DNSAddr
		s.Relay.ACME = config.ACMEClient{CACertFile: p.CACertFile, DNSResolvers: []string{p.DNSAddr}, Profile: pebble.ProfileDefault}
	} else {
		dns, err := dnstest.Start("127.0.0.1:0")
		if err != nil {
			return err
		}
		s.DNS = dns
		if !o.EmptyDNS {
			// The records onboarding asks for: <d> and *.<d>.
			dns.SetA(o.Domain, "127.0.0.1")
			dns.SetA("*."+o.Domain, "127.0.0.1")
		}
		s.Relay.DNSServer = dns.Addr
	}
	data, err := store.Marshal(s.Relay)
	if err != nil {
		return err
	}
	if err := store.WriteFileAtomic(s.RelayConfigPath(), data, 0o600); err != nil {
		return err
	}
	if _, err := provision.Install(ctx, provision.InstallConfig{
		Layout: layout, IP: "127.0.0.1", Log: s.log, GenerateKey: o.GenerateKey,
		Panel: func(c *config.PanelConfig) {
			c.RelayPortRange = config.PortRange{Min: o.RelayPortMin, Max: o.RelayPortMax}
			c.ACME.DirectoryURL = directory
			if o.Wildcard {
				do := acmeProviderDigitalOcean
				c.ACME.DNSProvider, c.ACME.Wildcard = &do, true
			}
		},
	}); err != nil {
		return err
	}
	if o.Wildcard {
		do, err := s.Pebble.StartDigitalOcean()
		if err != nil {
			return err
		}
		s.DigitalOcean = do
		env := "DO_AUTH_TOKEN=" + do.Token + "\nDO_API_URL=" + do.URL + "\n"
		if err := store.WriteFileAtomic(relay.DNSCredentialsFile(layout), []byte(env), 0o600); err != nil {
			return err
		}
	}
	pw, err := os.ReadFile(filepath.Join(layout.PKIDir(), pki.P12PasswordFile))
	if err != nil {
		return err
	}
	s.Info = Info{
		PanelURL:         addrs.PanelIPURL("127.0.0.1"),
		CACert:           filepath.Join(layout.PKIDir(), pki.CACertFile),
		RelayCACert:      filepath.Join(layout.PKIDir(), pki.CACertFile),
		AdminCert:        filepath.Join(layout.PKIDir(), pki.ClientCertFile),
		AdminKey:         filepath.Join(layout.PKIDir(), pki.ClientKeyFile),
		AdminP12:         filepath.Join(layout.PKIDir(), pki.ClientP12File),
		AdminP12Password: string(pw),
		IPCert:           filepath.Join(layout.PKIDir(), pki.SelfSignedCertFile),
		HTTPSPort:        addrs.HTTPSPort,
		Domain:           o.Domain,
		AgentLabel:       AgentLabel,
		Issuer:           "relay-ca",
		Dir:              o.Dir,
	}
	if o.ACME {
		s.Info.Issuer = "pebble"
		s.Info.CACert = filepath.Join(s.TrustDir(), "pebble-root.pem")
	}
	return nil
}

const acmeProviderDigitalOcean = "digitalocean"

func loopback(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

// RelayConfigPath is relay.json, which every relay process is started with.
func (s *Stack) RelayConfigPath() string { return filepath.Join(s.opts.Dir, "relay.json") }

// LogPath is the log file of a unit.
func (s *Stack) LogPath(unit string) string {
	return filepath.Join(s.opts.Dir, strings.TrimSuffix(unit, ".timer")+".log")
}

// nginxProcess runs the self-run nginx as a supervisor unit.
type nginxProcess struct{ i *nginx.Instance }

func (n nginxProcess) Start(ctx context.Context) error  { return n.i.Start(ctx) }
func (n nginxProcess) Stop(ctx context.Context) error   { return n.i.Stop(ctx) }
func (n nginxProcess) Reload(ctx context.Context) error { return n.i.Reload(ctx) }
func (n nginxProcess) Pid() int                         { return n.i.Pid() }

func (s *Stack) startNginx(ctx context.Context) error {
	inst, err := nginx.NewInstance(nginx.InstanceConfig{
		Prefix:   s.Relay.Nginx.Prefix,
		NginxDir: s.Relay.Layout.NginxDir,
		Workers:  1,
		// The access log helps when a test fails; the demo keeps it too.
		AccessLog: true,
		Logger:    s.log,
	})
	if err != nil {
		return fmt.Errorf("%w (install nginx: sudo apt-get install nginx)", err)
	}
	s.Nginx = inst
	cfg := s.RelayConfigPath()
	units := []supervisor.Unit{
		{Name: system.UnitNginx, Process: nginxProcess{inst}, Log: inst.ErrorLog()},
		{Name: system.UnitPanel, Process: panelProcess{s}, Log: s.LogPath(system.UnitPanel)},
		// Start returns once the daemon accepts connections.
		{Name: system.UnitTunnel, Argv: []string{s.opts.RelayBinary, "tunnel-server", "--relay-config", cfg}, Log: s.LogPath("tunnel-server"), Ready: dialable(s.Relay.Addrs.Tunnel)},
		{Name: system.UnitAuth, Argv: []string{s.opts.RelayBinary, "auth-server", "--relay-config", cfg}, Log: s.LogPath("auth-server"), Ready: dialable(s.Relay.Addrs.Auth)},
		// The daily renewal, as the relay's systemd timer runs it.
		{Name: renewTimer, Argv: []string{s.opts.RelayBinary, "certs", "renew", "--relay-config", cfg}, Log: s.LogPath("certs-renew"), Every: 24 * time.Hour},
	}
	for _, u := range units {
		if err := s.Supervisor.Add(u); err != nil {
			return err
		}
	}
	if err := s.Supervisor.Enable(ctx, system.UnitNginx); err != nil {
		return err
	}
	if err := s.openRelay(); err != nil {
		return err
	}
	return provision.WriteShared(ctx, s.Relay.Layout, s.Services.Render, s.Services.Nginx)
}

// openRelay opens the relay from its files into s.Services.
func (s *Stack) openRelay() error {
	opts := relay.Options{Config: s.Relay, Nginx: s.Nginx, Services: s.Supervisor, Logger: s.log}
	if !s.opts.ACME {
		opts.Issuer = relayCAIssuer{dir: s.Relay.Layout.PKIDir(), log: s.log}
	}
	svc, err := relay.Open(opts)
	if err != nil {
		return err
	}
	s.Services = svc
	return nil
}

const renewTimer = system.UnitRenewTimer

// dialable is a readiness probe: addr accepts TCP connections.
func dialable(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return conn.Close()
	}
}

// panelProcess runs the panel inside this process as the portlama-panel
// unit, so the services API can report and restart it as on a relay.
type panelProcess struct{ s *Stack }

func (p panelProcess) Start(context.Context) error { return p.s.startPanel() }
func (p panelProcess) Stop(context.Context) error  { p.s.stopPanel(); return nil }

// Reload is a no-op: the panel reads panel.json on every request.
func (p panelProcess) Reload(context.Context) error { return nil }

// Pid is this process while the panel serves.
func (p panelProcess) Pid() int {
	p.s.panelMu.Lock()
	defer p.s.panelMu.Unlock()
	if p.s.panelRun == nil {
		return 0
	}
	select {
	case <-p.s.panelRun:
		return 0
	default:
		return os.Getpid()
	}
}

// startPanel serves the panel; every start after the first opens the
// relay again from its files, as a restarted portlama-panel does.
func (s *Stack) startPanel() error {
	s.panelMu.Lock()
	defer s.panelMu.Unlock()
	if s.panelStarted {
		if err := s.openRelay(); err != nil {
			return err
		}
	}
	// The panel's messages go to the demo's logger and to its unit log,
	// which the services API streams like the other units' logs.
	logFile, err := os.OpenFile(s.LogPath(system.UnitPanel), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open the panel's log: %w", err)
	}
	plog := slog.New(slog.NewMultiHandler(s.log.Handler(), slog.NewTextHandler(logFile, nil)))
	if err := s.Services.RewriteVhosts(s.runCtx); err != nil { // as `portlama panel` does
		plog.Error("nginx still serves the previous vhosts", "err", err)
	}
	srv, err := panel.New(panel.FromRelay(s.Services, s.opts.Version, plog))
	if err != nil {
		logFile.Close()
		return err
	}
	ln, err := net.Listen("tcp", s.Relay.Addrs.Panel)
	if err != nil {
		logFile.Close()
		return err
	}
	s.panelStarted = true
	pctx, stop := context.WithCancel(s.runCtx)
	run := make(chan struct{})
	s.panelRun, s.panelStop = run, stop
	go func() {
		err := srv.Serve(pctx, ln)
		logFile.Close()
		close(run)
		if pctx.Err() == nil {
			s.bg <- err
		}
	}()
	return nil
}

// stopPanel stops serving and waits until the panel has shut down.
func (s *Stack) stopPanel() {
	s.panelMu.Lock()
	stop, run := s.panelStop, s.panelRun
	s.panelMu.Unlock()
	if stop == nil {
		return
	}
	stop()
	<-run
}

// RestartPanel restarts the portlama-panel unit: the panel stops, opens
// the relay again from its files and serves it again.
func (s *Stack) RestartPanel(ctx context.Context) error {
	return s.Supervisor.Restart(ctx, system.UnitPanel)
}

// AdminClient returns an HTTP client that presents the admin certificate
// and trusts the panel's self-signed IP certificate, the relay CA and
// (with ACME) Pebble's root; names under the domain dial nginx.
func (s *Stack) AdminClient() (*http.Client, error) {
	s.adminOnce.Do(func() {
		cert, err := tls.LoadX509KeyPair(s.Info.AdminCert, s.Info.AdminKey)
		if err != nil {
			s.adminErr = err
			return
		}
		pool, err := s.TrustPool()
		if err != nil {
			s.adminErr = err
			return
		}
		s.admin = s.HTTPClient(&tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool})
	})
	return s.admin, s.adminErr
}

// resetAdmin makes AdminClient build a new client (the trust changed).
func (s *Stack) resetAdmin() {
	s.adminOnce = sync.Once{}
	s.admin, s.adminErr = nil, nil
}

// HTTPClient returns a client with tc that reaches the stack's names on
// loopback and does not follow redirects. It opens a connection per
// request: an nginx reload closes idle keep-alive connections, and a POST
// sent on one just then fails with EOF (Go retries only idempotent
// requests).
func (s *Stack) HTTPClient(tc *tls.Config) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tc, DialContext: s.DialContext, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// TrustPool holds the panel's IP certificate, the relay CA and, with ACME,
// Pebble's current root.
func (s *Stack) TrustPool() (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	for _, f := range []string{s.Info.IPCert, s.Info.RelayCACert} {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		pool.AppendCertsFromPEM(pem)
	}
	if s.Pebble != nil {
		// The root saved at onboarding (Pebble may be stopped now), else
		// the running Pebble's.
		root, err := os.ReadFile(filepath.Join(s.TrustDir(), "pebble-root.pem"))
		if err != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if root, err = s.Pebble.Roots(ctx); err != nil {
				return nil, err
			}
		}
		pool.AppendCertsFromPEM(root)
	}
	return pool, nil
}

// DialContext dials nginx for any name under the domain (what curl's
// --resolve does) and everything else normally.
func (s *Stack) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, p, err := net.SplitHostPort(addr)
	d := s.Info.Domain
	if err == nil && (host == d || strings.HasSuffix(host, "."+d)) {
		addr = net.JoinHostPort("127.0.0.1", p)
	}
	var dl net.Dialer
	return dl.DialContext(ctx, network, addr)
}

// Panel returns the typed panel client that calls the panel by IP through
// nginx with the admin certificate.
func (s *Stack) Panel() (*panelclient.Client, error) {
	c, err := s.AdminClient()
	if err != nil {
		return nil, err
	}
	return panelclient.New(s.Info.PanelURL, c), nil
}

// Wait blocks until ctx ends or a part of the stack fails on its own.
func (s *Stack) Wait(ctx context.Context) error {
	watch := []string{system.UnitTunnel, system.UnitAuth}
	if s.opts.Sample {
		watch = append(watch, agentUnit)
	}
	exited := make(chan string, len(watch))
	for _, u := range watch {
		ch := s.Supervisor.Exited(u)
		if ch == nil {
			continue
		}
		go func() {
			select {
			case <-ch:
				exited <- u
			case <-ctx.Done():
			}
		}()
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-s.bg:
		return fmt.Errorf("demo: a component stopped: %v", err)
	case u := <-exited:
		return fmt.Errorf("demo: %s exited; its log:\n%s", u, s.Supervisor.Tail(u, 2048))
	}
}

// Stop stops everything the stack started.
func (s *Stack) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	s.Supervisor.StopAll(ctx)
	if s.cancel != nil {
		s.cancel()
	}
	s.panelMu.Lock()
	run := s.panelRun
	s.panelMu.Unlock()
	if run != nil {
		select {
		case <-run:
		case <-ctx.Done():
		}
	}
	if s.DigitalOcean != nil {
		s.DigitalOcean.Close()
	}
	if s.Pebble != nil {
		s.Pebble.Stop()
	}
	if s.DNS != nil {
		s.DNS.Close()
	}
}
