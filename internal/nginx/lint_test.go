package nginx

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/testutil"
	"github.com/portlama/portlama/internal/validate"
)

// renderAll writes every vhost the relay can produce into l's
// sites-available/sites-enabled: the installer's pieces, the provisioning
// vhosts, app and agent-panel tunnels of both access modes, and sites.
func renderAll(t *testing.T, l config.Layout) {
	t.Helper()
	m := NewManager(l, noopCtl{}, nil)
	r := testRendererFor(t, l)
	sh, err := r.Shared(SharedParams{ProxySecret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := m.WriteShared(ctx, sh); err != nil {
		t.Fatal(err)
	}
	tlsf := CertFiles(l, testDomain)
	var vs []Vhost
	for _, f := range []func(string, TLSFiles) (Vhost, error){r.PanelDomain, r.Auth, r.Tunnel} {
		v, err := f(testDomain, tlsf)
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	for i, public := range []bool{false, true} {
		p := AppParams{Domain: testDomain, Subdomain: []string{"app", "open"}[i], RelayPort: 20000 + i, Public: public, TLS: tlsf}
		app, err := r.App(p)
		if err != nil {
			t.Fatal(err)
		}
		p.Subdomain, p.Owner = "agent-"+p.Subdomain, p.Subdomain
		ap, err := r.AgentPanel(p)
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, app, ap)
		// The same access mode served by the shared wildcard server, as a
		// relay's nginx reads it (the checked routes).
		p = AppParams{Domain: testDomain, Subdomain: []string{"wild", "wild-open"}[i], RelayPort: 20010 + i, Public: public, TLS: tlsf}
		shared, wild, err := r.ForCheckedSites().WildcardApp(p)
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, shared, wild)
	}
	for i, id := range []string{"5f0c6f8e-5d4a-4c1b-9a53-3f5e2b7c1d20", "6a1d7e9f-6e5b-4d2c-8b64-4e6f3c8d2e31"} {
		s, err := r.Site(SiteParams{ID: id, FQDN: "site" + string(rune('a'+i)) + "." + testDomain, SPA: i == 0, Protected: i == 1, TLS: tlsf})
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, s)
	}
	if err := m.Apply(ctx, vs...); err != nil {
		t.Fatal(err)
	}
}

// Every vhost the templates produce passes the gate: a template change that
// adds a directive must add it to lintAllowed (or the panel's nginx changes
// would be refused on a relay).
func TestLintAdmitsEveryTemplate(t *testing.T) {
	l := config.DirLayout(tempDir(t))
	renderAll(t, l)
	entries, err := os.ReadDir(l.NginxSitesAvailable())
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) < 10 {
		t.Fatalf("only %d vhosts; the test must cover every template", len(entries))
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(l.NginxSitesAvailable(), e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(e.Name(), routeSuffix) {
			if _, err := ParseRoute(data); err != nil {
				t.Errorf("%s: %v", e.Name(), err)
			}
			continue
		}
		if err := LintConfig(l, data); err != nil {
			t.Errorf("%s: %v", e.Name(), err)
		}
	}
	// The snippets are root's, but they pass as well.
	for _, f := range []string{filepath.Join(l.NginxSnippets(), "portlama-panel-proxy.conf"), filepath.Join(l.NginxSnippets(), "portlama-mtls.conf")} {
		data, _ := os.ReadFile(f)
		if err := LintConfig(l, data); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// untrust makes a file the panel's (not root's), as on a relay.
func untrust(t *testing.T, path string) {
	t.Helper()
	if os.Geteuid() == 0 {
		if err := os.Lchown(path, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLintRefuses(t *testing.T) {
	l := config.DirLayout("/etc/x")
	for name, conf := range map[string]string{
		"log to a root-owned path":   "server { access_log /etc/cron.d/x; }",
		"error log":                  "error_log /etc/cron.d/x;",
		"error log, escaped":         "error_log /dev/nul\\l;",
		"error log, extra":           "error_log /dev/null warn /etc/x;",
		"log format":                 "log_format x '* * * * * root sh';",
		"include outside snippets":   "server { include /etc/shadow; }",
		"include with glob":          "include /etc/nginx/snippets/*.conf;",
		"include climbing out":       "include /etc/x/nginx/snippets/../../../shadow;",
		"key outside pki":            "server { ssl_certificate_key /root/key.pem; }",
		"key with variable":          "server { ssl_certificate_key /etc/x/etc/pki/$host.key; }",
		"root outside www":           "server { location / { root /; } }",
		"alias outside www":          "location /x { alias /etc/; }",
		"temp path":                  "proxy_temp_path /etc/cron.d;",
		"cache path":                 "proxy_cache_path /etc/cron.d keys_zone=x:1m;",
		"password file":              "ssl_password_file /etc/shadow;",
		"ticket key":                 "ssl_session_ticket_key /etc/shadow;",
		"store":                      "location / { proxy_store /etc/x; }",
		"unknown module directive":   "js_import /etc/x.js;",
		"njs import from a vhost":    "js_import x from /etc/x/nginx/snippets/portlama.js;",
		"perl":                       "perl_require x.pm;",
		"closing the http block":     "} user root; http {",
		"unterminated":               "server { listen 80;",
		"unterminated string":        "add_header X \"a;",
		"directive inside map data":  "map $a $b { default x; include /etc/shadow; }",
		"quoted log directive":       "\"access_log\" /etc/cron.d/x;",
		"two args to include":        "include /etc/x/nginx/snippets/a.conf /etc/shadow;",
		"crl outside pki":            "ssl_crl /etc/x/etc/certs/crl.pem;",
		"client CA from certs store": "ssl_client_certificate /etc/x/etc/certs/ca.pem;",
		"map includes a snippet":     "map $host $r { include /etc/x/nginx/snippets/a.conf; }",
		"map includes unchecked":     "map $host $r { include /etc/x/nginx/sites-enabled/.routes/*; }",
		"map includes twice":         "map $host $r { include /etc/x/nginx/portlama-checked/.routes/* /etc/shadow; }",
		"types include routes":       "types { include /etc/x/nginx/portlama-checked/.routes/*; }",
		"two upstreams":              "upstream portlama_app_a { server 127.0.0.1:1; } upstream portlama_app_b { server 127.0.0.1:2; }",
		"upstream off loopback":      "upstream portlama_app_a { server 10.0.0.1:22; }",
		"upstream by name":           "upstream portlama_app_a { server localhost:22; }",
		"upstream port 0":            "upstream portlama_app_a { server 127.0.0.1:0; }",
		"upstream without server":    "upstream portlama_app_a { keepalive 8; }",
		"upstream two servers":       "upstream portlama_app_a { server 127.0.0.1:1; server 127.0.0.1:2; }",
		"upstream other directive":   "upstream portlama_app_a { server 127.0.0.1:1; hash $host; }",
		"upstream server options":    "upstream portlama_app_a { server 127.0.0.1:1 backup; }",
		"upstream another name":      "upstream portlama_panel { server 127.0.0.1:1; }",
	} {
		err := LintConfig(l, []byte(conf))
		var le *LintError
		if !errors.As(err, &le) {
			t.Errorf("%s: %q admitted (err %v)", name, conf, err)
		}
	}
	if err := LintConfig(l, []byte("location / { error_log /dev/null crit; access_log off; }")); err != nil {
		t.Fatalf("silenced logs refused: %v", err)
	}
	for _, good := range []string{
		"map $host $r { default \"\"; include /etc/x/nginx/portlama-checked/.routes/*; }",
		"upstream portlama_app_a_b { server 127.0.0.1:20000; keepalive 32; }",
	} {
		if err := LintConfig(l, []byte(good)); err != nil {
			t.Errorf("%q refused: %v", good, err)
		}
	}
	ok := "server {\n  listen 443 ssl; # comment\n  ssl_certificate /etc/x/etc/certs/a/fullchain.pem;\n  location ~ ^/(?<p>.*)$ { return 301 \"https://${host}/$p\"; }\n  include /etc/x/nginx/snippets/portlama-tls.conf;\n}\n"
	if err := LintConfig(l, []byte(ok)); err != nil {
		t.Fatalf("a plain vhost refused: %v", err)
	}
}

func TestLintFiles(t *testing.T) {
	l := config.DirLayout(tempDir(t))
	renderAll(t, l)
	avail, enabled := l.NginxSitesAvailable(), l.NginxSitesEnabled()

	// A link to a file outside sites-available is refused without reading it.
	secret := filepath.Join(tempDir(t), "secret")
	writeFile(t, secret, []byte("root:$6$hash"), 0o600)
	if err := os.Symlink(secret, filepath.Join(enabled, "portlama-evil")); err != nil {
		t.Fatal(err)
	}
	_, err := Lint(l)
	if err == nil || !strings.Contains(err.Error(), "links outside sites-available") || strings.Contains(err.Error(), "hash") {
		t.Fatalf("link outside: %v", err)
	}
	os.Remove(filepath.Join(enabled, "portlama-evil"))

	// A file in sites-available that is itself a link out is not followed.
	if err := os.Symlink(secret, filepath.Join(avail, "portlama-hop")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(avail, "portlama-hop"), filepath.Join(enabled, "portlama-hop")); err != nil {
		t.Fatal(err)
	}
	if _, err := Lint(l); err == nil || strings.Contains(err.Error(), "hash") {
		t.Fatalf("second hop: %v", err)
	}
	os.Remove(filepath.Join(enabled, "portlama-hop"))

	// A bad directive in an enabled vhost names the file and line.
	writeFile(t, filepath.Join(avail, "portlama-app-bad"), []byte("server {\n access_log /etc/cron.d/x;\n}\n"), 0o644)
	untrust(t, filepath.Join(avail, "portlama-app-bad"))
	if err := os.Symlink(filepath.Join(avail, "portlama-app-bad"), filepath.Join(enabled, "portlama-app-bad")); err != nil {
		t.Fatal(err)
	}
	if _, err := Lint(l); err == nil || !strings.Contains(err.Error(), "portlama-app-bad: line 2") {
		t.Fatalf("bad vhost: %v", err)
	}
	os.Remove(filepath.Join(enabled, "portlama-app-bad"))
	if _, err := Lint(l); err != nil {
		t.Fatalf("clean again: %v", err)
	}

	// Routes: only links to the app's own route file, holding one route.
	routes := RoutesDir(enabled)
	for name, tc := range map[string]struct {
		entry, target, content, want string
	}{
		"a route that includes":  {"portlama-app-x", "portlama-app-x.route", "include /etc/shadow;\n", "portlama-app-x: line 1"},
		"two routes":             {"portlama-app-x", "portlama-app-x.route", "x." + testDomain + " public:portlama_app_x;\ny." + testDomain + " public:portlama_app_y;\n", "holds one route"},
		"another app's upstream": {"portlama-app-x", "portlama-app-x.route", "x." + testDomain + " public:portlama_app_wild;\n", "the upstream of x." + testDomain},
		"named for another app":  {"portlama-app-x", "portlama-app-x.route", "y." + testDomain + " public:portlama_app_y;\n", "must be named portlama-app-y"},
		"link to a vhost":        {"portlama-app-x", "portlama-app-app", "", "not to portlama-app-x.route"},
		"a plain file":           {"portlama-app-x", "", "x." + testDomain + " public:portlama_app_x;\n", "is not a link"},
		"a variable value":       {"portlama-app-x", "portlama-app-x.route", "x." + testDomain + " $http_x;\n", "portlama-app-x: line 1"},
	} {
		entry := filepath.Join(routes, tc.entry)
		if tc.target == "" {
			writeFile(t, entry, []byte(tc.content), 0o644)
		} else {
			if tc.content != "" {
				writeFile(t, filepath.Join(avail, tc.target), []byte(tc.content), 0o644)
			}
			if err := os.Symlink(filepath.Join(avail, tc.target), entry); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := Lint(l); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
		os.Remove(entry)
	}
	if _, err := Lint(l); err != nil {
		t.Fatalf("clean again: %v", err)
	}

	// A snippets directory others can write is refused: the gate would not
	// cover what nginx includes from there.
	if err := os.Chmod(l.NginxSnippets(), 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := Lint(l); err == nil || !strings.Contains(err.Error(), "writable only by root") {
		t.Fatalf("writable snippets: %v", err)
	}
}

func FuzzLintConfig(f *testing.F) {
	f.Add("server { listen 80; location / { return 301 https://$host$request_uri; } }")
	f.Add("include /etc/x/nginx/snippets/a.conf;")
	f.Add("map $a $b { default x; }")
	f.Add("add_header X \"a\\\"b\";")
	f.Add("} {")
	f.Add("upstream portlama_app_a { server 127.0.0.1:20000; keepalive 32; }")
	f.Add("map $host $r { default \"\"; include /etc/x/nginx/portlama-checked/.routes/*; }")
	l := config.DirLayout("/etc/x")
	f.Fuzz(func(t *testing.T, s string) {
		err := LintConfig(l, []byte(s))
		if err != nil {
			return
		}
		// Whatever passes has only allowed directives with confined paths.
		dirs, perr := parseConf([]byte(s))
		if perr != nil {
			t.Fatalf("admitted text that does not parse: %v", perr)
		}
		var walk func([]confDirective, bool)
		walk = func(ds []confDirective, data bool) {
			for _, d := range ds {
				if !data && !lintAllowed[d.name] {
					t.Fatalf("admitted directive %q", d.name)
				}
				if strings.HasSuffix(d.name, "_log") && !(len(d.args) >= 1 && (d.args[0] == "off" || d.args[0] == "/dev/null")) {
					t.Fatalf("admitted %s %v", d.name, d.args)
				}
				if d.name == "map" {
					for _, e := range d.block {
						if e.name == "include" && (len(e.args) != 1 || e.args[0] != "/etc/x/nginx/portlama-checked/.routes/*") {
							t.Fatalf("admitted map include %v", e.args)
						}
					}
				}
				walk(d.block, lintData[d.name])
			}
		}
		walk(dirs, false)
		// A file of upstreams is one app upstream to a loopback port.
		if len(dirs) > 0 && !slices.ContainsFunc(dirs, func(d confDirective) bool { return d.name != "upstream" }) {
			if len(dirs) != 1 || !upstreamPattern().MatchString(strings.Join(dirs[0].args, " ")) {
				t.Fatalf("admitted upstreams %+v", dirs)
			}
			for _, c := range dirs[0].block {
				if !(c.name == "server" && len(c.args) == 1 && strings.HasPrefix(c.args[0], "127.0.0.1:")) && c.name != "keepalive" {
					t.Fatalf("admitted %s %v in an app upstream", c.name, c.args)
				}
			}
		}
	})
}

func FuzzParseRoute(f *testing.F) {
	f.Add("# Managed by Portlama. Changes are overwritten.\nweb.demo.localhost protected:portlama_app_web;\n")
	f.Add("a-b.example.com public:portlama_app_a_b;")
	f.Add("web.demo.localhost public:portlama_app_web;\nx.demo.localhost public:portlama_app_x;")
	f.Add("include /etc/shadow;")
	f.Fuzz(func(t *testing.T, s string) {
		rt, err := ParseRoute([]byte(s))
		if err != nil {
			return
		}
		// What passes is one plain map entry nginx reads as host and value.
		if validate.FQDN(rt.FQDN) != nil || rt.Upstream != upstreamName("app", rt.Subdomain()) {
			t.Fatalf("admitted %+v", rt)
		}
		dirs, err := parseConf([]byte(s))
		if err != nil || len(dirs) != 1 || dirs[0].name != rt.FQDN || len(dirs[0].args) != 1 || dirs[0].block != nil {
			t.Fatalf("admitted %q as %+v (%v)", s, dirs, err)
		}
		if strings.ContainsAny(dirs[0].args[0], "$\"'{}") {
			t.Fatalf("admitted value %q", dirs[0].args[0])
		}
	})
}

// The gate tokenizes like nginx: text that nginx reads as a second
// directive must not hide inside one of the gate's tokens.
func TestLintTokenizesLikeNginx(t *testing.T) {
	l := config.DirLayout("/etc/x")
	for _, conf := range []string{
		"set $x ${a;access_log /etc/cron.d/x;}",
		"return 200 x} access_log /etc/cron.d/x; {",
		"root \"/etc/x/www/\\..\\..\\etc\";",
		"acc\\ess_log /etc/cron.d/x;",
		"include /etc/x/nginx/snippets/a\\.conf;",
		"add_header X \"a\"access_log /etc/x;",
	} {
		if err := LintConfig(l, []byte(conf)); err == nil {
			t.Errorf("%q admitted", conf)
		}
	}
	// nginx reads "x}" as one word and "${host}" as a variable.
	for _, conf := range []string{"return 200 x};", "return 301 https://${host}/;", "add_header X \"a;b\";"} {
		if err := LintConfig(l, []byte(conf)); err != nil {
			t.Errorf("%q refused: %v", conf, err)
		}
	}
}

// Root's own files (the distribution's default site) are copied as they
// are; the same content written by anyone else, made writable by others or
// hard-linked is linted.
func TestLintTrustsOnlyRootsOwnFiles(t *testing.T) {
	testutil.NeedRoot(t, "ownership checks need root")
	l := config.DirLayout(tempDir(t))
	renderAll(t, l)
	avail, enabled := l.NginxSitesAvailable(), l.NginxSitesEnabled()
	def := filepath.Join(avail, "default")
	writeFile(t, def, []byte("server {\n listen 80 default_server;\n root /var/www/html;\n}\n"), 0o644)
	if err := os.Symlink(def, filepath.Join(enabled, "default")); err != nil {
		t.Fatal(err)
	}
	checked, err := Lint(l)
	if err != nil {
		t.Fatalf("root's default site: %v", err)
	}
	if !strings.Contains(string(checked["default"]), "/var/www/html") {
		t.Fatal("the default site is not among the checked entries")
	}
	os.Chmod(def, 0o664)
	if _, err := Lint(l); err == nil || !strings.Contains(err.Error(), "default: line 3") {
		t.Fatalf("group-writable: %v", err)
	}
	os.Chmod(def, 0o644)
	if err := os.Link(def, filepath.Join(tempDir(t), "hard")); err == nil {
		if _, err := Lint(l); err == nil {
			t.Fatal("a hard-linked root file was trusted")
		}
	}
}

// Publish copies exactly the checked entries; nginx reads only those, so
// changing a vhost after the check changes nothing nginx loads.
func TestPublish(t *testing.T) {
	l := config.DirLayout(tempDir(t))
	renderAll(t, l)
	avail, enabled := l.NginxSitesAvailable(), l.NginxSitesEnabled()
	if err := Publish(l); err != nil {
		t.Fatal(err)
	}
	dir := CheckedSitesDir(l)
	want, _ := os.ReadDir(enabled)
	got, _ := os.ReadDir(dir)
	if len(got) != len(want) {
		t.Fatalf("%d checked entries for %d enabled", len(got), len(want))
	}
	for _, e := range got {
		if !e.Type().IsRegular() && e.Name() != routesName {
			t.Errorf("%s is not a plain copy", e.Name())
		}
	}
	// The routes the shared wildcard server includes are copies too.
	wantRoutes, _ := os.ReadDir(RoutesDir(enabled))
	gotRoutes, _ := os.ReadDir(RoutesDir(dir))
	if len(wantRoutes) != 2 || len(gotRoutes) != len(wantRoutes) {
		t.Fatalf("%d checked routes for %d enabled", len(gotRoutes), len(wantRoutes))
	}
	route := filepath.Join(RoutesDir(dir), AppVhostName("wild"))
	if b, err := os.ReadFile(route); err != nil || !strings.Contains(string(b), "wild."+testDomain+" protected:portlama_app_wild;") {
		t.Fatalf("checked route: %q %v", b, err)
	}
	os.Remove(filepath.Join(RoutesDir(enabled), AppVhostName("wild")))
	if err := Publish(l); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(route); !os.IsNotExist(err) {
		t.Fatal("a removed route stays published")
	}
	app := filepath.Join(dir, "portlama-app-app")
	before, _ := os.ReadFile(app)

	// A refused vhost: nothing published changes.
	bad := filepath.Join(avail, "portlama-app-app")
	writeFile(t, bad, []byte("error_log /etc/cron.d/x;\n"), 0o644)
	untrust(t, bad)
	if err := Publish(l); err == nil {
		t.Fatal("published a refused vhost")
	}
	if after, _ := os.ReadFile(app); string(after) != string(before) {
		t.Fatal("a refused publish changed the checked copy")
	}
	// A removed vhost disappears from the checked copies.
	os.Remove(filepath.Join(enabled, "portlama-app-app"))
	if err := Publish(l); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(app); !os.IsNotExist(err) {
		t.Fatal("a disabled vhost stays published")
	}
}
