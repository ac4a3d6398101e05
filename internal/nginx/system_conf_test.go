package nginx

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portlama/portlama/internal/testutil"
)

// TestSharedPiecesFitDistributionNginxConf checks the production layout:
// our conf.d, snippets and vhosts under the distribution's own nginx.conf
// (its http-level directives must not clash with ours). The include, pid
// and log paths are redirected to a temporary directory.
func TestSharedPiecesFitDistributionNginxConf(t *testing.T) {
	testSystemConf(t, false, func(t *testing.T) []byte {
		// Debian's nginx package ships it; NeedBinary has made sure nginx
		// is installed, so its absence is a broken installation, not a skip.
		sys, err := os.ReadFile("/etc/nginx/nginx.conf")
		if err != nil {
			t.Fatalf("the distribution's nginx.conf: %v (reinstall nginx: apt-get install --reinstall nginx-common)", err)
		}
		return sys
	})
}

// TestSharedPiecesFitOurSystemConf is the same with the nginx.conf the
// installer writes (RenderSystemConf).
func TestSharedPiecesFitOurSystemConf(t *testing.T) {
	testSystemConf(t, false, func(t *testing.T) []byte {
		f, err := RenderSystemConf(SystemConf{NginxDir: "/etc/nginx"})
		if err != nil {
			t.Fatal(err)
		}
		return f.Content
	})
}

// TestCheckedWildcardAppsFitOurSystemConf is a relay's shape: nginx reads
// the lint gate's copies (Publish), the shared wildcard server's host map
// the checked routes.
func TestCheckedWildcardAppsFitOurSystemConf(t *testing.T) {
	testSystemConf(t, true, func(t *testing.T) []byte {
		f, err := RenderSystemConf(SystemConf{NginxDir: "/etc/nginx", SitesDir: "/etc/nginx/portlama-checked"})
		if err != nil {
			t.Fatal(err)
		}
		return f.Content
	})
}

// testSystemConf runs nginx -t on mainConf with the relay's pieces; checked
// renders for the lint gate, adds wildcard apps and publishes.
func testSystemConf(t *testing.T, checked bool, mainConf func(*testing.T) []byte) {
	bin := testutil.NeedBinary(t, "nginx")
	sys := mainConf(t)
	m, _, l := newFakeManager(t)
	m.ctl = noopCtl{}
	p := newTestPKI(t)
	writeFile(t, filepath.Join(l.PKIDir(), "ca.crt"), p.caPEM, 0o644)
	writeFile(t, filepath.Join(l.PKIDir(), "crl.pem"), p.crlPEM, 0o644)
	writeFile(t, filepath.Join(l.PKIDir(), "self-signed.pem"), p.serverPEM, 0o644)
	writeFile(t, filepath.Join(l.PKIDir(), "self-signed-key.pem"), p.serverKey, 0o600)
	tlsf := CertFiles(l, testDomain)
	writeFile(t, tlsf.Cert, p.serverPEM, 0o644)
	writeFile(t, tlsf.Key, p.serverKey, 0o600)

	r := testRendererFor(t, l)
	sh, err := r.Shared(SharedParams{ProxySecret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	ts, err := r.TunnelSecret(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	sh.Files = append(sh.Files, ts)
	ctx := context.Background()
	if err := m.WriteShared(ctx, sh); err != nil {
		t.Fatal(err)
	}
	var vs []Vhost
	for _, f := range []func(string, TLSFiles) (Vhost, error){r.PanelDomain, r.Auth, r.Tunnel} {
		v, err := f(testDomain, tlsf)
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	app, err := r.App(AppParams{Domain: testDomain, Subdomain: "app", RelayPort: 20000, TLS: tlsf})
	if err != nil {
		t.Fatal(err)
	}
	vs = append(vs, app)
	if checked {
		for i, sub := range []string{"wild", "wild-open"} {
			shared, wild, err := r.ForCheckedSites().WildcardApp(AppParams{Domain: testDomain, Subdomain: sub, RelayPort: 20001 + i, Public: i == 1, TLS: tlsf})
			if err != nil {
				t.Fatal(err)
			}
			vs = append(vs, shared, wild)
		}
	}
	if err := m.Apply(ctx, vs...); err != nil {
		t.Fatal(err)
	}
	if checked {
		if err := Publish(l); err != nil {
			t.Fatal(err)
		}
	}

	tmp := tempDir(t)
	conf := strings.NewReplacer(
		"/etc/nginx/portlama-checked", CheckedSitesDir(l),
		"/etc/nginx/conf.d", l.NginxConfD(),
		"/etc/nginx/sites-enabled", l.NginxSitesEnabled(),
		"/run/nginx.pid", filepath.Join(tmp, "nginx.pid"),
		"/var/log/nginx/", tmp+"/",
	).Replace(string(sys))
	cpath := filepath.Join(tmp, "nginx.conf")
	writeFile(t, cpath, []byte(conf), 0o644)
	out, err := exec.Command(bin, "-t", "-c", cpath, "-e", filepath.Join(tmp, "error.log")).CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t with this nginx.conf: %v\n%s\n%s", err, out, conf)
	}
	if !checked {
		return
	}
	// nginx reads the checked copy of a route (a broken copy fails the
	// test), not the panel's file.
	route := filepath.Join(RoutesDir(CheckedSitesDir(l)), AppVhostName("wild"))
	writeFile(t, route, []byte("wild."+testDomain+" a b;\n"), 0o644)
	out, err = exec.Command(bin, "-t", "-c", cpath, "-e", filepath.Join(tmp, "error.log")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), route) {
		t.Fatalf("nginx -t with a broken checked route: %v\n%s", err, out)
	}
}

type noopCtl struct{}

func (noopCtl) Test(context.Context) (string, error) { return "", nil }
func (noopCtl) Reload(context.Context) error         { return nil }

func TestSystemConfSitesDir(t *testing.T) {
	f, err := RenderSystemConf(SystemConf{NginxDir: "/etc/nginx", SitesDir: "/etc/nginx/portlama-checked"})
	if err != nil || !strings.Contains(string(f.Content), "include /etc/nginx/portlama-checked/*;") || strings.Contains(string(f.Content), "sites-enabled") {
		t.Fatalf("%v\n%s", err, f.Content)
	}
	if _, err := RenderSystemConf(SystemConf{NginxDir: "/etc/nginx", SitesDir: "relative"}); err == nil {
		t.Fatal("relative sites dir accepted")
	}
	if _, err := RenderSystemConf(SystemConf{NginxDir: "/etc/nginx", SitesDir: "/etc/nginx/x y"}); err == nil {
		t.Fatal("sites dir with a space accepted")
	}
}
