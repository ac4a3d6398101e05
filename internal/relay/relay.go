// Package relay assembles the panel's services from a relay configuration:
// the PKI, the agents registry, tunnel definitions, nginx and the
// certificate store. `portlama panel`, the demo and the end-to-end tests
// build the panel through Open and NewPanel, so there is one place where the
// parts are connected.
package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/portlama/portlama/internal/acme"
	"github.com/portlama/portlama/internal/agents"
	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/auth"
	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/hostnames"
	"github.com/portlama/portlama/internal/nginx"
	"github.com/portlama/portlama/internal/onboarding"
	"github.com/portlama/portlama/internal/panel"
	"github.com/portlama/portlama/internal/pki"
	"github.com/portlama/portlama/internal/sites"
	"github.com/portlama/portlama/internal/tunnel"
	"github.com/portlama/portlama/internal/tunnels"
)

// Services are the relay's connected parts.
type Services struct {
	Config  config.Relay
	Log     *slog.Logger
	Panel   *config.PanelStore
	PKI     *pki.PKI
	Agents  *agents.Manager
	Tunnels *tunnels.Service
	Sites   *sites.Service
	ACL     *tunnel.ACL
	// TunnelManage reaches the tunnel server's management socket.
	TunnelManage *tunnel.ManageClient
	Nginx        *nginx.Manager
	Render       *nginx.Renderer
	Certs        *acme.Store

	rules *accessRules
}

// Open connects the services of the relay described by cfg. ctl drives
// nginx: nil means the system's nginx service; the demo passes its own
// instance.
func Open(cfg config.Relay, ctl nginx.Controller, log *slog.Logger) (*Services, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if ctl == nil {
		ctl = nginx.System{}
	}
	s := &Services{Config: cfg, Log: log, Panel: config.NewPanelStore(cfg.Layout.PanelConfig())}
	s.Nginx = nginx.NewManager(cfg.Layout, ctl, log)
	r, err := nginx.NewRenderer(cfg.Layout, cfg.Addrs)
	if err != nil {
		return nil, err
	}
	s.Render = r
	p, err := pki.Open(pki.Config{Dir: cfg.Layout.PKIDir(), Logger: log, Reloader: nginxReloader{s.Nginx}})
	if err != nil {
		return nil, err
	}
	s.PKI = p
	tcfg := tunnel.DirConfig(cfg.Layout.TunnelDir())
	s.ACL = tunnel.NewACL(tcfg.ACLFile)
	s.TunnelManage = tunnel.NewManageClient(tcfg.ManageSocket, tcfg.ACLFile)
	s.Certs = &acme.Store{Dir: cfg.Layout.CertsDir, Domain: s.domain}
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
	})
	s.Sites = sites.New(sites.Config{
		File:     cfg.Layout.SitesFile(),
		WWWDir:   cfg.Layout.WWWDir,
		Settings: s.siteSettings,
		Vhosts:   siteVhosts{s},
		Certs:    s.Certs,
		Rules:    s.rules,
		Resolver: s.resolver(),
		Names:    names,
		Log:      log,
	})
	am, err := agents.New(agents.Config{PKI: p, Tunnels: credentials{s}, Logger: log})
	if err != nil {
		return nil, err
	}
	s.Agents = am
	return s, nil
}

func (s *Services) domain() string {
	c, err := s.Panel.Load()
	if err != nil {
		return ""
	}
	return c.DomainOrEmpty()
}

func (s *Services) tunnelSettings() (tunnels.Settings, error) {
	c, err := s.Panel.Load()
	if err != nil {
		return tunnels.Settings{}, err
	}
	return tunnels.Settings{
		Domain:       c.DomainOrEmpty(),
		Email:        c.EmailOrEmpty(),
		RelayPortMin: c.RelayPortRange.Min,
		RelayPortMax: c.RelayPortRange.Max,
	}, nil
}

func (s *Services) siteSettings() (sites.Settings, error) {
	c, err := s.Panel.Load()
	if err != nil {
		return sites.Settings{}, err
	}
	return sites.Settings{Domain: c.DomainOrEmpty(), Email: c.EmailOrEmpty(), IP: c.IP, MaxSiteSize: c.MaxSiteSize}, nil
}

// resolver answers the DNS checks (onboarding, sites): the configured DNS
// server, else the system's resolver.
func (s *Services) resolver() onboarding.Resolver {
	if s.Config.DNSServer != "" {
		return onboarding.DNSServerResolver{Server: s.Config.DNSServer}
	}
	return onboarding.SystemResolver{}
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

// agentPorts updates the relay ports an agent may bind. A revoked agent
// has no credentials and nothing to update: its tunnels stay in
// tunnels.json and get their ports back when the label enrolls again.
type agentPorts struct{ s *Services }

func (a agentPorts) SetPorts(ctx context.Context, label string, ports []int) error {
	err := a.s.ACL.SetPorts(ctx, label, ports)
	if errors.Is(err, tunnel.ErrUnknownAgent) {
		return nil
	}
	if err != nil {
		return err
	}
	a.s.notifyTunnel(ctx)
	return nil
}

// notifyTunnel asks the tunnel server to apply acl.json now. A failure is
// only logged: the change is saved and the server's periodic check applies
// it. (Reporting it in the API answer is the panel's decision.)
func (s *Services) notifyTunnel(ctx context.Context) {
	if err := s.TunnelManage.Notify(ctx); err != nil {
		s.Log.Warn("tunnel server did not confirm the access change", "err", err)
	}
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

// credentials gives an agent its tunnel credentials and, when the label
// already owns tunnels (it was revoked and enrolled again), its ports back.
type credentials struct{ s *Services }

func (c credentials) AddAgent(ctx context.Context, label string) error {
	if err := c.s.ACL.AddAgent(ctx, label); err != nil {
		return err
	}
	if err := c.s.Tunnels.SyncACL(ctx, label); err != nil {
		return err
	}
	c.s.notifyTunnel(ctx)
	return nil
}

func (c credentials) RemoveAgent(ctx context.Context, label string) error {
	if err := c.s.ACL.RemoveAgent(ctx, label); err != nil {
		return err
	}
	c.s.notifyTunnel(ctx)
	return nil
}

// tunnelVhosts writes tunnel vhosts with nginx's safe procedure.
type tunnelVhosts struct{ s *Services }

func (v tunnelVhosts) WriteTunnel(ctx context.Context, t api.Tunnel, cert acme.Files) error {
	domain := strings.TrimPrefix(t.FQDN, t.Subdomain+".")
	p := nginx.AppParams{
		Domain:    domain,
		Subdomain: t.Subdomain,
		RelayPort: t.RelayPort,
		Public:    t.AccessMode == api.AccessPublic,
		Owner:     t.AgentLabel,
		TLS:       nginx.TLSFiles{Cert: cert.Cert, Key: cert.Key},
	}
	var vh nginx.Vhost
	var err error
	if t.Type == api.TypePanel {
		vh, err = v.s.Render.AgentPanel(p)
	} else {
		vh, err = v.s.Render.App(p)
	}
	if err != nil {
		return err
	}
	// A disabled tunnel keeps its vhost file but stays out of sites-enabled.
	vh.Disabled = !t.IsEnabled()
	return v.s.Nginx.Apply(ctx, vh)
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

// NewPanel builds the panel's HTTP API on the services.
func NewPanel(s *Services, version string, log *slog.Logger) (*panel.Server, error) {
	secret, err := panel.ReadProxySecret(s.Config.Layout.ProxySecretFile())
	if err != nil {
		return nil, err
	}
	return panel.New(panel.Config{
		Layout:      s.Config.Layout,
		Addrs:       s.Config.Addrs,
		ProxySecret: secret,
		Version:     version,
		Logger:      log,
		Revocations: s.PKI,
		Agents:      panel.RegistryDirectory{Manager: s.Agents},
		Resolver:    s.resolver(),
		PanelStore:  s.Panel,
		Relay: panel.RelayDeps{
			Tunnels:     s.Tunnels,
			Sites:       s.Sites,
			Agents:      s.Agents,
			PKI:         s.PKI,
			Certs:       s.Certs,
			Credential:  s.ACL.Credential,
			Fingerprint: s.Fingerprint,
			ServerURL:   s.TunnelServerURL,
		},
		Auth: panel.AuthDeps{IPVhost: ipVhost{s.Nginx}},
	})
}

// ipVhost turns the panel's IP vhost off while panel 2FA is on.
type ipVhost struct{ m *nginx.Manager }

func (v ipVhost) Enable(ctx context.Context) error  { return v.m.EnableVhost(ctx, nginx.VhostPanelIP) }
func (v ipVhost) Disable(ctx context.Context) error { return v.m.DisableVhost(ctx, nginx.VhostPanelIP) }

// siteVhosts writes site vhosts with nginx's safe procedure.
type siteVhosts struct{ s *Services }

func (v siteVhosts) WriteSite(ctx context.Context, site api.Site, cert acme.Files) error {
	vh, err := v.s.Render.Site(nginx.SiteParams{
		ID: site.ID, FQDN: site.FQDN, SPA: site.SPAMode, Protected: site.AutheliaProtected,
		TLS: nginx.TLSFiles{Cert: cert.Cert, Key: cert.Key},
	})
	if err != nil {
		return err
	}
	return v.s.Nginx.Apply(ctx, vh)
}

func (v siteVhosts) RemoveSite(ctx context.Context, site api.Site) error {
	return v.s.Nginx.RemoveVhost(ctx, nginx.SiteVhostName(site.ID))
}

// accessRules writes the auth server's access rules (contract §17.9): one
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
	if err := a.write(ts, ss); err != nil {
		return err
	}
	a.tunnels, a.sites = slices.Clone(nonNilSlice(ts)), ss
	// (Reporting an unconfirmed change to the caller is issue 7's wiring.)
	if err := a.reload(ctx); err != nil {
		a.s.Log.Warn("access rules saved but not confirmed by the auth server", "err", err)
	}
	return nil
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
	if err := a.write(ts, ss); err != nil {
		return err
	}
	a.tunnels, a.sites = ts, slices.Clone(nonNilSlice(ss))
	return a.reload(ctx)
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

// reload has the auth server apply the saved rules: in force before the API
// answers when it runs (ManageClient.Reload returns once it serves them);
// it also reads the file at start and every 30 s. An error wraps
// manage.ErrNotConfirmed (saved, not confirmed) or is a
// *manage.RejectedError (refused: the previous rules stay in force).
func (a *accessRules) reload(ctx context.Context) error {
	return auth.NewManageClient(auth.ManageSocketPath(a.s.Config.Layout.AuthDir())).Reload(ctx)
}
