// Package nginx renders Portlama's nginx configuration (docs/architecture.md, "nginx configuration") and
// changes it safely: write, test, reload, roll back.
//
// # Rendering
//
// NewRenderer(layout, addrs) checks every path and address the templates
// use. Its methods return validated, ready-to-write content:
//
//	r.Shared(SharedParams{ProxySecret, PanelIPTLS}) // conf.d/portlama.conf, 5 snippets,
//	                                                // snippets/portlama.js (cookie filter),
//	                                                // cert-help.html, cookie-help.html,
//	                                                // portlama-http, portlama-default,
//	                                                // portlama-panel-ip
//	r.PanelDomain(d, tls), r.Auth(d, tls), r.Tunnel(d, tls) // provisioning vhosts
//	r.App(AppParams{Domain, Subdomain, RelayPort, Public, TLS}) // portlama-app-<sub>
//	r.WildcardApp(AppParams{...})  // under the wildcard certificate: portlama-apps (the
//	                               // shared server) and portlama-app-<sub> (its upstream,
//	                               // with its route for the shared server's host map)
//	r.AgentPanel(AppParams{..., Owner})                         // portlama-agent-panel-<sub>
//	r.Site(SiteParams{ID, FQDN, SPA, Protected, TLS})          // portlama-site-<id>
//	RenderMainConf(MainConf{...})                               // nginx.conf of a self-run nginx
//	RenderSystemConf(SystemConf{...})                           // the relay's /etc/nginx/nginx.conf
//
// Every value placed into a template is re-validated at render time with
// package validate (fqdn, subdomain, agent label, UUID), is an int port, a
// clean absolute path of plain characters, an ip:port, the 64-hex secret,
// or a fixed string; anything else is refused. App and agent-panel vhosts
// proxy to an upstream block with keepalive, HTTP/1.1 and an empty
// Connection header when the client did not ask for an upgrade, so
// connections to the relay port are reused (a deliberate difference from
// the contract's "close"). AppParams.Public is false by default: a
// forgotten field yields a protected app, never an open one.
// A relay's nginx reads the lint gate's checked copies: r.ForCheckedSites()
// renders the shared server's include of the checked routes.
// CertFiles(layout, name) gives the certificate store paths of docs/architecture.md, "Certificate store".
//
// The edges every server we write closes are described in
// docs/security.md: per-address connection limits and timeouts, JSON error
// answers for API clients, a clean-up page for oversized cookie headers,
// WebSocket-only upgrades, backends that cannot steer nginx (X-Accel-*)
// nor set cookies beyond their host or the login cookie (portlama.js, run
// by nginx's njs module, which RequiredModules names), an agent panel open
// only to the admin and its agent, and unlogged token locations.
//
// # Controllers
//
// Controller is { Test(ctx) (output, error); Reload(ctx) error }.
// System runs "nginx -t" and "systemctl reload nginx" (argv, optionally
// through a RunFunc such as a sudo helper). Instance runs nginx as a child
// process with its own prefix (demo, tests): NewInstance, Start, Test,
// Reload (SIGHUP, returns once new workers serve and old ones are shutting
// down), Stop (no process left behind).
//
// # Manager
//
// NewManager(layout, controller, logger) follows docs/architecture.md, "Safe write, test, reload and rollback" for every change:
// WriteVhost (backup, atomic 0644 write, symlink, test, restore on failure
// with a *TestError "Nginx config test failed after writing vhost for
// <fqdn>: <output>", reload, drop backup), Apply (several vhosts as one
// change: provisioning), RemoveVhost, EnableVhost, DisableVhost (symlink
// only; a vhost's route, Vhost.Route, is written, linked, unlinked, removed
// and restored with it), WriteShared (installer pieces; removes sites-enabled/default) and
// TestAndReload (CRL or certificate change). A failing reload rolls back
// like a failing test. Changes are committed in groups: those arriving
// while a test and reload run share the next one, and each call returns
// once a reload that includes its change is done; when a group's test
// fails, its changes are retried one by one so only the breaking ones fail.
// A lock file (sites-available/.portlama.lock, flock) serialises Managers
// across processes (the panel and `portlama certs renew`).
package nginx
