package nginx

import (
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/portlama/portlama/internal/config"
)

func testRenderer(t testing.TB) *Renderer {
	r, err := NewRenderer(config.DirLayout("/srv/portlama"), config.DefaultAddrs())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func testRendererFor(t testing.TB, l config.Layout) *Renderer {
	a := config.DefaultAddrs()
	a.NginxListenHost = "127.0.0.1"
	a.HTTPPort, a.HTTPSPort, a.PanelIPPort = 18080, 18443, 19292
	r, err := NewRenderer(l, a)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var goodTLS = TLSFiles{Cert: "/etc/portlama/certs/x/fullchain.pem", Key: "/etc/portlama/certs/x/privkey.pem"}

func TestNewRendererRejectsUnsafeInput(t *testing.T) {
	good := config.DefaultAddrs()
	cases := []struct {
		name string
		l    config.Layout
		a    func(*config.Addrs)
	}{
		{"space in path", config.DirLayout("/tmp/a b"), nil},
		{"brace in path", config.DirLayout("/tmp/a{b"), nil},
		{"relative path", config.DirLayout("tmp/x"), nil},
		{"dollar in path", config.DirLayout("/tmp/$x"), nil},
		{"panel addr", config.DirLayout("/x"), func(a *config.Addrs) { a.Panel = "localhost:3100" }},
		{"auth addr", config.DirLayout("/x"), func(a *config.Addrs) { a.Auth = "127.0.0.1:0" }},
		{"tunnel addr", config.DirLayout("/x"), func(a *config.Addrs) { a.Tunnel = "127.0.0.1:9090; evil" }},
		{"listen host", config.DirLayout("/x"), func(a *config.Addrs) { a.NginxListenHost = "example.com" }},
		{"port", config.DirLayout("/x"), func(a *config.Addrs) { a.HTTPSPort = 0 }},
		{"port high", config.DirLayout("/x"), func(a *config.Addrs) { a.PanelIPPort = 70000 }},
	}
	for _, c := range cases {
		a := good
		if c.a != nil {
			c.a(&a)
		}
		if _, err := NewRenderer(c.l, a); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
}

func TestRenderRejectsBadValues(t *testing.T) {
	r := testRenderer(t)
	bad := []AppParams{
		{Domain: "example.com", Subdomain: "App", RelayPort: 20000, TLS: goodTLS},
		{Domain: "example.com", Subdomain: "a;b", RelayPort: 20000, TLS: goodTLS},
		{Domain: "example.com", Subdomain: "a.b", RelayPort: 20000, TLS: goodTLS},
		{Domain: "example.com", Subdomain: "", RelayPort: 20000, TLS: goodTLS},
		{Domain: "Example.com", Subdomain: "a", RelayPort: 20000, TLS: goodTLS},
		{Domain: "example.com }", Subdomain: "a", RelayPort: 20000, TLS: goodTLS},
		{Domain: "example.com", Subdomain: "a", RelayPort: 0, TLS: goodTLS},
		{Domain: "example.com", Subdomain: "a", RelayPort: 65536, TLS: goodTLS},
		{Domain: "example.com", Subdomain: "a", RelayPort: 20000, TLS: TLSFiles{Cert: "/x/a b.pem", Key: "/x/k.pem"}},
		{Domain: "example.com", Subdomain: "a", RelayPort: 20000, TLS: TLSFiles{Cert: "/x/c.pem", Key: "k.pem"}},
		{Domain: "example.com", Subdomain: "a", RelayPort: 20000},
	}
	for _, p := range bad {
		if _, err := r.App(p); err == nil {
			t.Errorf("App(%+v) accepted", p)
		}
		if _, err := r.AgentPanel(p); err == nil {
			t.Errorf("AgentPanel(%+v) accepted", p)
		}
		if _, _, err := r.WildcardApp(p); err == nil {
			t.Errorf("WildcardApp(%+v) accepted", p)
		}
	}
	for _, d := range []string{"", "Example.com", "a..b", "x.com;", "x.com\n"} {
		if _, err := r.PanelDomain(d, goodTLS); err == nil {
			t.Errorf("PanelDomain(%q) accepted", d)
		}
	}
	for _, s := range []SiteParams{
		{ID: "not-a-uuid", FQDN: "a.example.com", TLS: goodTLS},
		{ID: "1b4e28ba-2fa1-4d2e-883f-0016d3cca427", FQDN: "a example.com", TLS: goodTLS},
		{ID: "../../../etc", FQDN: "a.example.com", TLS: goodTLS},
	} {
		if _, err := r.Site(s); err == nil {
			t.Errorf("Site(%+v) accepted", s)
		}
	}
	for _, sec := range []string{"", "short", strings.Repeat("G", 64), strings.Repeat("a", 63) + `"`} {
		if _, err := r.Shared(SharedParams{ProxySecret: sec}); err == nil {
			t.Errorf("secret %q accepted", sec)
		}
	}
}

func TestRenderContents(t *testing.T) {
	r := testRenderer(t)
	sh, err := r.Shared(SharedParams{ProxySecret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, f := range sh.Files {
		files[filepath.Base(f.Path)] = string(f.Content)
	}
	confd := files["portlama.conf"]
	for _, want := range []string{
		"zone=portlama_enroll:1m rate=5r/m",
		`map "$request_method:$http_upgrade" $portlama_upgrade`,
		"map $portlama_upgrade $connection_upgrade",
		"websocket upgrade;",
		`default   "";`,
		"limit_conn_zone $binary_remote_addr zone=portlama_addr:10m;",
		"client_header_timeout 10s;",
		"keepalive_timeout 30s;",
		"large_client_header_buffers 4 16k;",
		"js_import portlama from /srv/portlama/nginx/snippets/portlama.js;",
		"map $http_cookie $portlama_backend_cookie",
		"server 127.0.0.1:3100;",
		"server 127.0.0.1:9091;",
	} {
		if !strings.Contains(confd, want) {
			t.Errorf("conf.d lacks %q", want)
		}
	}
	if strings.Contains(confd, " close;") {
		t.Error("conf.d maps to close (kills upstream keepalive)")
	}
	if !strings.Contains(files["portlama-proxy-secret.conf"], `X-Portlama-Proxy-Secret "`+testSecret+`"`) {
		t.Error("secret snippet")
	}
	mtls := files["portlama-mtls.conf"]
	for _, want := range []string{"ssl_client_certificate /srv/portlama/etc/pki/ca.crt;", "ssl_verify_client optional;", "ssl_crl /srv/portlama/etc/pki/crl.pem;", "ssl_verify_depth 1;"} {
		if !strings.Contains(mtls, want) {
			t.Errorf("mtls snippet lacks %q", want)
		}
	}
	if !strings.Contains(files["cert-help.html"], "client.p12") {
		t.Error("cert help page")
	}

	app, err := r.App(AppParams{Domain: "example.com", Subdomain: "my-app", RelayPort: 20001, TLS: goodTLS})
	if err != nil {
		t.Fatal(err)
	}
	c := string(app.Content)
	if app.Name != "portlama-app-my-app" || app.FQDN != "my-app.example.com" {
		t.Errorf("vhost %s %s", app.Name, app.FQDN)
	}
	for _, want := range []string{
		"upstream portlama_app_my_app {",
		"server 127.0.0.1:20001;",
		"keepalive 32;",
		"proxy_pass http://portlama_app_my_app;",
		"proxy_http_version 1.1;",
		"proxy_set_header Connection $connection_upgrade;",
		"server_name my-app.example.com;",
		"auth_request /internal/portlama/authz;",
		"proxy_pass http://portlama_auth/api/authz/auth-request;",
		`proxy_set_header X-Original-URL "https://my-app.example.com$request_uri";`,
		`proxy_set_header Content-Length "";`,
		"error_page 401 =302 $portlama_login;",
		"proxy_set_header Remote-User $portlama_user;",
		"proxy_read_timeout 86400s;",
		"proxy_set_header Cookie $portlama_backend_cookie;",
		"proxy_set_header X-Original-Upgrade $http_upgrade;",
	} {
		if !strings.Contains(c, want) {
			t.Errorf("protected app lacks %q", want)
		}
	}
	if strings.Contains(c, "portlama-proxy-secret") {
		t.Error("app includes the proxy secret")
	}
	if strings.Count(c, "{") != strings.Count(c, "}") {
		t.Error("unbalanced braces")
	}
	pub, _ := r.App(AppParams{Domain: "example.com", Subdomain: "my-app", RelayPort: 20001, Public: true, TLS: goodTLS})
	if strings.Contains(string(pub.Content), "auth_request") || !strings.Contains(string(pub.Content), `proxy_set_header Remote-User "";`) {
		t.Error("public app")
	}
}

func TestRenderWildcardApp(t *testing.T) {
	r := testRenderer(t)
	shared, app, err := r.WildcardApp(AppParams{Domain: "example.com", Subdomain: "my-app", RelayPort: 20001, TLS: goodTLS})
	if err != nil {
		t.Fatal(err)
	}
	if shared.Name != AppsVhost || !shared.IfChanged || shared.Route != nil || app.Name != "portlama-app-my-app" || app.FQDN != "my-app.example.com" {
		t.Fatalf("vhosts %+v / %+v", shared, app)
	}
	want := "upstream portlama_app_my_app {\n    server 127.0.0.1:20001;\n    keepalive 32;\n}\n"
	if c := string(app.Content); !strings.HasSuffix(c, want) || strings.Contains(c, "server {") {
		t.Errorf("app file:\n%s", c)
	}
	if rt, err := ParseRoute(app.Route); err != nil || rt != (Route{FQDN: "my-app.example.com", Protected: true, Upstream: "portlama_app_my_app"}) {
		t.Errorf("route %q: %+v %v", app.Route, rt, err)
	}
	_, pub, _ := r.WildcardApp(AppParams{Domain: "example.com", Subdomain: "my-app", RelayPort: 20001, Public: true, TLS: goodTLS})
	if rt, _ := ParseRoute(pub.Route); rt.Protected {
		t.Errorf("public route %q", pub.Route)
	}
	c := string(shared.Content)
	for _, want := range []string{
		"map $host $portlama_route {",
		"include /srv/portlama/nginx/sites-enabled/.routes/*;",
		"server_name *.example.com;",
		"ssl_certificate " + goodTLS.Cert + ";",
		`proxy_set_header X-Original-URL "https://$host$request_uri";`,
		"location @portlama_public {",
		"location @portlama_protected {",
		"recursive_error_pages on;",
		"return 404;",
		"proxy_pass http://$portlama_route_upstream;",
		"auth_request /internal/portlama/authz;",
		"proxy_set_header Remote-User $portlama_user;",
		`proxy_set_header Remote-User "";`,
	} {
		if !strings.Contains(c, want) {
			t.Errorf("shared server lacks %q", want)
		}
	}
	if strings.Contains(c, "my-app") || strings.Count(c, "{") != strings.Count(c, "}") {
		t.Errorf("shared server names an app or is unbalanced:\n%s", c)
	}
	checked, _, _ := r.ForCheckedSites().WildcardApp(AppParams{Domain: "example.com", Subdomain: "x", RelayPort: 1, TLS: goodTLS})
	if !strings.Contains(string(checked.Content), "include /srv/portlama/nginx/portlama-checked/.routes/*;") {
		t.Error("a relay's shared server does not read the checked routes")
	}
}

func TestMainConf(t *testing.T) {
	b, err := RenderMainConf(MainConf{Prefix: "/run/px", NginxDir: "/etc/px", User: "root", Modules: []string{"/usr/lib/nginx/modules/ngx_http_js_module.so"}})
	if err != nil {
		t.Fatal(err)
	}
	c := string(b)
	for _, want := range []string{"user root;", "worker_processes auto;", "pid /run/px/nginx.pid;", "error_log /run/px/error.log", "client_body_temp_path /run/px/tmp/client_body;", "proxy_temp_path /run/px/tmp/proxy;", "fastcgi_temp_path", "uwsgi_temp_path", "scgi_temp_path", "include /etc/px/conf.d/*.conf;", "include /etc/px/sites-enabled/*;", "access_log off;",
		"load_module /usr/lib/nginx/modules/ngx_http_js_module.so;", "worker_rlimit_nofile 10240;", "worker_connections 4096;", "worker_shutdown_timeout 600s;"} {
		if !strings.Contains(c, want) {
			t.Errorf("nginx.conf lacks %q", want)
		}
	}
	if strings.Contains(c, "keepalive_timeout") {
		t.Error("nginx.conf sets keepalive_timeout (conf.d's, which would then be a duplicate)")
	}
	for _, bad := range []MainConf{{Prefix: "rel", NginxDir: "/x"}, {Prefix: "/x", NginxDir: "/x", User: "a;b"}, {Prefix: "/x", NginxDir: "/x", Workers: -1},
		{Prefix: "/x", NginxDir: "/x", Modules: []string{"/m.so; evil"}}, {Prefix: "/x", NginxDir: "/x", Modules: []string{"m.so"}}} {
		if _, err := RenderMainConf(bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	f, err := RenderSystemConf(SystemConf{NginxDir: "/etc/nginx"})
	if err != nil {
		t.Fatal(err)
	}
	c = string(f.Content)
	for _, want := range []string{"user www-data;", "include /etc/nginx/modules-enabled/*.conf;", "worker_rlimit_nofile 10240;", "worker_connections 4096;",
		"worker_shutdown_timeout 600s;", "include /etc/nginx/mime.types;", "include /etc/nginx/conf.d/*.conf;", "include /etc/nginx/sites-enabled/*;"} {
		if !strings.Contains(c, want) {
			t.Errorf("system nginx.conf lacks %q", want)
		}
	}
	if f.Path != "/etc/nginx/nginx.conf" || f.Mode != 0o644 {
		t.Errorf("system nginx.conf at %s mode %o", f.Path, f.Mode)
	}
	for _, bad := range []SystemConf{{NginxDir: "etc"}, {NginxDir: "/etc/nginx", User: "a b"}, {NginxDir: "/etc/nginx", Workers: 65}} {
		if _, err := RenderSystemConf(bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func FuzzVhostName(f *testing.F) {
	for _, s := range []string{"portlama-app-x", "portlama-", "portlama-../x", "portlama-a b", "portlama-site-1b4e28ba-2fa1-4d2e-883f-0016d3cca427", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidVhostName(s) != nil {
			return
		}
		if !strings.HasPrefix(s, "portlama-") || strings.ContainsAny(s, "/. \t\n;{}$\"'\\\x00") || len(s) > maxVhostName {
			t.Fatalf("accepted %q", s)
		}
		if filepath.Base(s) != s || filepath.Clean(s) != s {
			t.Fatalf("%q is not a plain file name", s)
		}
	})
}

// FuzzRenderApp checks that whatever App accepts renders a config of the
// same shape as a known-good one: the subdomain cannot inject directives.
func FuzzRenderApp(f *testing.F) {
	for _, s := range []string{"app", "a-b", "x;y", "a}b", "a b", "A", "a.b", "a\nb", "-a"} {
		f.Add(s, 20000, "example.com", false)
	}
	r := testRenderer(f)
	ref, _ := r.App(AppParams{Domain: "example.com", Subdomain: "ref", RelayPort: 20000, TLS: goodTLS})
	refLines := strings.Count(string(ref.Content), "\n")
	refBraces := strings.Count(string(ref.Content), "{")
	f.Fuzz(func(t *testing.T, sub string, port int, domain string, public bool) {
		v, err := r.App(AppParams{Domain: domain, Subdomain: sub, RelayPort: port, TLS: goodTLS})
		if err != nil {
			return
		}
		c := string(v.Content)
		if strings.Count(c, "\n") != refLines || strings.Count(c, "{") != refBraces || strings.Count(c, "}") != refBraces {
			t.Fatalf("shape differs for %q %q", sub, domain)
		}
		if !strings.Contains(c, "server_name "+sub+"."+domain+";\n") || !strings.Contains(c, "server 127.0.0.1:"+strconv.Itoa(port)+";\n") {
			t.Fatalf("values not placed verbatim for %q", sub)
		}
		if strings.ContainsAny(sub+domain, " ;{}\"'$/\\\n\x00") {
			t.Fatalf("unsafe value accepted: %q %q", sub, domain)
		}
		if ValidVhostName(v.Name) != nil {
			t.Fatalf("bad vhost name %q", v.Name)
		}
	})
}

func FuzzSafePath(f *testing.F) {
	for _, s := range []string{"/etc/nginx", "/a b", "/a;b", "/a/../b", "rel", "/a/b/", "/a$b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := safePath("x", s)
		if err != nil {
			return
		}
		if p != s || !strings.HasPrefix(s, "/") || strings.ContainsAny(s, " \t\n;{}\"'$\\#\x00") || strings.Contains(s, "..") {
			t.Fatalf("accepted %q", s)
		}
	})
}

func TestAuthVhost(t *testing.T) {
	rl := startRelay(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen-Remote-User", r.Header.Get("Remote-User"))
		w.Header().Set("X-Seen-Secret", r.Header.Get("X-Portlama-Proxy-Secret"))
		w.Write([]byte("AUTH PORTAL " + r.URL.Path))
	}))
	v, err := rl.r.Auth(testDomain, rl.tls())
	if err != nil {
		t.Fatal(err)
	}
	if err := rl.mgr.WriteVhost(ctxT(t), v.Name, v.FQDN, v.Content); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(rl.layout.WWWDir, "invite", "index.html"), []byte("INVITE PAGE"), 0o644)
	c := rl.client(rl.addrs.HTTPSPort, &rl.pki.client)
	base := "https://auth." + testDomain + ":" + strconv.Itoa(rl.addrs.HTTPSPort)

	resp, body := get(t, c, base+"/invite/"+testSecret, nil)
	if resp.StatusCode != 200 || body != "INVITE PAGE" {
		t.Errorf("invite page: %d %q", resp.StatusCode, body)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'none'; script-src 'self'") || resp.Header.Get("Referrer-Policy") != "no-referrer" || resp.Header.Get("Strict-Transport-Security") == "" {
		t.Errorf("invite headers: %v", resp.Header)
	}

	resp, body = get(t, c, base+"/api/invite/"+testSecret, map[string]string{"X-SSL-Client-Verify": "SUCCESS", "Remote-User": "x"})
	if resp.StatusCode != 200 {
		t.Fatalf("invite api: %d", resp.StatusCode)
	}
	e := decodeEcho(t, body)
	if e.Name != "panel" || e.Headers.Get("X-Portlama-Proxy-Secret") != testSecret {
		t.Errorf("invite api reached %q with secret %q", e.Name, e.Headers.Get("X-Portlama-Proxy-Secret"))
	}
	if _, ok := e.Headers["X-Ssl-Client-Verify"]; ok {
		t.Error("certificate header passed to the panel on the auth vhost")
	}
	if _, ok := e.Headers["Remote-User"]; ok {
		t.Error("Remote-User passed")
	}

	resp, body = get(t, c, base+"/api/firstfactor", map[string]string{"Remote-User": "mallory", "X-Portlama-Proxy-Secret": testSecret})
	if resp.StatusCode != 200 || body != "AUTH PORTAL /api/firstfactor" {
		t.Errorf("portal: %d %q", resp.StatusCode, body)
	}
	if resp.Header.Get("X-Seen-Remote-User") != "" || resp.Header.Get("X-Seen-Secret") != "" {
		t.Errorf("auth server saw Remote-User %q secret %q", resp.Header.Get("X-Seen-Remote-User"), resp.Header.Get("X-Seen-Secret"))
	}
	// The auth-request endpoint is only an internal subrequest target.
	for _, p := range []string{"/api/authz/auth-request", "/api//authz/auth-request", "/api/authz%2Fauth-request", "/x/../api/authz/auth-request"} {
		resp, body = get(t, c, base+p, map[string]string{"X-Original-URL": "https://app." + testDomain + "/"})
		if resp.StatusCode != 404 || strings.Contains(body, "AUTH PORTAL") {
			t.Errorf("%s on the auth vhost: %d %q, want 404 without reaching the auth server", p, resp.StatusCode, body)
		}
	}
	// /api/invitations (admin) is not the public invite API.
	resp, body = get(t, c, base+"/api/invitations", nil)
	if strings.Contains(body, `"name":"panel"`) {
		t.Errorf("/api/invitations reached the panel through the auth vhost: %d", resp.StatusCode)
	}
}

func FuzzAddrs(f *testing.F) {
	for _, s := range []string{"127.0.0.1:3100", "[::1]:80", "localhost:80", "1.2.3.4:0", "1.2.3.4:80;", "[fe80::1%eth0]:80", ""} {
		f.Add(s, "127.0.0.1", 443)
	}
	f.Fuzz(func(t *testing.T, addr, host string, port int) {
		if a, err := backendAddr("x", addr); err == nil {
			if strings.ContainsAny(a, " \t\n;{}\"'$/\\%#\x00") || !strings.Contains(a, ":") {
				t.Fatalf("backend %q → %q", addr, a)
			}
		}
		if l, err := listenSpec("x", host, port); err == nil {
			if strings.ContainsAny(l, " \t\n;{}\"'$/\\%#\x00") || !strings.HasSuffix(l, strconv.Itoa(port)) {
				t.Fatalf("listen %q %d → %q", host, port, l)
			}
		}
	})
}
