// Package sites manages the relay's static sites (sites.json): their
// definitions, files and side effects. A site is an api.Site: sites.json
// stores exactly what the API returns.
//
// It is the logic behind the panel's /api/sites routes (docs/api.md, "Static sites"), with
// the shape of package tunnels: every change runs its side effects in a
// fixed order (certificate, vhost, root, access rules, state) and undoes
// the earlier steps when a later one fails; the service's lock is never
// held while a certificate is obtained or DNS is asked. Site names and
// host names share one name space with tunnels (package hostnames).
// Refusals are errkind errors whose message is the contract's.
//
// Files live below <www>/<id>. Every file operation goes through an
// os.Root of the site's directory, so no path, ".." or symbolic link can
// reach outside it; uploads are streamed part by part into a temporary
// file that is renamed into place, so a file is either its old or its new
// content and an upload never sits in memory.
package sites

import (
	"context"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/portlama/portlama/internal/acme"
	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/errkind"
	"github.com/portlama/portlama/internal/hostnames"
	"github.com/portlama/portlama/internal/manage"
	"github.com/portlama/portlama/internal/store"
	"github.com/portlama/portlama/internal/validate"
)

// Caller is who asks: an admin, or an agent limited to the sites named in
// its allowedSites (capabilities are the route guard's).
type Caller struct {
	Admin        bool
	Label        string
	AllowedSites []string
}

func (c Caller) mayUse(s api.Site) bool { return c.Admin || slices.Contains(c.AllowedSites, s.Name) }

// Vhosts writes and removes a site's nginx vhost (portlama-site-<id>)
// with nginx's safe write / test / reload / rollback procedure.
type Vhosts interface {
	WriteSite(ctx context.Context, s api.Site, cert acme.Files) error
	RemoveSite(ctx context.Context, s api.Site) error
}

// Certificates finds (or obtains) the TLS certificate for a host
// (docs/operations.md, "Certificates") and deletes individual ones; *acme.Store is one.
type Certificates interface {
	ForHost(ctx context.Context, fqdn string) (acme.Files, error)
	// Existing returns the certificate ForHost would use without
	// obtaining one.
	Existing(fqdn string) (acme.Files, bool)
	// DeleteIndividual removes the host's own certificate; wildcard
	// certificates are never deleted.
	DeleteIndividual(ctx context.Context, fqdn string) error
}

// AccessRules receives every site whenever the sites' access rules or
// hosts change. An error wrapping manage.ErrNotConfirmed means the rules
// are saved but the auth server did not confirm they are in force; the
// change stands and the API answers with a warning.
type AccessRules interface {
	SyncSites(ctx context.Context, sites []api.Site) error
}

// Resolver looks up A records (onboarding.Resolver).
type Resolver interface {
	LookupA(ctx context.Context, name string) ([]string, error)
}

// Settings are the relay values sites depend on.
type Settings struct {
	Domain      string // base domain; empty before onboarding
	Email       string
	IP          string // the relay's public IPv4 address
	MaxSiteSize int64  // bytes; above it uploads answer with a warning
}

// Config configures a Service.
type Config struct {
	File     string // sites.json
	WWWDir   string // site roots live at <WWWDir>/<id>
	Settings func() (Settings, error)
	Vhosts   Vhosts
	Certs    Certificates
	Rules    AccessRules // nil: no auth server configured
	Resolver Resolver
	// Names is the relay's name space shared with tunnels; nil gives the
	// sites a name space of their own.
	Names *hostnames.Registry
	Now   func() time.Time
	Log   *slog.Logger
}

// Service manages sites.json, the site roots and their side effects.
type Service struct {
	cfg Config
	doc *store.Doc[[]api.Site]

	mu        sync.Mutex
	verifying map[string]bool // ids with a verify-dns in progress
}

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Names == nil {
		cfg.Names = hostnames.New()
	}
	s := &Service{cfg: cfg, doc: store.NewDoc[[]api.Site](cfg.File, 0o600), verifying: map[string]bool{}}
	cfg.Names.AddSource(s.hostNames)
	return s
}

// hostNames lists the stored sites' names for the shared name space.
func (s *Service) hostNames() ([]hostnames.Name, error) {
	all, err := s.doc.Load()
	if err != nil {
		return nil, err
	}
	set, err := s.cfg.Settings()
	if err != nil {
		return nil, err
	}
	out := make([]hostnames.Name, 0, len(all))
	for _, site := range all {
		out = append(out, siteName(site.Name, site.FQDN, set.Domain))
	}
	return out, nil
}

func siteName(name, fqdn, domain string) hostnames.Name {
	return hostnames.Name{Kind: hostnames.Site, Label: hostnames.LabelUnder(fqdn, domain), FQDN: fqdn, SiteName: name}
}

// Messages of the site routes (docs/api.md, "Static sites").
const (
	MsgCustomCreated   = "Site created. Add an A record for your domain, then verify DNS."
	MsgNoChanges       = "No changes"
	MsgAlreadyVerified = "DNS already verified and certificate issued"
	MsgLive            = "DNS verified, certificate issued, and site is now live."
)

var (
	errNotFound     = errkind.New(errkind.NotFound, api.MsgSiteNotFound)
	errAccessDenied = errkind.New(errkind.Forbidden, api.MsgSiteAccessDenied)
)

func failed(msg, step string, err error) error {
	return errkind.Wrap(errkind.Failed, fmt.Errorf("%s: %w", step, err), "%s", msg)
}

// All returns every site in createdAt order.
func (s *Service) All() ([]api.Site, error) {
	all, err := s.doc.Load()
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(all, func(a, b api.Site) int { return strings.Compare(a.CreatedAt, b.CreatedAt) })
	return all, nil
}

// List returns the sites the caller may see, newest first: agents see the
// sites named in their allowedSites.
func (s *Service) List(c Caller) ([]api.Site, error) {
	all, err := s.All()
	if err != nil {
		return nil, err
	}
	out := []api.Site{}
	for i := len(all) - 1; i >= 0; i-- {
		if c.mayUse(all[i]) {
			out = append(out, all[i])
		}
	}
	return out, nil
}

// Get returns the site with id if the caller may use it: NotFound for an
// unknown id, Forbidden for a site outside the caller's allowedSites.
func (s *Service) Get(c Caller, id string) (api.Site, error) {
	all, err := s.doc.Load()
	if err != nil {
		return api.Site{}, err
	}
	site, ok := find(all, id)
	if !ok {
		return api.Site{}, errNotFound
	}
	if !c.mayUse(site) {
		return api.Site{}, errAccessDenied
	}
	return site, nil
}

func find(all []api.Site, id string) (api.Site, bool) {
	id = strings.ToLower(id)
	for _, site := range all {
		if site.ID == id {
			return site, true
		}
	}
	return api.Site{}, false
}

func replace(all []api.Site, site api.Site) []api.Site {
	out := slices.Clone(all)
	for i := range out {
		if out[i].ID == site.ID {
			out[i] = site
		}
	}
	return out
}

func without(all []api.Site, id string) []api.Site {
	return slices.DeleteFunc(slices.Clone(all), func(x api.Site) bool { return x.ID == id })
}

// Result is a change's outcome: the site and what the API adds to its
// answer.
type Result struct {
	Site api.Site
	// Changed is false for a PATCH that changed nothing.
	Changed bool
	// Warning: saved, but the auth server did not confirm it is in force.
	Warning string
}

// underDomain reports whether fqdn is the base domain or below it, where
// the login session cookie (Domain=<d>) reaches.
func underDomain(fqdn, domain string) bool {
	return domain != "" && (fqdn == domain || strings.HasSuffix(fqdn, "."+domain))
}

func errLoginOutside(domain string) error {
	return errkind.New(errkind.Invalid, "Login protection is only available for sites under %s", domain)
}

// Create adds a site after the documented checks (docs/api.md, "Static sites"), in order. A managed
// site goes live at once: certificate, vhost, root with a generated
// index.html, access rules, state, each undone if a later step fails. A
// custom site gets its root and state; it goes live with VerifyDNS.
func (s *Service) Create(ctx context.Context, r api.CreateSiteRequest) (Result, error) {
	const failMsg = "Failed to create site"
	site, hold, err := s.reserve(ctx, r)
	if err != nil {
		return Result{}, err
	}
	defer hold.Release() // after the state is saved: the name is stored by then

	if site.Type == api.SiteCustom {
		s.mu.Lock()
		defer s.mu.Unlock()
		if err := s.makeRoot(site); err != nil {
			return Result{}, failed(failMsg, "root", err)
		}
		site.TotalSize = s.size(site)
		if _, err := s.doc.Update(func(all *[]api.Site) error { *all = append(*all, site); return nil }); err != nil {
			s.removeRoot(site)
			return Result{}, failed(failMsg, "state", err)
		}
		return Result{Site: site, Changed: true}, nil
	}

	cert, err := s.cfg.Certs.ForHost(ctx, site.FQDN)
	if err != nil {
		return Result{}, failed(failMsg, "certificate", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	res, err := s.commit(ctx, site, cert)
	if err != nil {
		s.dropCert(ctx, cert)
		return Result{}, err
	}
	return res, nil
}

// reserve runs the create checks and reserves the site's names; the DNS
// check runs after the reservation, without the service's lock.
func (s *Service) reserve(ctx context.Context, r api.CreateSiteRequest) (_ api.Site, _ *hostnames.Hold, err error) {
	const failMsg = "Failed to create site"
	set, err := s.cfg.Settings()
	if err != nil {
		return api.Site{}, nil, failed(failMsg, "state", err)
	}
	if set.Domain == "" || set.Email == "" {
		return api.Site{}, nil, errkind.New(errkind.Invalid, "Domain and email must be configured before creating sites")
	}
	if r.Type == api.SiteCustom && r.CustomDomain == "" {
		return api.Site{}, nil, errkind.New(errkind.Invalid, "Custom domain is required for custom type sites")
	}
	if r.Type == api.SiteManaged {
		// The name becomes a DNS label: the subdomain rule (at most 63
		// characters, no punycode) on top of the schema's.
		if err := validate.Subdomain(r.Name); err != nil {
			return api.Site{}, nil, errkind.Field("name", "a managed site's name is its subdomain: %v", err)
		}
	}
	id := uuid.NewString()
	site := api.Site{
		ID: id, Name: r.Name, Type: r.Type,
		SPAMode: r.SPAMode, AutheliaProtected: r.AutheliaProtected, AllowedUsers: []string{},
		RootPath:  filepath.Join(s.cfg.WWWDir, id),
		CreatedAt: api.FormatTime(s.cfg.Now()),
	}
	if r.Type == api.SiteManaged {
		site.FQDN = r.Name + "." + set.Domain
		site.DNSVerified, site.CertIssued = true, true
	} else {
		site.FQDN = r.CustomDomain
	}
	if validate.FQDN(site.FQDN) != nil {
		field := "name"
		if site.Type == api.SiteCustom {
			field = "customDomain"
		}
		return api.Site{}, nil, errkind.Field(field, "%s is not a valid host name", site.FQDN)
	}

	n := siteName(site.Name, site.FQDN, set.Domain)
	hold, err := s.cfg.Names.Reserve(n, func(held []hostnames.Name) error { return nameChecks(held, n, site, set.Domain) })
	if err != nil {
		if errkind.KindOf(err) == nil {
			err = failed(failMsg, "state", err)
		}
		return api.Site{}, nil, err
	}
	defer func() {
		if err != nil {
			hold.Release()
		}
	}()

	if site.AutheliaProtected && !underDomain(site.FQDN, set.Domain) {
		return api.Site{}, nil, errLoginOutside(set.Domain)
	}
	if site.Type == api.SiteManaged {
		if _, ok := s.cfg.Certs.Existing(site.FQDN); !ok {
			ips, err := s.cfg.Resolver.LookupA(ctx, site.FQDN)
			if err != nil {
				return api.Site{}, nil, failed(failMsg, "dns", err)
			}
			if !slices.Contains(ips, set.IP) {
				return api.Site{}, nil, errkind.New(errkind.Invalid, "DNS for '%s' does not resolve to %s", site.FQDN, set.IP)
			}
		}
	}
	return site, hold, nil
}

// nameChecks are the name checks of POST /api/sites in the contract's
// order, against every name held on the relay.
func nameChecks(held []hostnames.Name, n hostnames.Name, site api.Site, domain string) error {
	for _, h := range held {
		if h.Kind == hostnames.Site && h.SiteName == site.Name {
			return errkind.New(errkind.Invalid, "Site name '%s' is already in use", site.Name)
		}
	}
	if site.Type == api.SiteManaged {
		if validate.IsReservedSubdomain(site.Name) {
			return errkind.New(errkind.Invalid, "Name '%s' is reserved", site.Name)
		}
		if validate.HasAgentPanelPrefix(site.Name) {
			return errkind.New(errkind.Invalid, "Name prefix 'agent-' is reserved for agent panel tunnels")
		}
		if _, clash := hostnames.Clashes(held, hostnames.Name{Label: site.Name}, hostnames.Tunnel); clash {
			return errkind.New(errkind.Invalid, "Name '%s' is already in use by a tunnel", site.Name)
		}
	} else if n.Label != "" && (validate.IsReservedSubdomain(n.Label) || validate.HasAgentPanelPrefix(n.Label)) {
		// A custom domain one label below <d> would take a name tunnels and
		// the relay's own vhosts (panel, auth, tunnel) keep.
		return errkind.New(errkind.Invalid, "Domain '%s' is reserved", site.FQDN)
	}
	if _, clash := hostnames.Clashes(held, hostnames.Name{Label: n.Label, FQDN: n.FQDN}, hostnames.Site); clash {
		return errkind.New(errkind.Invalid, "Domain '%s' is already in use by another site", site.FQDN)
	}
	if _, clash := hostnames.Clashes(held, hostnames.Name{Label: n.Label, FQDN: n.FQDN}, hostnames.Tunnel); clash {
		return errkind.New(errkind.Invalid, "Domain '%s' is already in use by a tunnel", site.FQDN)
	}
	return nil
}

// commit applies a managed site's side effects after its certificate
// (s.mu held): vhost, root, access rules, state; a failure undoes the
// earlier steps.
func (s *Service) commit(ctx context.Context, site api.Site, cert acme.Files) (Result, error) {
	fail := func(step string, err error) (Result, error) {
		return Result{}, failed("Failed to create site", step, err)
	}
	bg := context.WithoutCancel(ctx)
	all, err := s.All()
	if err != nil {
		return fail("state", err)
	}
	if err := s.cfg.Vhosts.WriteSite(ctx, site, cert); err != nil {
		return fail("nginx", err)
	}
	if err := s.makeRoot(site); err != nil {
		s.cfg.Vhosts.RemoveSite(bg, site)
		return fail("root", err)
	}
	site.TotalSize = s.size(site)
	next := append(slices.Clone(all), site)
	warning, err := s.syncRules(ctx, next)
	if err != nil {
		s.removeRoot(site)
		s.cfg.Vhosts.RemoveSite(bg, site)
		return fail("access rules", err)
	}
	if _, err := s.doc.Update(func(all *[]api.Site) error { *all = append(*all, site); return nil }); err != nil {
		s.syncRules(bg, all)
		s.removeRoot(site)
		s.cfg.Vhosts.RemoveSite(bg, site)
		return fail("state", err)
	}
	return Result{Site: site, Changed: true, Warning: warning}, nil
}

// syncRules hands every site to the access rules. A change the auth server
// has not confirmed is no failure: it comes back as the warning.
func (s *Service) syncRules(ctx context.Context, all []api.Site) (warning string, err error) {
	if s.cfg.Rules == nil {
		return "", nil
	}
	err = s.cfg.Rules.SyncSites(ctx, all)
	if errors.Is(err, manage.ErrNotConfirmed) {
		s.cfg.Log.Warn("site access rules saved but not confirmed by the auth server", "err", err)
		return RulesNotConfirmed, nil
	}
	return "", err
}

// RulesNotConfirmed is the warning of a change whose access rules the auth
// server has not confirmed.
const RulesNotConfirmed = "Saved, but the auth server has not confirmed the new access rules. It applies them within 30 seconds; check that portlama-auth is running."

// dropCert deletes an individual certificate obtained for a site that did
// not come to be; shared wildcard certificates stay.
func (s *Service) dropCert(ctx context.Context, c acme.Files) {
	if !c.Wildcard && c.Name != "" {
		s.cfg.Certs.DeleteIndividual(context.WithoutCancel(ctx), c.Name)
	}
}

// indexPage is the generated index.html of a new site.
func indexPage(name string) []byte {
	n := html.EscapeString(name)
	return []byte(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>` + n + `</title>
</head>
<body>
<h1>` + n + `</h1>
<p>This site is served by Portlama. Upload your files to replace this page.</p>
</body>
</html>
`)
}

// makeRoot creates the site's directory (0755) with the generated
// index.html (0644), readable by nginx.
func (s *Service) makeRoot(site api.Site) error {
	if err := os.MkdirAll(s.cfg.WWWDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", s.cfg.WWWDir, err)
	}
	if err := os.Mkdir(site.RootPath, 0o755); err != nil {
		return fmt.Errorf("create site root: %w", err)
	}
	if err := os.Chmod(site.RootPath, 0o755); err != nil {
		os.RemoveAll(site.RootPath)
		return fmt.Errorf("create site root: %w", err)
	}
	if err := store.WriteFileAtomic(filepath.Join(site.RootPath, "index.html"), indexPage(site.Name), 0o644); err != nil {
		os.RemoveAll(site.RootPath)
		return fmt.Errorf("write index.html: %w", err)
	}
	return nil
}

func (s *Service) removeRoot(site api.Site) error {
	if site.RootPath != filepath.Join(s.cfg.WWWDir, site.ID) || validate.UUID(site.ID) != nil {
		return fmt.Errorf("refusing to remove %q: not a site root", site.RootPath)
	}
	return os.RemoveAll(site.RootPath)
}

// Update applies a PATCH (docs/api.md, "Static sites"): only what changed is touched. The
// access rules are written before the vhost (so protection is never wider
// than before or after the change), then the vhost of a live site, then
// the state; a failure undoes the earlier steps and changes nothing.
func (s *Service) Update(ctx context.Context, id string, p api.UpdateSiteRequest) (Result, error) {
	const failMsg = "Failed to update site configuration"
	fail := func(step string, err error) (Result, error) { return Result{}, failed(failMsg, step, err) }

	// The certificate of a live site, looked up before the lock (it may
	// have to be renewed); the site is read again under the lock.
	var cert acme.Files
	var certErr error
	if p.SPAMode != nil || p.AutheliaProtected != nil {
		all, err := s.doc.Load()
		if err != nil {
			return fail("state", err)
		}
		old, ok := find(all, id)
		if ok && old.CertIssued && (p.SPAMode != nil && *p.SPAMode != old.SPAMode ||
			p.AutheliaProtected != nil && *p.AutheliaProtected != old.AutheliaProtected) {
			cert, certErr = s.cfg.Certs.ForHost(ctx, old.FQDN)
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	set, err := s.cfg.Settings()
	if err != nil {
		return fail("state", err)
	}
	all, err := s.All()
	if err != nil {
		return fail("state", err)
	}
	old, ok := find(all, id)
	if !ok {
		return Result{}, errNotFound
	}
	site := old
	if p.SPAMode != nil {
		site.SPAMode = *p.SPAMode
	}
	if p.AutheliaProtected != nil {
		site.AutheliaProtected = *p.AutheliaProtected
	}
	if p.AllowedUsers != nil {
		site.AllowedUsers = slices.Clone(*p.AllowedUsers)
		if site.AllowedUsers == nil {
			site.AllowedUsers = []string{}
		}
	}
	if site.AutheliaProtected && !old.AutheliaProtected && !underDomain(site.FQDN, set.Domain) {
		return Result{}, errLoginOutside(set.Domain)
	}
	vhostChanged := site.CertIssued && (site.SPAMode != old.SPAMode || site.AutheliaProtected != old.AutheliaProtected)
	rulesChanged := site.AutheliaProtected != old.AutheliaProtected || !slices.Equal(site.AllowedUsers, old.AllowedUsers)
	if !rulesChanged && site.SPAMode == old.SPAMode {
		return Result{Site: old}, nil
	}

	bg := context.WithoutCancel(ctx)
	next := replace(all, site)
	var warning string
	if rulesChanged {
		if warning, err = s.syncRules(ctx, next); err != nil {
			return fail("access rules", err)
		}
	}
	undoRules := func() {
		if rulesChanged {
			s.syncRules(bg, all)
		}
	}
	if vhostChanged {
		if certErr == nil && cert.Name == "" {
			cert, certErr = s.cfg.Certs.ForHost(ctx, site.FQDN) // went live meanwhile
		}
		if certErr != nil {
			undoRules()
			return fail("certificate", certErr)
		}
		if err := s.cfg.Vhosts.WriteSite(ctx, site, cert); err != nil {
			undoRules()
			return fail("nginx", err)
		}
	}
	if _, err := s.doc.Update(func(all *[]api.Site) error { *all = replace(*all, site); return nil }); err != nil {
		if vhostChanged {
			s.cfg.Vhosts.WriteSite(bg, old, cert)
		}
		undoRules()
		return fail("state", err)
	}
	return Result{Site: site, Changed: true, Warning: warning}, nil
}

// Delete removes a site (docs/api.md, "Static sites"): its vhost (when live), its access
// rule and host, the state entry, the root and its individual
// certificate. The root is removed after the state, so a failure never
// leaves a listed site without its files; a root or certificate that
// cannot be removed is logged.
func (s *Service) Delete(ctx context.Context, id string) (warning string, err error) {
	const failMsg = "Failed to delete site"
	s.mu.Lock()
	defer s.mu.Unlock()
	all, err := s.All()
	if err != nil {
		return "", failed(failMsg, "state", err)
	}
	site, ok := find(all, id)
	if !ok {
		return "", errNotFound
	}
	if s.verifying[site.ID] {
		return "", errkind.New(errkind.Conflict, "DNS verification of this site is in progress; try again when it has finished")
	}
	bg := context.WithoutCancel(ctx)
	restoreVhost := func() {
		if site.CertIssued {
			if cert, err := s.cfg.Certs.ForHost(bg, site.FQDN); err == nil {
				s.cfg.Vhosts.WriteSite(bg, site, cert)
			}
		}
	}
	if site.CertIssued {
		if err := s.cfg.Vhosts.RemoveSite(ctx, site); err != nil {
			return "", failed(failMsg, "nginx", err)
		}
	}
	next := without(all, site.ID)
	if warning, err = s.syncRules(ctx, next); err != nil {
		restoreVhost()
		return "", failed(failMsg, "access rules", err)
	}
	if _, err := s.doc.Update(func(all *[]api.Site) error { *all = without(*all, site.ID); return nil }); err != nil {
		s.syncRules(bg, all)
		restoreVhost()
		return "", failed(failMsg, "state", err)
	}
	if err := s.removeRoot(site); err != nil {
		s.cfg.Log.Error("remove site root", "site", site.Name, "root", site.RootPath, "err", err)
	}
	if site.CertIssued {
		if err := s.cfg.Certs.DeleteIndividual(bg, site.FQDN); err != nil {
			s.cfg.Log.Warn("delete site certificate", "site", site.Name, "fqdn", site.FQDN, "err", err)
		}
	}
	return warning, nil
}

// VerifyDNS checks a custom site's A records and, when they point at the
// relay, obtains its certificate and writes its vhost (docs/api.md, "Static sites").
func (s *Service) VerifyDNS(ctx context.Context, id string) (api.SiteDNSCheck, error) {
	s.mu.Lock()
	all, err := s.All()
	if err != nil {
		s.mu.Unlock()
		return api.SiteDNSCheck{}, err
	}
	site, ok := find(all, id)
	switch {
	case !ok:
		s.mu.Unlock()
		return api.SiteDNSCheck{}, errNotFound
	case site.Type != api.SiteCustom:
		s.mu.Unlock()
		return api.SiteDNSCheck{}, errkind.New(errkind.Invalid, "DNS verification is only needed for custom domains")
	case site.DNSVerified && site.CertIssued:
		s.mu.Unlock()
		return api.SiteDNSCheck{OK: true, Message: MsgAlreadyVerified}, nil
	case s.verifying[site.ID]:
		s.mu.Unlock()
		return api.SiteDNSCheck{}, errkind.New(errkind.Conflict, "DNS verification of this site is already in progress")
	}
	s.verifying[site.ID] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.verifying, site.ID)
		s.mu.Unlock()
	}()

	set, err := s.cfg.Settings()
	if err != nil {
		return api.SiteDNSCheck{}, err
	}
	ips, err := s.cfg.Resolver.LookupA(ctx, site.FQDN)
	if err != nil {
		return api.SiteDNSCheck{}, errkind.Wrap(errkind.Failed, err, "Failed to verify DNS")
	}
	if !slices.Contains(ips, set.IP) {
		resolved := slices.Clone(ips)
		if resolved == nil {
			resolved = []string{}
		}
		return api.SiteDNSCheck{OK: false, FQDN: site.FQDN, ExpectedIP: set.IP, ResolvedIPs: &resolved,
			Message: dnsMessage(site.FQDN, set.IP, resolved)}, nil
	}
	if !site.DNSVerified {
		site.DNSVerified = true
		if _, err := s.doc.Update(func(all *[]api.Site) error { *all = replace(*all, site); return nil }); err != nil {
			return api.SiteDNSCheck{}, errkind.Wrap(errkind.Failed, err, "Failed to verify DNS")
		}
	}
	cert, err := s.cfg.Certs.ForHost(ctx, site.FQDN)
	if err != nil {
		return api.SiteDNSCheck{}, errkind.Wrap(errkind.Failed, err, "DNS verified but certificate issuance failed")
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	all, err = s.All()
	if err != nil {
		return api.SiteDNSCheck{}, errkind.Wrap(errkind.Failed, err, "Certificate issued but nginx configuration failed")
	}
	cur, ok := find(all, site.ID)
	if !ok {
		s.dropCert(ctx, cert)
		return api.SiteDNSCheck{}, errNotFound
	}
	cur.DNSVerified, cur.CertIssued = true, true
	bg := context.WithoutCancel(ctx)
	if err := s.cfg.Vhosts.WriteSite(ctx, cur, cert); err != nil {
		return api.SiteDNSCheck{}, errkind.Wrap(errkind.Failed, err, "Certificate issued but nginx configuration failed")
	}
	next := replace(all, cur)
	warning, err := s.syncRules(ctx, next)
	if err != nil {
		s.cfg.Vhosts.RemoveSite(bg, cur)
		return api.SiteDNSCheck{}, errkind.Wrap(errkind.Failed, fmt.Errorf("access rules: %w", err), "Certificate issued but nginx configuration failed")
	}
	if _, err := s.doc.Update(func(all *[]api.Site) error { *all = replace(*all, cur); return nil }); err != nil {
		s.syncRules(bg, all)
		s.cfg.Vhosts.RemoveSite(bg, cur)
		return api.SiteDNSCheck{}, errkind.Wrap(errkind.Failed, fmt.Errorf("state: %w", err), "Certificate issued but nginx configuration failed")
	}
	msg := MsgLive
	if warning != "" {
		msg += " " + warning
	}
	return api.SiteDNSCheck{OK: true, Message: msg}, nil
}

func dnsMessage(fqdn, ip string, resolved []string) string {
	now := "no A record"
	if len(resolved) > 0 {
		now = "A records " + strings.Join(resolved, ", ")
	}
	return fmt.Sprintf("%s has %s, not %s. Add an A record for %s pointing to %s, wait until it resolves, then verify DNS again.", fqdn, now, ip, fqdn, ip)
}
