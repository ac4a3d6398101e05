// Package provision is the one code path that sets a relay up: the install
// steps (PKI, secrets, panel.json, nginx's shared pieces) that the
// installer and the demo run, and the six onboarding tasks of the panel's
// provisioning job (start-tunnel-server, start-auth-server, issue-certs,
// configure-nginx, verify-services, finalize; docs/api.md). Every task is
// idempotent: running it again after a failure resumes, running it after
// success changes nothing.
//
// What differs between a relay, the demo and the tests is passed in: the
// system.ServiceManager that starts services (systemd, or the child-process
// supervisor) and the certificate issuer inside the acme.Store (ACME, or the
// relay CA for an offline demo).
package provision

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/portlama/portlama/internal/acme"
	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/auth"
	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/invitepage"
	"github.com/portlama/portlama/internal/nginx"
	"github.com/portlama/portlama/internal/pki"
	"github.com/portlama/portlama/internal/store"
	"github.com/portlama/portlama/internal/system"
	"github.com/portlama/portlama/internal/tunnel"
)

// Task ids and titles (docs/api.md, "Provisioning").
const (
	TaskStartTunnel    = "start-tunnel-server"
	TaskStartAuth      = "start-auth-server"
	TaskIssueCerts     = "issue-certs"
	TaskConfigureNginx = "configure-nginx"
	TaskVerify         = "verify-services"
	TaskFinalize       = "finalize"
)

// AdminUser is the user provisioning creates in the auth server.
const AdminUser = "admin"

// ---------------------------------------------------------------------
// Install steps.

// InstallConfig describes the relay being installed.
type InstallConfig struct {
	Layout config.Layout
	// IP is the relay's public IPv4 (panel.json ip, the IP vhost's
	// certificate).
	IP string
	// Panel sets what the installer (or the demo) wants in panel.json on
	// top of ip and dataDir; nil sets nothing else. A re-install keeps the
	// rest of the document.
	Panel func(*config.PanelConfig)
	Log   *slog.Logger
	// GenerateKey makes the PKI's RSA keys (tests pass a fast one); nil
	// is crypto/rsa.
	GenerateKey func(bits int) (*rsa.PrivateKey, error)
}

// Secret files the installer creates (0600, 32 random bytes as hex): the
// panel's proxy secret and the tunnel vhost's (nginx proves itself to the
// tunnel server with it; it is never the panel's). Every secret file is
// listed once and created by Install.
func secretFiles(l config.Layout) []string {
	return []string{l.ProxySecretFile(), tunnel.DirConfig(l.TunnelDir()).SecretFile}
}

// Install creates what a relay needs before its panel can start: the
// directories, the PKI, the secrets and panel.json. It is idempotent and
// never replaces an existing key or secret.
func Install(ctx context.Context, c InstallConfig) (*pki.PKI, error) {
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	l := c.Layout
	for _, d := range []string{l.DataDir, l.TunnelDir(), l.AuthDir(), l.CertsDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("install: create %s: %w", d, err)
		}
	}
	for _, d := range []string{l.WWWDir, l.ACMEWebroot} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("install: create %s: %w", d, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, _, err := pki.Init(pki.Config{Dir: l.PKIDir(), Logger: c.Log, GenerateKey: c.GenerateKey}, c.IP)
	if err != nil {
		return nil, fmt.Errorf("install: %w", err)
	}
	for _, f := range secretFiles(l) {
		if err := ensureSecret(f); err != nil {
			return nil, fmt.Errorf("install: %w", err)
		}
	}
	if _, err := config.NewPanelStore(l.PanelConfig()).Init(func(pc *config.PanelConfig) error {
		pc.IP, pc.DataDir = c.IP, l.DataDir
		if c.Panel != nil {
			c.Panel(pc)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("install: %w", err)
	}
	return p, nil
}

func ensureSecret(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	if err := store.WriteFileAtomic(path, []byte(hex.EncodeToString(b)+"\n"), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// ReadSecret reads a secret file written by Install.
func ReadSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read secret: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// WriteShared installs nginx's shared pieces (conf.d, snippets with the
// proxy secret, the http, default and panel-ip vhosts), tests and reloads.
// The panel-ip vhost stays disabled while panel 2FA is on.
func WriteShared(ctx context.Context, l config.Layout, r *nginx.Renderer, m *nginx.Manager) error {
	secret, err := ReadSecret(l.ProxySecretFile())
	if err != nil {
		return err
	}
	pc, err := config.NewPanelStore(l.PanelConfig()).Load()
	if err != nil {
		return err
	}
	shared, err := r.Shared(nginx.SharedParams{ProxySecret: secret, PanelIPDisabled: pc.Panel2FA.Enabled})
	if err != nil {
		return err
	}
	tunnelSecret, err := tunnel.ReadProxySecret(tunnel.DirConfig(l.TunnelDir()).SecretFile)
	if err != nil {
		return err
	}
	ts, err := r.TunnelSecret(tunnelSecret)
	if err != nil {
		return err
	}
	shared.Files = append(shared.Files, ts)
	if err := m.WriteShared(ctx, shared); err != nil {
		return fmt.Errorf("write nginx's shared configuration: %w", err)
	}
	return nil
}

// ---------------------------------------------------------------------
// Onboarding tasks.

// Config are the relay services the onboarding tasks use.
type Config struct {
	Relay    config.Relay
	Panel    *config.PanelStore
	Services system.ServiceManager
	Certs    *acme.Store // with the issuer
	Nginx    *nginx.Manager
	Render   *nginx.Renderer
	// SyncTunnelACL writes acl.json from the agents registry and
	// tunnels.json (credentials for every active agent, their ports).
	SyncTunnelACL func(ctx context.Context) error
	// PanelHealth checks that the panel answers /api/health with "ok".
	PanelHealth func(ctx context.Context) error
	Log         *slog.Logger
	// StartTimeout bounds how long a started service may take to accept
	// connections; 0 means 10 s.
	StartTimeout time.Duration
}

// Provisioner runs the onboarding tasks.
type Provisioner struct {
	cfg Config
	log *slog.Logger
}

// New checks cfg and returns a Provisioner.
func New(cfg Config) (*Provisioner, error) {
	switch {
	case cfg.Panel == nil, cfg.Services == nil, cfg.Certs == nil, cfg.Nginx == nil, cfg.Render == nil,
		cfg.SyncTunnelACL == nil, cfg.PanelHealth == nil:
		return nil, errors.New("provision: Panel, Services, Certs, Nginx, Render, SyncTunnelACL and PanelHealth are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 10 * time.Second
	}
	return &Provisioner{cfg: cfg, log: cfg.Log}, nil
}

// Tasks returns the six onboarding tasks in order.
func (p *Provisioner) Tasks() []Task {
	return []Task{
		{ID: TaskStartTunnel, Title: "Starting tunnel server", Run: p.startTunnel},
		{ID: TaskStartAuth, Title: "Starting auth server", Run: p.startAuth},
		{ID: TaskIssueCerts, Title: "Issuing TLS certificates", Run: p.issueCerts},
		{ID: TaskConfigureNginx, Title: "Configuring nginx", Run: p.configureNginx},
		{ID: TaskVerify, Title: "Verifying services", Run: p.verify},
		{ID: TaskFinalize, Title: "Finalizing setup", Run: p.finalize},
	}
}

// domain returns the base domain and panel.json.
func (p *Provisioner) domain() (string, config.PanelConfig, error) {
	c, err := p.cfg.Panel.Load()
	if err != nil {
		return "", c, err
	}
	d := c.DomainOrEmpty()
	if d == "" {
		return "", c, errors.New("no domain is set: finish the domain and DNS steps of onboarding first")
	}
	return d, c, nil
}

func (p *Provisioner) startTunnel(ctx context.Context, _ *Run) (string, *string, error) {
	tc := tunnel.DirConfig(p.cfg.Relay.Layout.TunnelDir())
	fp, err := tunnel.EnsureKey(tc.KeyFile, tc.FingerprintFile)
	if err != nil {
		return "", nil, err
	}
	if err := p.cfg.SyncTunnelACL(ctx); err != nil {
		return "", nil, fmt.Errorf("write the tunnel ACL: %w", err)
	}
	if err := p.startService(ctx, system.UnitTunnel, p.cfg.Relay.Addrs.Tunnel); err != nil {
		return "", tailLog(ctx, p.cfg.Services, system.UnitTunnel), err
	}
	return "Tunnel server running on " + p.cfg.Relay.Addrs.Tunnel + " (fingerprint " + fp + ")", nil, nil
}

// startService enables and starts unit and requires it active and addr
// accepting connections within StartTimeout.
func (p *Provisioner) startService(ctx context.Context, unit, addr string) error {
	sctx, cancel := context.WithTimeout(ctx, p.cfg.StartTimeout)
	defer cancel()
	if err := p.cfg.Services.Enable(sctx, unit); err != nil {
		return fmt.Errorf("start %s: %w", unit, err)
	}
	for {
		st, err := p.cfg.Services.Status(sctx, unit)
		if err == nil && st.State == system.StateActive && addr != "" && dial(sctx, addr) == nil {
			return nil
		}
		if err == nil && st.State == system.StateFailed {
			return fmt.Errorf("%s failed to start", unit)
		}
		select {
		case <-sctx.Done():
			if err == nil {
				err = fmt.Errorf("state %s", st.State)
			}
			return fmt.Errorf("%s is not active and accepting connections on %s within %v (%v)", unit, addr, p.cfg.StartTimeout, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func dial(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err == nil {
		c.Close()
	}
	return err
}

// tailLog returns the last 10 log lines of unit.
func tailLog(ctx context.Context, m system.ServiceManager, unit string) *string {
	fctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var lines []string
	_ = m.Follow(fctx, unit, 10, func(l system.LogLine) error {
		lines = append(lines, strings.TrimSpace(l.Timestamp+" "+l.Message))
		if len(lines) >= 10 {
			return errStopFollow
		}
		return nil
	})
	if len(lines) == 0 {
		return nil
	}
	s := strings.Join(lines, "\n")
	return &s
}

var errStopFollow = errors.New("enough lines")

func (p *Provisioner) startAuth(ctx context.Context, r *Run) (string, *string, error) {
	d, _, err := p.domain()
	if err != nil {
		return "", nil, err
	}
	dir := p.cfg.Relay.Layout.AuthDir()
	if err := auth.EnsureSecrets(dir); err != nil {
		return "", nil, err
	}
	// The auth server's configuration (cookie domain <d>, portal
	// https://auth.<d>) is derived from panel.json and the relay's
	// addresses when it starts, so there is no file to write.
	pw, err := newPassword()
	if err != nil {
		return "", nil, err
	}
	users := auth.NewUserStore(auth.UsersFilePath(dir), 0)
	if _, _, err := users.Modify(AdminUser, auth.UserChange{Password: &pw}); errors.Is(err, auth.ErrUserNotFound) {
		_, err = users.Create(auth.NewUser{Username: AdminUser, DisplayName: AdminUser, Email: "admin@portlama.local", Password: pw, Groups: []string{"admins"}})
		if err != nil {
			return "", nil, fmt.Errorf("create the admin user: %w", err)
		}
	} else if err != nil {
		return "", nil, fmt.Errorf("reset the admin user's password: %w", err)
	}
	r.AdminPassword = pw
	// A running auth server picks up users.yml within a second; a restart
	// makes sure it runs with this domain.
	if err := p.startService(ctx, system.UnitAuth, p.cfg.Relay.Addrs.Auth); err != nil {
		return "", tailLog(ctx, p.cfg.Services, system.UnitAuth), err
	}
	return "Auth server running for " + d + "; user admin created", nil, nil
}

// newPassword is 16 random bytes, base64url (docs/api.md, "Provisioning").
func newPassword() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// certNames returns the certificates provisioning needs: name → domains.
func certNames(d string, c config.PanelConfig) map[string][]string {
	if c.ACME.Wildcard && c.ACME.DNSProvider != nil && *c.ACME.DNSProvider != "" {
		return map[string][]string{d: {d, "*." + d}}
	}
	out := map[string][]string{}
	for _, s := range []string{"panel", "auth", "tunnel"} {
		out[s+"."+d] = []string{s + "." + d}
	}
	return out
}

func (p *Provisioner) issueCerts(ctx context.Context, _ *Run) (string, *string, error) {
	d, c, err := p.domain()
	if err != nil {
		return "", nil, err
	}
	names := certNames(d, c)
	var mu sync.Mutex
	var issued, kept []string
	var errs []error
	var wg sync.WaitGroup
	for name, domains := range names {
		wg.Go(func() {
			ordered, err := p.cfg.Certs.Obtain(ctx, name, domains)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, err)
			case ordered:
				issued = append(issued, name)
			default:
				kept = append(kept, name)
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return "", nil, errors.Join(errs...)
	}
	sctx, cancel := context.WithTimeout(ctx, p.cfg.StartTimeout)
	defer cancel()
	if err := p.cfg.Services.Enable(sctx, system.UnitRenewTimer); err != nil {
		return "", nil, fmt.Errorf("start the renewal timer: %w", err)
	}
	if st, err := p.cfg.Services.Status(sctx, system.UnitRenewTimer); err != nil || st.State != system.StateActive {
		return "", nil, fmt.Errorf("the renewal timer %s is not active (%v)", system.UnitRenewTimer, err)
	}
	msg := fmt.Sprintf("%d certificate(s) issued", len(issued))
	if len(kept) > 0 {
		msg += fmt.Sprintf(", %d still valid", len(kept))
	}
	return msg, nil, nil
}

// tlsFor returns the certificate files for sub.<d>: the wildcard's when
// provisioning issued one, else the host's own.
func (p *Provisioner) tlsFor(d string, c config.PanelConfig, sub string) nginx.TLSFiles {
	names := certNames(d, c)
	name := sub + "." + d
	if _, ok := names[d]; ok {
		name = d
	}
	f := p.cfg.Certs.Paths(name)
	return nginx.TLSFiles{Cert: f.Cert, Key: f.Key}
}

// domainVhosts renders the panel.<d>, auth.<d> and tunnel.<d> vhosts.
func (p *Provisioner) domainVhosts(d string, c config.PanelConfig) ([]nginx.Vhost, error) {
	r := p.cfg.Render
	var vhosts []nginx.Vhost
	for _, v := range []struct {
		sub    string
		render func(string, nginx.TLSFiles) (nginx.Vhost, error)
	}{{"panel", r.PanelDomain}, {"auth", r.Auth}, {"tunnel", r.Tunnel}} {
		vh, err := v.render(d, p.tlsFor(d, c, v.sub))
		if err != nil {
			return nil, err
		}
		vhosts = append(vhosts, vh)
	}
	return vhosts, nil
}

// DomainVhosts renders the vhosts provisioning wrote (panel.<d>, auth.<d>,
// tunnel.<d>) as this version renders them, for the panel's start
// (relay.Services.RewriteVhosts): none before onboarding has completed, and
// none while one of their certificates is missing or unusable (its name is
// returned in missing).
func (p *Provisioner) DomainVhosts() (vhosts []nginx.Vhost, missing []string, err error) {
	c, err := p.cfg.Panel.Load()
	if err != nil {
		return nil, nil, err
	}
	d := c.DomainOrEmpty()
	if d == "" || c.Onboarding.Status != config.StatusCompleted {
		return nil, nil, nil
	}
	// The certificates tlsFor names, not Existing's choice for the host:
	// a wildcard on disk does not stand in for hosts that render with
	// their own.
	for name := range certNames(d, c) {
		if !p.cfg.Certs.Usable(name) {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, missing, nil
	}
	vhosts, err = p.domainVhosts(d, c)
	return vhosts, nil, err
}

func (p *Provisioner) configureNginx(ctx context.Context, _ *Run) (string, *string, error) {
	d, c, err := p.domain()
	if err != nil {
		return "", nil, err
	}
	vhosts, err := p.domainVhosts(d, c)
	if err != nil {
		return "", nil, err
	}
	if err := invitepage.Write(p.cfg.Relay.Layout.WWWDir); err != nil {
		return "", nil, fmt.Errorf("write the invitation page: %w", err)
	}
	if err := p.cfg.Nginx.Apply(ctx, vhosts...); err != nil {
		var te *nginx.TestError
		if errors.As(err, &te) {
			return "", &te.Output, err
		}
		return "", nil, err
	}
	return "panel." + d + ", auth." + d + " and tunnel." + d + " enabled", nil, nil
}

func (p *Provisioner) verify(ctx context.Context, _ *Run) (string, *string, error) {
	var bad []string
	for _, u := range []string{system.UnitTunnel, system.UnitAuth, system.UnitNginx} {
		st, err := p.cfg.Services.Status(ctx, u)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", u, err))
		} else if st.State != system.StateActive {
			bad = append(bad, u+" is "+st.State)
		}
	}
	hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := p.cfg.PanelHealth(hctx); err != nil {
		bad = append(bad, "the panel's /api/health: "+err.Error())
	}
	if len(bad) > 0 {
		return "", nil, errors.New(strings.Join(bad, "; "))
	}
	return "nginx, tunnel and auth servers active; panel healthy", nil, nil
}

func (p *Provisioner) finalize(_ context.Context, r *Run) (string, *string, error) {
	c, err := p.cfg.Panel.Update(func(c *config.PanelConfig) error {
		if c.DomainOrEmpty() == "" {
			return errors.New("no domain is set")
		}
		c.Onboarding.Status = config.StatusCompleted
		return nil
	})
	if err != nil {
		return "", nil, err
	}
	d := c.DomainOrEmpty()
	r.Result = PublicURLs(p.cfg.Relay.Addrs, d)
	return "Onboarding complete", nil, nil
}

// PublicURLs returns the result of provisioning domain d (without the
// password).
func PublicURLs(a config.Addrs, d string) api.ProvisionResult {
	return api.ProvisionResult{AdminUsername: AdminUser, PanelURL: a.HostURL("panel", d), AuthURL: a.HostURL("auth", d)}
}

// Restore brings a completed relay's services back (the demo after a
// restart, `portlama demo` on an existing directory): it starts the
// tunnel and auth servers, checks the certificates and rewrites the
// domain vhosts, without touching the admin user or the onboarding state.
func (p *Provisioner) Restore(ctx context.Context) error {
	if _, _, err := p.startTunnel(ctx, &Run{}); err != nil {
		return err
	}
	if err := auth.EnsureSecrets(p.cfg.Relay.Layout.AuthDir()); err != nil {
		return err
	}
	if err := p.startService(ctx, system.UnitAuth, p.cfg.Relay.Addrs.Auth); err != nil {
		return err
	}
	for _, step := range []func(context.Context, *Run) (string, *string, error){p.issueCerts, p.configureNginx, p.verify} {
		if _, _, err := step(ctx, &Run{}); err != nil {
			return err
		}
	}
	return nil
}
