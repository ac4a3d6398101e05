package nginx

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/validate"
)

// Vhost file names of the fixed vhosts (docs/architecture.md, "Vhost files").
const (
	VhostHTTP        = "portlama-http"
	VhostDefault     = "portlama-default"
	VhostPanelIP     = "portlama-panel-ip"
	VhostPanelDomain = "portlama-panel-domain"
	VhostAuth        = "portlama-auth"
	VhostTunnel      = "portlama-tunnel"
)

// AppVhostName is the vhost file name of an app tunnel: portlama-app-<sub>.
func AppVhostName(sub string) string { return "portlama-app-" + sub }

// AgentPanelVhostName is the vhost file name of an agent panel tunnel:
// portlama-agent-panel-<sub>.
func AgentPanelVhostName(sub string) string { return "portlama-agent-panel-" + sub }

// SiteVhostName is the vhost file name of a static site: portlama-site-<id>.
func SiteVhostName(id string) string { return "portlama-site-" + id }

// ConnPerAddr is how many requests in progress one client address may have
// on each public server (nginx limit_conn; more are answered 429). It bounds
// what one address can hold — upstream connections, buffers — while leaving
// room for a household or office behind one address (browsers open about
// six connections per host; WebSockets and event streams stay open).
const ConnPerAddr = 100

// PortalHeaderBuffers is large_client_header_buffers on auth.<d>: enough for
// every cookie a browser keeps for one site (about 180 of 4 KiB), so the
// portal always answers and can remove foreign cookies. Other servers
// accept 4 × 16k (conf.d).
const PortalHeaderBuffers = "2 1m"

// Renderer renders configuration for one relay layout and set of
// addresses. The zero value is not usable; build it with NewRenderer.
type Renderer struct {
	layout config.Layout
	env    env
	routes string // the directory nginx reads app routes from
}

// NewRenderer checks the layout paths and addresses that templates use and
// returns a Renderer for an nginx that reads sites-enabled itself (the
// demo's and the tests' instance); ForCheckedSites makes one for a relay.
func NewRenderer(l config.Layout, a config.Addrs) (*Renderer, error) {
	e, err := newEnv(l, a)
	if err != nil {
		return nil, fmt.Errorf("nginx renderer: %w", err)
	}
	routes, err := safePath("routes directory", RoutesDir(l.NginxSitesEnabled()))
	if err != nil {
		return nil, err
	}
	return &Renderer{layout: l, env: e, routes: routes}, nil
}

// ForCheckedSites returns a Renderer for a relay's nginx, which reads the
// lint gate's checked copies (CheckedSitesDir) instead of sites-enabled:
// the shared wildcard server includes the checked routes.
func (r *Renderer) ForCheckedSites() *Renderer {
	c := *r
	c.routes = RoutesDir(CheckedSitesDir(r.layout))
	return &c
}

// RoutesDir is the directory of app routes below a sites directory:
// <sites>/.routes. A dot directory, so the http context's "include
// <sites>/*" does not read it (glob's * skips dot names); only the shared
// wildcard server's host map includes it.
func RoutesDir(sites string) string { return filepath.Join(sites, routesName) }

// Layout returns the layout the Renderer was built for.
func (r *Renderer) Layout() config.Layout { return r.layout }

// File is one rendered shared file with its absolute path and mode.
type File struct {
	Path    string
	Mode    os.FileMode
	Content []byte
}

// SharedParams are the inputs of the installer's shared pieces.
type SharedParams struct {
	// ProxySecret is the 64-hex secret of docs/api.md, "Proof of origin".
	ProxySecret string
	// PanelIPTLS is the certificate of the :9292 vhost. Empty fields
	// default to <pki>/self-signed.pem and <pki>/self-signed-key.pem.
	PanelIPTLS TLSFiles
	// PanelIPDisabled keeps portlama-panel-ip out of sites-enabled (panel
	// 2FA is on).
	PanelIPDisabled bool
}

// Shared holds the installer's pieces: conf.d/portlama.conf, the five
// snippets and the cookie filter (portlama.js), the cert-help and
// cookie-help pages, and the http, default and panel-ip vhosts.
type Shared struct {
	Files  []File  // conf.d, snippets (the secret snippet 0600), portlama.js, pages
	Vhosts []Vhost // portlama-http, portlama-default, portlama-panel-ip
}

// Shared renders the installer's pieces.
func (r *Renderer) Shared(p SharedParams) (Shared, error) {
	if err := checkSecret(p.ProxySecret); err != nil {
		return Shared{}, err
	}
	tls := p.PanelIPTLS
	if tls.Cert == "" {
		tls.Cert = filepath.Join(r.layout.PKIDir(), "self-signed.pem")
	}
	if tls.Key == "" {
		tls.Key = filepath.Join(r.layout.PKIDir(), "self-signed-key.pem")
	}
	tls, err := checkTLS(tls)
	if err != nil {
		return Shared{}, err
	}
	var out Shared
	snip := r.layout.NginxSnippets()
	files := []struct {
		path string
		mode os.FileMode
		tmpl string
		data any
	}{
		{filepath.Join(r.layout.NginxConfD(), "portlama.conf"), 0o644, "confd", r.env},
		{filepath.Join(snip, "portlama-tls.conf"), 0o644, "snippet-tls", r.env},
		{filepath.Join(snip, "portlama-mtls.conf"), 0o644, "snippet-mtls", r.env},
		{filepath.Join(snip, "portlama-proxy-secret.conf"), 0o600, "snippet-secret", struct{ Secret string }{p.ProxySecret}},
		{filepath.Join(snip, "portlama-panel-proxy.conf"), 0o644, "snippet-panel-proxy", r.env},
		{filepath.Join(snip, "portlama-hsts.conf"), 0o644, "snippet-hsts", r.env},
	}
	for _, f := range files {
		b, err := render(f.tmpl, f.data)
		if err != nil {
			return Shared{}, err
		}
		out.Files = append(out.Files, File{Path: f.path, Mode: f.mode, Content: b})
	}
	out.Files = append(out.Files,
		File{Path: filepath.Join(snip, "portlama.js"), Mode: 0o644, Content: []byte(cookieFilterJS)},
		File{Path: r.CertHelpPath(), Mode: 0o644, Content: []byte(certHelpHTML)},
		File{Path: HelpPages(r.layout)[1], Mode: 0o644, Content: []byte(cookieHelpHTML)},
	)

	vhosts := []struct {
		name, tmpl string
		data       any
	}{
		{VhostHTTP, "vhost-http", r.env},
		{VhostDefault, "vhost-default", r.env},
		{VhostPanelIP, "vhost-panel-ip", vhostData{Env: r.env, TLS: tls}},
	}
	for _, v := range vhosts {
		b, err := render(v.tmpl, v.data)
		if err != nil {
			return Shared{}, err
		}
		out.Vhosts = append(out.Vhosts, Vhost{Name: v.name, FQDN: "*", Content: b, Disabled: v.name == VhostPanelIP && p.PanelIPDisabled})
	}
	return out, nil
}

// CertHelpPath is where the cert-help page lives: <www>/cert-help.html.
func (r *Renderer) CertHelpPath() string { return HelpPages(r.layout)[0] }

// HelpPages are the pages nginx itself serves from the web directory (the
// certificate help and the oversized-cookie page); the installer writes
// them as root and they stay root's.
func HelpPages(l config.Layout) []string {
	return []string{filepath.Join(l.WWWDir, "cert-help.html"), filepath.Join(l.WWWDir, "cookie-help.html")}
}

// vhostData is the data of every per-host template.
type vhostData struct {
	Env       env
	TLS       TLSFiles
	FQDN      string
	Upstream  string
	RelayPort int
	Owner     string // agent label of an agent panel
	Protected bool
	SPA       bool
	Root      string
	Site      *siteTable
	Wildcard  bool   // the shared wildcard server: X-Original-URL from $host
	Routes    string // the directory the shared server's host map includes
}

func (r *Renderer) domainVhost(name, tmplName, sub, domain string, tls TLSFiles) (Vhost, error) {
	if err := validate.FQDN(domain); err != nil {
		return Vhost{}, fmt.Errorf("render %s: base domain: %w", name, err)
	}
	fqdn := sub + "." + domain
	t, err := checkTLS(tls)
	if err != nil {
		return Vhost{}, fmt.Errorf("render %s: %w", name, err)
	}
	b, err := render(tmplName, vhostData{Env: r.env, TLS: t, FQDN: fqdn})
	if err != nil {
		return Vhost{}, err
	}
	return Vhost{Name: name, FQDN: fqdn, Content: b}, nil
}

// PanelDomain renders portlama-panel-domain for panel.<domain>.
func (r *Renderer) PanelDomain(domain string, tls TLSFiles) (Vhost, error) {
	return r.domainVhost(VhostPanelDomain, "vhost-panel-domain", "panel", domain, tls)
}

// Auth renders portlama-auth for auth.<domain>.
func (r *Renderer) Auth(domain string, tls TLSFiles) (Vhost, error) {
	return r.domainVhost(VhostAuth, "vhost-auth", "auth", domain, tls)
}

// Tunnel renders portlama-tunnel for tunnel.<domain>.
func (r *Renderer) Tunnel(domain string, tls TLSFiles) (Vhost, error) {
	return r.domainVhost(VhostTunnel, "vhost-tunnel", "tunnel", domain, tls)
}

// AppParams describe an app tunnel vhost <Subdomain>.<Domain>.
type AppParams struct {
	Domain    string // base domain <d>, lower-case
	Subdomain string
	RelayPort int // loopback port the tunnel server binds
	// Public turns forward authentication off (access mode "public"). The
	// zero value is protected (modes "authenticated" and "restricted").
	Public bool
	// Owner is the agent label that exposes an agent panel: only its
	// certificate and the admin's pass (required by AgentPanel, ignored by
	// App).
	Owner string
	TLS   TLSFiles
}

func (r *Renderer) tunnelVhost(kind, name, tmplName string, p AppParams, protected bool) (Vhost, error) {
	if err := validate.Subdomain(p.Subdomain); err != nil {
		return Vhost{}, fmt.Errorf("render %s vhost: %w", kind, err)
	}
	if err := validate.FQDN(p.Domain); err != nil {
		return Vhost{}, fmt.Errorf("render %s vhost: base domain: %w", kind, err)
	}
	if p.RelayPort < 1 || p.RelayPort > 65535 {
		return Vhost{}, fmt.Errorf("render %s vhost: relay port %d out of range", kind, p.RelayPort)
	}
	if err := ValidVhostName(name); err != nil {
		return Vhost{}, err
	}
	t, err := checkTLS(p.TLS)
	if err != nil {
		return Vhost{}, fmt.Errorf("render %s vhost: %w", kind, err)
	}
	fqdn := p.Subdomain + "." + p.Domain
	if err := validate.FQDN(fqdn); err != nil {
		return Vhost{}, fmt.Errorf("render %s vhost: %w", kind, err)
	}
	owner := ""
	if kind == "agentpanel" {
		// Written into a regular expression: the label rule admits only
		// [a-z0-9-].
		if err := validate.TunnelAgentLabel(p.Owner); err != nil {
			return Vhost{}, fmt.Errorf("render agent panel vhost: owner: %w", err)
		}
		owner = p.Owner
	}
	b, err := render(tmplName, vhostData{
		Env: r.env, TLS: t, FQDN: fqdn,
		Upstream:  upstreamName(kind, p.Subdomain),
		RelayPort: p.RelayPort,
		Protected: protected,
		Owner:     owner,
	})
	if err != nil {
		return Vhost{}, err
	}
	return Vhost{Name: name, FQDN: fqdn, Content: b}, nil
}

// AppsVhost is the shared wildcard server's vhost file name.
const AppsVhost = "portlama-apps"

// WildcardApp renders an app whose host the relay's wildcard certificate
// covers (p.TLS is that certificate): the shared server portlama-apps
// (written only when it changes) and the app's own portlama-app-<sub>,
// which holds just its upstream and carries its route. One server block
// and one TLS context serve every such app, so nginx's test, reload and
// memory no longer grow with a server block per tunnel
// (docs/architecture.md, "Scale").
func (r *Renderer) WildcardApp(p AppParams) (shared, app Vhost, err error) {
	app, err = r.tunnelVhost("app", AppVhostName(p.Subdomain), "vhost-app-upstream", p, !p.Public)
	if err != nil {
		return Vhost{}, Vhost{}, err
	}
	d := vhostData{Env: r.env, FQDN: app.FQDN, Upstream: upstreamName("app", p.Subdomain), Protected: !p.Public}
	if app.Route, err = render("app-route", d); err != nil {
		return Vhost{}, Vhost{}, err
	}
	t, err := checkTLS(p.TLS)
	if err != nil {
		return Vhost{}, Vhost{}, fmt.Errorf("render shared app vhost: %w", err)
	}
	b, err := render("vhost-apps", vhostData{Env: r.env, TLS: t, FQDN: p.Domain, Wildcard: true, Routes: r.routes})
	if err != nil {
		return Vhost{}, Vhost{}, err
	}
	return Vhost{Name: AppsVhost, FQDN: p.Domain, Content: b, IfChanged: true}, app, nil
}

// App renders portlama-app-<sub>: public, or protected by forward
// authentication (docs/architecture.md, "Forward authentication").
func (r *Renderer) App(p AppParams) (Vhost, error) {
	return r.tunnelVhost("app", AppVhostName(p.Subdomain), "vhost-app", p, !p.Public)
}

// AgentPanel renders portlama-agent-panel-<sub> (mTLS, docs/architecture.md, "mTLS vhosts"):
// only the admin's and p.Owner's certificates pass; p.Public is ignored.
func (r *Renderer) AgentPanel(p AppParams) (Vhost, error) {
	return r.tunnelVhost("agentpanel", AgentPanelVhostName(p.Subdomain), "vhost-agent-panel", p, false)
}

// SiteParams describe a static site vhost (docs/architecture.md, "Forward authentication").
type SiteParams struct {
	ID        string // site UUID; the root is <www>/<id>
	FQDN      string // the site's host name
	SPA       bool   // unknown paths without a file extension get /index.html
	Protected bool   // autheliaProtected: forward authentication
	TLS       TLSFiles
}

// Site renders portlama-site-<id>: the files below <www>/<id> with the
// types of the site file rules only, revalidated HTML and files, long-lived
// hashed assets, gzip, no directory listings, no dot files, and the
// security headers of docs/security.md ("Static sites").
func (r *Renderer) Site(p SiteParams) (Vhost, error) {
	if err := validate.UUID(p.ID); err != nil {
		return Vhost{}, fmt.Errorf("render site vhost: %w", err)
	}
	if p.ID != strings.ToLower(p.ID) {
		return Vhost{}, fmt.Errorf("render site vhost: id %q must be lower case", p.ID)
	}
	if err := validate.FQDN(p.FQDN); err != nil {
		return Vhost{}, fmt.Errorf("render site vhost: %w", err)
	}
	t, err := checkTLS(p.TLS)
	if err != nil {
		return Vhost{}, fmt.Errorf("render site vhost: %w", err)
	}
	root, err := safePath("site root", SiteRoot(r.layout, p.ID))
	if err != nil {
		return Vhost{}, err
	}
	name := SiteVhostName(p.ID)
	b, err := render("vhost-site", vhostData{Env: r.env, TLS: t, FQDN: p.FQDN, Root: root, SPA: p.SPA, Protected: p.Protected, Site: siteTables})
	if err != nil {
		return Vhost{}, err
	}
	return Vhost{Name: name, FQDN: p.FQDN, Content: b}, nil
}

// SiteRoot is the directory a site's files live in: <www>/<id>.
func SiteRoot(l config.Layout, id string) string { return filepath.Join(l.WWWDir, id) }

// siteTable is what the site template derives from the site file types.
type siteTable struct {
	Types     []siteType // the types block: every allowed extension, nothing else
	GzipTypes string     // compressible types (text/html is always compressed)
	// FilePattern matches a path ending in an allowed extension;
	// AssetPattern one whose file name carries a content hash
	// (name.<hash>.ext or name-<hash>.ext, the hash 8–64 letters, digits or
	// underscores with at least one letter and one digit).
	FilePattern  string
	AssetPattern string
}

type siteType struct {
	Type string
	Exts string // space-separated
}

// siteTables is computed once from validate's site file types.
var siteTables = buildSiteTable()

// notCompressed are types that are compressed already.
var notCompressed = map[string]bool{
	"text/html": true, // always compressed by gzip on; listing it again is an error
	"image/png": true, "image/jpeg": true, "image/gif": true, "image/webp": true, "image/avif": true,
	"font/woff": true, "font/woff2": true, "video/mp4": true, "video/webm": true,
	"audio/ogg": true, "audio/mpeg": true, "audio/flac": true, "application/pdf": true,
}

// noLongCache are extensions that are never cached as immutable assets:
// pages and manifests keep their names across deploys.
var noLongCache = map[string]bool{"html": true, "htm": true, "webmanifest": true, "manifest": true}

func buildSiteTable() *siteTable {
	byType := map[string][]string{}
	var all, assets []string
	for _, ext := range validate.SiteFileExtensions() {
		ct, _ := validate.SiteFileType(ext)
		byType[ct] = append(byType[ct], ext)
		all = append(all, ext)
		if !noLongCache[ext] {
			assets = append(assets, ext)
		}
	}
	t := &siteTable{}
	var gz []string
	for _, ct := range slices.Sorted(maps.Keys(byType)) {
		t.Types = append(t.Types, siteType{Type: ct, Exts: strings.Join(byType[ct], " ")})
		if !notCompressed[ct] {
			gz = append(gz, ct)
		}
	}
	t.GzipTypes = strings.Join(gz, " ")
	t.FilePattern = `\.(?:` + strings.Join(all, "|") + `)$`
	t.AssetPattern = `[.-](?=[a-z0-9_]*[0-9])(?=[a-z0-9_]*[a-z])[a-z0-9_]{8,64}\.(?:` + strings.Join(assets, "|") + `)$`
	return t
}
