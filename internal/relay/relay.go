// Package relay is the composition root of a relay: Open connects the
// panel's services — the PKI, the agents registry, tunnel definitions and
// the tunnel ACL, nginx, the certificate store with its issuer, the auth
// server's users and management socket, invitations, the service manager
// and provisioning — from a relay configuration. `portlama panel`, the CLI
// commands, the demo and every test harness build a relay through Open,
// so there is one place where the parts are connected; panel.FromRelay
// hands them to the HTTP API.
//
// What differs between a relay, the demo and the tests is an Option: the
// nginx controller, the service manager (systemd or the supervisor) and
// the certificate issuer (ACME from panel.json, or the relay CA).
package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/portlama/portlama/internal/acme"
	"github.com/portlama/portlama/internal/agents"
	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/auth"
	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/hostnames"
	"github.com/portlama/portlama/internal/invitations"
	"github.com/portlama/portlama/internal/manage"
	"github.com/portlama/portlama/internal/nginx"
	"github.com/portlama/portlama/internal/onboarding"
	"github.com/portlama/portlama/internal/pki"
	"github.com/portlama/portlama/internal/provision"
	"github.com/portlama/portlama/internal/sites"
	"github.com/portlama/portlama/internal/store"
	"github.com/portlama/portlama/internal/system"
	"github.com/portlama/portlama/internal/tunnel"
	"github.com/portlama/portlama/internal/tunnels"
)

// Options are what a caller chooses when opening a relay. Zero values are
// the production choices.
type Options struct {
	Config config.Relay
	// Nginx tests and reloads nginx. nil: Config.Nginx's self-run
	// instance when set, else the system's nginx service.
	Nginx nginx.Controller
	// Services starts and stops the relay's services. nil: systemd.
	Services system.ServiceManager
	// Timers reports the renewal timer. nil: Services when it is a
	// system.TimerReporter, else systemd.
	Timers system.TimerReporter
	// Issuer obtains certificates. nil: the ACME client configured by
	// panel.json's acme settings and Config.ACME.
	Issuer acme.Issuer
	// Resolver answers onboarding's DNS check. nil: Config.DNSServer when
	// set, else the system resolver.
	Resolver onboarding.Resolver
	// Now is the clock of the PKI, agents, tunnels and certificates
	// (tests); nil is time.Now.
	Now func() time.Time
	// PortFree says whether a relay port is free for a new tunnel; nil
	// probes 127.0.0.1 (tests whose port range other processes use pass
	// one that does not).
	PortFree func(port int) bool
	Logger   *slog.Logger
}

// Services are the relay's connected parts.
type Services struct {
	Config      config.Relay
	Log         *slog.Logger
	Now         func() time.Time
	Panel       *config.PanelStore
	ProxySecret string
	PKI         *pki.PKI
	Agents      *agents.Manager
	Tunnels     *tunnels.Service
	Sites       *sites.Service
	ACL         *tunnel.ACL
	// TunnelManage reaches the tunnel server's management socket.
	TunnelManage *tunnel.ManageClient
	// TunnelState and AuthState are the one way acl.json and the auth
	// server's users.yml / access-rules.json change: write, notify, wait
	// for the daemon's acknowledgement (docs/api.md, "Changes in force").
	TunnelState *manage.Publisher
	AuthState   *manage.Publisher
	Nginx       *nginx.Manager
	Render      *nginx.Renderer
	Certs       *acme.Store
	Users       *auth.UserStore
	TOTP        *auth.ManageClient
	Invitations *invitations.Store
	IPVhost     IPVhost
	Resolver    onboarding.Resolver
	Services    system.ServiceManager
	Timers      system.TimerReporter
	Provisioner *provision.Provisioner
	Job         *provision.Job

	rules *accessRules
}

// IPVhost turns the panel's IP vhost on and off (panel 2FA).
type IPVhost struct{ m *nginx.Manager }

func (v IPVhost) Enable(ctx context.Context) error  { return v.m.EnableVhost(ctx, nginx.VhostPanelIP) }
func (v IPVhost) Disable(ctx context.Context) error { return v.m.DisableVhost(ctx, nginx.VhostPanelIP) }

// DNSCredentialsFile is the DNS provider's credentials file in the data
// directory (docs/architecture.md, "Write rules").
func DNSCredentialsFile(l config.Layout) string { return filepath.Join(l.DataDir, "acme-dns.env") }

// Open connects the services of the relay described by o.Config. The
// relay must be installed (provision.Install): its PKI and proxy secret
// exist.
func Open(o Options) (*Services, error) {
	cfg := o.Config
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	s := &Services{Config: cfg, Log: log, Now: now, Panel: config.NewPanelStore(cfg.Layout.PanelConfig())}
	secret, err := provision.ReadSecret(cfg.Layout.ProxySecretFile())
	if err != nil {
		return nil, fmt.Errorf("open relay (is it installed?): %w", err)
	}
	s.ProxySecret = secret

	ctl := o.Nginx
	switch {
	case ctl != nil:
	case cfg.Nginx != nil:
		ctl = nginx.Attached{Prefix: cfg.Nginx.Prefix}
	default:
		ctl = nginx.System{}
	}
	s.Nginx = nginx.NewManager(cfg.Layout, ctl, log)
	if s.Render, err = nginx.NewRenderer(cfg.Layout, cfg.Addrs); err != nil {
		return nil, err
	}
	if cfg.Nginx == nil {
		// The system's nginx reads the lint gate's checked copies.
		s.Render = s.Render.ForCheckedSites()
	}
	s.IPVhost = IPVhost{s.Nginx}
	if s.PKI, err = pki.Open(pki.Config{Dir: cfg.Layout.PKIDir(), Logger: log, Now: o.Now, Reloader: nginxReloader{s.Nginx}}); err != nil {
		return nil, err
	}

	s.Services = o.Services
	if s.Services == nil {
		s.Services = system.Systemd{}
	}
	s.Timers = o.Timers
	if s.Timers == nil {
		if tr, ok := s.Services.(system.TimerReporter); ok {
			s.Timers = tr
		} else {
			s.Timers = system.Systemd{}
		}
	}
	s.Resolver = o.Resolver
	if s.Resolver == nil {
		if cfg.DNSServer != "" {
			s.Resolver = onboarding.DNSServerResolver{Server: cfg.DNSServer}
		} else {
			s.Resolver = onboarding.SystemResolver{}
		}
	}

	issuer := o.Issuer
	if issuer == nil {
		iss, err := acme.NewIssuer(acme.IssuerConfig{
			AccountDir:     filepath.Join(cfg.Layout.CertsDir, "account"),
			Webroot:        cfg.Layout.ACMEWebroot,
			Settings:       s.acmeSettings,
			CACertFile:     cfg.ACME.CACertFile,
			DNSCredentials: DNSCredentialsFile(cfg.Layout),
			DNSResolvers:   cfg.ACME.DNSResolvers,
			Profile:        cfg.ACME.Profile,
			Logger:         log,
		})
		if err != nil {
			return nil, err
		}
		issuer = iss
	}
	s.Certs = &acme.Store{Dir: cfg.Layout.CertsDir, Domain: s.domain, Issuer: issuer, Now: o.Now}

	tcfg := tunnel.DirConfig(cfg.Layout.TunnelDir())
	s.ACL = tunnel.NewACL(tcfg.ACLFile)
	s.TunnelManage = tunnel.NewManageClient(tcfg.ManageSocket, tcfg.ACLFile)
	s.TunnelState = manage.NewPublisher("tunnel server", "portlama-tunnel", s.TunnelManage.Notify, tcfg.ACLFile)
	s.rules = &accessRules{s: s}
	names := hostnames.New() // tunnels and sites share one name space
	s.Tunnels = tunnels.New(tunnels.Config{
		File:     cfg.Layout.TunnelsFile(),
		Settings: s.tunnelSettings,
		Agents:   activeLabels{s},
		Vhosts:   tunnelVhosts{s},
		Certs:    s.Certs,
		ACL:      agentPorts{s},
		Rules:    s.rules,
		Names:    names,
		Now:      o.Now,
		PortFree: o.PortFree,
	})
	s.Sites = sites.New(sites.Config{
		File:     cfg.Layout.SitesFile(),
		WWWDir:   cfg.Layout.WWWDir,
		Settings: s.siteSettings,
		Vhosts:   siteVhosts{s},
		Certs:    s.Certs,
		Rules:    s.rules,
		Resolver: s.Resolver,
		Names:    names,
		Log:      log,
	})
	if s.Agents, err = agents.New(agents.Config{PKI: s.PKI, Tunnels: credentials{s}, Logger: log, Now: o.Now}); err != nil {
		return nil, err
	}
	authDir := cfg.Layout.AuthDir()
	s.Users = auth.NewUserStore(auth.UsersFilePath(authDir), 0)
	s.TOTP = auth.NewManageClient(auth.ManageSocketPath(authDir))
	s.AuthState = manage.NewPublisher("auth server", "portlama-auth", s.TOTP.Reload,
		auth.UsersFilePath(authDir), auth.RulesFilePath(authDir))
	s.Invitations = invitations.New(cfg.Layout.InvitationsFile(), now)

	if s.Provisioner, err = provision.New(provision.Config{
		Relay:         cfg,
		Panel:         s.Panel,
		Services:      s.Services,
		Certs:         s.Certs,
		Nginx:         s.Nginx,
		Render:        s.Render,
		SyncTunnelACL: s.SyncTunnelACL,
		PanelHealth:   s.PanelHealth,
		Log:           log,
	}); err != nil {
		return nil, err
	}
	s.Job = provision.NewJob(s.Provisioner.Tasks(), s.Panel, log)
	return s, nil
}

func (s *Services) domain() string {
	c, err := s.Panel.Load()
	if err != nil {
		return ""
	}
	return c.DomainOrEmpty()
}

func (s *Services) acmeSettings() (acme.Settings, error) {
	c, err := s.Panel.Load()
	if err != nil {
		return acme.Settings{}, err
	}
	set := acme.Settings{DirectoryURL: c.ACME.DirectoryURL, Email: c.EmailOrEmpty(), Wildcard: c.ACME.Wildcard}
	if c.ACME.DNSProvider != nil {
		set.DNSProvider = *c.ACME.DNSProvider
	}
	return set, nil
}

func (s *Services) tunnelSettings() (tunnels.Settings, error) {
	c, err := s.Panel.Load()
	if err != nil {
		return tunnels.Settings{}, err
	}
	return tunnels.Settings{
		Domain:             c.DomainOrEmpty(),
		Email:              c.EmailOrEmpty(),
		RelayPortMin:       c.RelayPortRange.Min,
		RelayPortMax:       c.RelayPortRange.Max,
		MaxTunnelsPerAgent: c.AgentLimits.TunnelLimit(),
	}, nil
}

func (s *Services) siteSettings() (sites.Settings, error) {
	c, err := s.Panel.Load()
	if err != nil {
		return sites.Settings{}, err
	}
	return sites.Settings{Domain: c.DomainOrEmpty(), Email: c.EmailOrEmpty(), IP: c.IP, MaxSiteSize: c.MaxSiteSize}, nil
}

// TunnelServerURL is the URL agents connect their tunnels to. It always
// names the port (https://tunnel.<d>:443, as agent-config has it).
func (s *Services) TunnelServerURL(domain string) string {
	u := s.Config.Addrs.HostURL("tunnel", domain)
	if !strings.Contains(strings.TrimPrefix(u, "https://"), ":") {
		u += ":443"
	}
	return u
}

// Fingerprint is the tunnel server's key fingerprint.
func (s *Services) Fingerprint() (string, error) {
	fp, err := tunnel.ReadFingerprint(tunnel.DirConfig(s.Config.Layout.TunnelDir()).FingerprintFile)
	if err != nil {
		return "", fmt.Errorf("read tunnel server fingerprint (is the tunnel server running?): %w", err)
	}
	return fp, nil
}

// SyncTunnelACL gives every active agent its tunnel credentials and the
// relay ports of its enabled tunnels (provisioning's start-tunnel-server).
func (s *Services) SyncTunnelACL(ctx context.Context) error {
	// The file exists even before the first agent: the tunnel server
	// starts from it.
	if _, err := os.Stat(s.ACL.Path()); errors.Is(err, fs.ErrNotExist) {
		if err := store.WriteFileAtomic(s.ACL.Path(), []byte("{\n  \"agents\": []\n}\n"), 0o600); err != nil {
			return err
		}
	}
	labels, err := activeLabels{s}.ActiveLabels()
	if err != nil {
		return err
	}
	for _, l := range labels {
		if err := (credentials{s}).AddAgent(ctx, l); err != nil {
			return err
		}
	}
	return nil
}

// PanelHealth asks the panel's /api/health on its loopback address.
func (s *Services) PanelHealth(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.Config.Addrs.Panel+"/api/health", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var h api.Health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil || resp.StatusCode != http.StatusOK || h.Status != "ok" {
		return fmt.Errorf("panel health: HTTP %d %+v %v", resp.StatusCode, h, err)
	}
	return nil
}

// RenewCertificate forces the renewal of the certificate called name and
// reloads nginx; a failing test or reload is returned as reloadErr (the
// new certificate is installed either way).
func (s *Services) RenewCertificate(ctx context.Context, name string) (notAfter time.Time, reloadErr, err error) {
	na, err := s.Certs.Renew(ctx, name)
	if err != nil {
		return time.Time{}, nil, err
	}
	return na, s.Nginx.TestAndReload(ctx), nil
}

// RenewDue renews every certificate with fewer than 30 days left, then
// tests and reloads nginx once when anything changed; it also renews the
// CRL when its nextUpdate is near (`portlama certs renew`, docs/operations.md, "Certificates").
func (s *Services) RenewDue(ctx context.Context) (acme.RenewResult, error) {
	res, err := s.Certs.RenewDue(ctx, acme.RenewWindow)
	if err != nil {
		return res, err
	}
	crl, crlErr := s.PKI.RenewCRLIfNeeded()
	if len(res.Renewed) > 0 || crl {
		if rerr := s.Nginx.TestAndReload(ctx); rerr != nil {
			return res, fmt.Errorf("certificates renewed but nginx was not reloaded: %w", rerr)
		}
	}
	var errs []error
	for name, e := range res.Failed {
		errs = append(errs, fmt.Errorf("%s: %w", name, e))
	}
	if crlErr != nil {
		errs = append(errs, fmt.Errorf("CRL: %w", crlErr))
	}
	return res, errors.Join(errs...)
}

// agentPorts updates the relay ports an agent may bind. A revoked agent
// has no credentials and nothing to update: its tunnels were disabled when
// it was revoked, and an admin enables them again explicitly.
type agentPorts struct{ s *Services }

func (a agentPorts) SetPorts(ctx context.Context, label string, ports []int) error {
	err := a.s.TunnelState.Apply(ctx, func() error { return a.s.ACL.SetPorts(ctx, label, ports) })
	if errors.Is(err, tunnel.ErrUnknownAgent) {
		return nil
	}
	return err
}

type nginxReloader struct{ m *nginx.Manager }

func (r nginxReloader) Reload(ctx context.Context) error { return r.m.TestAndReload(ctx) }

type activeLabels struct{ s *Services }

func (a activeLabels) ActiveLabels() ([]string, error) {
	entries, err := a.s.Agents.List()
	if err != nil {
		return nil, err
	}
	var labels []string
	for _, e := range entries {
		if !e.Revoked {
			labels = append(labels, e.Label)
		}
	}
	return labels, nil
}

// credentials gives an agent its tunnel credentials and the ports of its
// enabled tunnels; revoking it disables its tunnels first.
type credentials struct{ s *Services }

// AddAgent is saved even when the tunnel server does not confirm it (it
// may not run yet, as during provisioning): the agent is refused until the
// server reads acl.json, and enrolling has no answer to carry a warning in.
func (c credentials) AddAgent(ctx context.Context, label string) error {
	err := c.s.TunnelState.Apply(ctx, func() error { return c.s.ACL.AddAgent(ctx, label) })
	if err = c.unconfirmedIsSaved(label, err); err != nil {
		return err
	}
	// The ports come last: an agent whose credential is new but whose
	// ports the server has not confirmed only waits for them.
	return c.unconfirmedIsSaved(label, c.s.Tunnels.SyncACL(ctx, label))
}

func (c credentials) unconfirmedIsSaved(label string, err error) error {
	w, rest := manage.Warning(err)
	if w != "" {
		c.s.Log.Warn("tunnel credentials saved but not confirmed by the tunnel server", "label", label, "err", err)
	}
	return rest
}

func (c credentials) RemoveAgent(ctx context.Context, label string) error {
	return c.s.TunnelState.Apply(ctx, func() error { return c.s.ACL.RemoveAgent(ctx, label) })
}

// RevokeAgent disables the agent's tunnels (persisted, so an agent enrolled
// later with the same label does not adopt them) and removes its
// credentials; once the tunnel server confirms, its sessions and relay
// ports are closed.
func (c credentials) RevokeAgent(ctx context.Context, label string) error {
	disabled := c.s.Tunnels.DisableAgent(ctx, label)
	if _, err := manage.Warning(disabled); err != nil {
		return err
	}
	// The result joins the unconfirmed steps, if any (manage.Warning
	// reads them all).
	return errors.Join(disabled, c.RemoveAgent(ctx, label))
}

// tunnelVhosts writes tunnel vhosts with nginx's safe procedure.
type tunnelVhosts struct{ s *Services }

func (v tunnelVhosts) WriteTunnel(ctx context.Context, t api.Tunnel, cert acme.Files) error {
	shared, vh, err := v.s.tunnelVhost(t, cert)
	if err != nil {
		return err
	}
	if shared.Name != "" {
		return v.s.Nginx.Apply(ctx, shared, vh)
	}
	return v.s.Nginx.Apply(ctx, vh)
}

// tunnelVhost renders t's vhost and, for an app under the wildcard
// certificate, the shared server it joins (shared.Name is empty
// otherwise).
func (s *Services) tunnelVhost(t api.Tunnel, cert acme.Files) (shared, vh nginx.Vhost, err error) {
	domain := strings.TrimPrefix(t.FQDN, t.Subdomain+".")
	p := nginx.AppParams{
		Domain:    domain,
		Subdomain: t.Subdomain,
		RelayPort: t.RelayPort,
		Public:    t.AccessMode == api.AccessPublic,
		Owner:     t.AgentLabel,
		TLS:       nginx.TLSFiles{Cert: cert.Cert, Key: cert.Key},
	}
	switch {
	case t.Type == api.TypePanel:
		// Agent panels keep their own server: they need the client
		// certificate, which a shared block would ask every visitor of a
		// public app for (docs/architecture.md, "Apps under the wildcard certificate").
		vh, err = s.Render.AgentPanel(p)
	case cert.Wildcard:
		shared, vh, err = s.Render.WildcardApp(p)
	default:
		vh, err = s.Render.App(p)
	}
	// A disabled tunnel keeps its vhost file but stays out of sites-enabled.
	vh.Disabled = !t.IsEnabled()
	return shared, vh, err
}

func (v tunnelVhosts) RemoveTunnel(ctx context.Context, t api.Tunnel) error {
	return v.s.Nginx.RemoveVhost(ctx, tunnels.VhostName(t))
}

func (v tunnelVhosts) SetTunnelEnabled(ctx context.Context, t api.Tunnel, enabled bool) error {
	if enabled {
		return v.s.Nginx.EnableVhost(ctx, tunnels.VhostName(t))
	}
	return v.s.Nginx.DisableVhost(ctx, tunnels.VhostName(t))
}

// siteVhosts writes site vhosts with nginx's safe procedure.
type siteVhosts struct{ s *Services }

func (v siteVhosts) WriteSite(ctx context.Context, site api.Site, cert acme.Files) error {
	vh, err := v.s.siteVhost(site, cert)
	if err != nil {
		return err
	}
	return v.s.Nginx.Apply(ctx, vh)
}

func (s *Services) siteVhost(site api.Site, cert acme.Files) (nginx.Vhost, error) {
	return s.Render.Site(nginx.SiteParams{
		ID: site.ID, FQDN: site.FQDN, SPA: site.SPAMode, Protected: site.AutheliaProtected,
		TLS: nginx.TLSFiles{Cert: cert.Cert, Key: cert.Key},
	})
}

// RewriteVhosts renders the vhost of every stored tunnel and every live
// site, and provisioning's panel.<d>, auth.<d> and tunnel.<d> once
// onboarding has completed, from the state files and the certificates on
// disk, and applies them as one nginx change. The panel runs it when it starts, so a relay
// upgraded to new templates (apps under the wildcard certificate moving
// into the shared server, docs/architecture.md "Scale") or restored from a
// backup serves what its state says without waiting for each tunnel to
// change. Files that are already right are left alone: a start with
// nothing to do does not reload nginx. A tunnel or site whose certificate
// is missing or about to expire keeps the files it has (renewal or its
// next change writes them) and is logged. If nginx rejects the result,
// every file is restored and the error says why.
func (s *Services) RewriteVhosts(ctx context.Context) error {
	ts, err := s.Tunnels.All()
	if err != nil {
		return fmt.Errorf("read the tunnels: %w", err)
	}
	ss, err := s.Sites.All()
	if err != nil {
		return fmt.Errorf("read the sites: %w", err)
	}
	var skipped []string
	var vhosts []nginx.Vhost
	var shared nginx.Vhost
	for _, t := range ts {
		cert, ok := s.Certs.Existing(t.FQDN)
		if !ok {
			skipped = append(skipped, t.FQDN)
			continue
		}
		sh, vh, err := s.tunnelVhost(t, cert)
		if err != nil {
			return fmt.Errorf("render the vhost of %s: %w", t.FQDN, err)
		}
		if sh.Name != "" {
			shared = sh
		}
		vhosts = append(vhosts, vh)
	}
	for _, site := range ss {
		if !site.CertIssued {
			continue // no vhost until its DNS is verified
		}
		cert, ok := s.Certs.Existing(site.FQDN)
		if !ok {
			skipped = append(skipped, site.FQDN)
			continue
		}
		vh, err := s.siteVhost(site, cert)
		if err != nil {
			return fmt.Errorf("render the vhost of %s: %w", site.FQDN, err)
		}
		vhosts = append(vhosts, vh)
	}
	if shared.Name != "" {
		vhosts = append([]nginx.Vhost{shared}, vhosts...)
	}
	dv, missing, err := s.Provisioner.DomainVhosts()
	if err != nil {
		return fmt.Errorf("render the panel, auth and tunnel vhosts: %w", err)
	}
	vhosts = append(vhosts, dv...)
	skipped = append(skipped, missing...)
	for i := range vhosts {
		vhosts[i].IfChanged = true
	}
	if len(skipped) > 0 {
		s.Log.Warn("vhosts kept as they are: no usable certificate on disk (renewal or the next change writes them)", "hosts", skipped)
	}
	if err := s.Nginx.Apply(ctx, vhosts...); err != nil {
		return fmt.Errorf("rewrite %d vhosts: %w", len(vhosts), err)
	}
	return nil
}

func (v siteVhosts) RemoveSite(ctx context.Context, site api.Site) error {
	return v.s.Nginx.RemoveVhost(ctx, nginx.SiteVhostName(site.ID))
}

// accessRules writes the auth server's access rules (docs/architecture.md, "Auth server files"): one
// rule per restricted tunnel and per protected site with allowed users
// (those users and group admins), and every host the tunnels and live
// sites serve as a post-login redirect target (docs/security.md), read by
// portlama-auth without a restart. Each service hands over its whole list
// on every change; the other list is the one that service handed over
// last (its stored state the first time), so neither overwrites the
// other's rules.
type accessRules struct {
	s *Services

	mu      sync.Mutex
	tunnels []api.Tunnel // nil until the tunnels first sync
	sites   []api.Site   // nil until the sites first sync
}

func (a *accessRules) SyncTunnels(ctx context.Context, ts []api.Tunnel) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	ss := a.sites
	if ss == nil {
		var err error
		if ss, err = a.s.Sites.All(); err != nil {
			return err
		}
	}
	err := a.publish(ctx, ts, ss)
	if _, rest := manage.Warning(err); rest == nil {
		a.tunnels, a.sites = slices.Clone(nonNilSlice(ts)), ss
	}
	return err
}

// SyncSites writes the rules with the sites given; an unconfirmed reload
// is returned (it wraps manage.ErrNotConfirmed) for the API's warning.
func (a *accessRules) SyncSites(ctx context.Context, ss []api.Site) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	ts := a.tunnels
	if ts == nil {
		var err error
		if ts, err = a.s.Tunnels.All(); err != nil {
			return err
		}
	}
	err := a.publish(ctx, ts, ss)
	if _, rest := manage.Warning(err); rest == nil {
		a.tunnels, a.sites = ts, slices.Clone(nonNilSlice(ss))
	}
	return err
}

// publish writes the rules and has the auth server apply them: in force
// before the API answers when it runs (it also reads the file at start and
// every 30 s). An error is a *manage.NotConfirmedError (saved, not
// confirmed), a *manage.RejectedError (refused: the previous rules are
// restored and stay in force) or the write's.
func (a *accessRules) publish(ctx context.Context, ts []api.Tunnel, ss []api.Site) error {
	return a.s.AuthState.Apply(ctx, func() error { return a.write(ts, ss) })
}

func nonNilSlice[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// write saves the rules of ts and ss.
func (a *accessRules) write(ts []api.Tunnel, ss []api.Site) error {
	rules := auth.AccessRules{Rules: []auth.AccessRule{}, Hosts: []string{}}
	for _, t := range ts {
		rules.Hosts = append(rules.Hosts, t.FQDN)
	}
	for _, t := range ts {
		if t.Type != api.TypeApp || t.AccessMode != api.AccessRestricted {
			continue
		}
		r := auth.AccessRule{Host: t.FQDN, Users: []string{}, Groups: []string{}}
		if t.AllowedUsers != nil {
			r.Users = *t.AllowedUsers
		}
		if t.AllowedGroups != nil {
			r.Groups = *t.AllowedGroups
		}
		rules.Rules = append(rules.Rules, r)
	}
	for _, site := range ss {
		if !site.CertIssued {
			continue // not served yet
		}
		rules.Hosts = append(rules.Hosts, site.FQDN)
		if site.AutheliaProtected && len(site.AllowedUsers) > 0 {
			rules.Rules = append(rules.Rules, auth.AccessRule{Host: site.FQDN, Users: site.AllowedUsers, Groups: []string{auth.AdminsGroup}})
		}
	}
	return auth.WriteAccessRules(a.s.Config.Layout.AuthDir(), rules)
}

// AdminReset is what ResetAdmin did.
type AdminReset struct {
	Password  string // the new P12's password
	IP        string
	PanelURL  string // https://<ip>:9292
	ReloadErr error  // nginx could not be tested or reloaded
}

// ResetAdmin is `portlama reset-admin` (docs/api.md, "Certificates, agents, enrollment"): the admin
// rotation without the API, then panel 2FA off with its session secret
// cleared, and the panel's IP vhost enabled again.
func (s *Services) ResetAdmin(ctx context.Context) (AdminReset, error) {
	rot, err := s.PKI.RotateAdmin(ctx, pki.LabelAdminReset)
	if err != nil {
		return AdminReset{}, err
	}
	c, err := s.Panel.Update(func(c *config.PanelConfig) error {
		c.Panel2FA.Enabled, c.Panel2FA.Secret, c.Panel2FA.SetupComplete = false, nil, false
		c.SessionSecret = nil
		return nil
	})
	if err != nil {
		return AdminReset{}, fmt.Errorf("turn panel 2FA off: %w", err)
	}
	res := AdminReset{Password: rot.Password, IP: c.IP, ReloadErr: rot.ReloadErr,
		PanelURL: s.Config.Addrs.PanelIPURL(c.IP)}
	if err := s.IPVhost.Enable(ctx); err != nil {
		res.ReloadErr = errors.Join(res.ReloadErr, err)
	}
	return res, nil
}
