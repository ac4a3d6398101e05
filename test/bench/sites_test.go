package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/nginx"
	"github.com/portlama/portlama/internal/pki"
	"github.com/portlama/portlama/internal/pki/pkitest"
	"github.com/portlama/portlama/internal/testutil"
)

const benchSiteID = "6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b"

// startSiteNginx runs nginx with the relay's shared pieces, the site vhost
// for site.<d> and, for comparison, a minimal vhost (plain.<d>) serving
// the same directory: root, TLS, nothing else.
func startSiteNginx(b *testing.B) *relay {
	b.Helper()
	nginxBin := testutil.NeedBinary(b, "nginx")
	root, err := os.MkdirTemp("", "portlama-bench-sites-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(root) })
	r := &relay{root: root, layout: config.DirLayout(root)}
	p, _, err := pki.Init(pki.Config{Dir: r.layout.PKIDir(), GenerateKey: pkitest.GenerateKey}, "127.0.0.1")
	if err != nil {
		b.Fatal(err)
	}
	r.caFile = p.Path(pki.CACertFile)
	certPEM, keyPEM, err := p.IssueServer([]string{domain, "*." + domain}, 24*time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	tf := nginx.CertFiles(r.layout, domain)
	writeFile(b, tf.Cert, certPEM, 0o644)
	writeFile(b, tf.Key, keyPEM, 0o600)
	r.addrs = config.Addrs{
		Panel: "127.0.0.1:" + strconv.Itoa(testutil.FreePort(b)), Tunnel: "127.0.0.1:" + strconv.Itoa(testutil.FreePort(b)),
		Auth: "127.0.0.1:" + strconv.Itoa(testutil.FreePort(b)), NginxListenHost: "127.0.0.1",
		HTTPPort: testutil.FreePort(b), HTTPSPort: testutil.FreePort(b), PanelIPPort: testutil.FreePort(b),
	}
	rd, err := nginx.NewRenderer(r.layout, r.addrs)
	if err != nil {
		b.Fatal(err)
	}
	r.inst, err = nginx.NewInstance(nginx.InstanceConfig{Binary: nginxBin, Prefix: filepath.Join(root, "run"), NginxDir: r.layout.NginxDir, Workers: 1})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.inst.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.inst.Stop(context.Background()) })
	mgr := nginx.NewManager(r.layout, r.inst, nil)
	sh, err := rd.Shared(nginx.SharedParams{ProxySecret: randomHex(b, 32)})
	if err != nil {
		b.Fatal(err)
	}
	if err := mgr.WriteShared(ctx, sh); err != nil {
		b.Fatal(err)
	}
	site, err := rd.Site(nginx.SiteParams{ID: benchSiteID, FQDN: fqdn("site"), TLS: tf})
	if err != nil {
		b.Fatal(err)
	}
	plain := nginx.Vhost{Name: "portlama-bench-plain", FQDN: fqdn("plain"), Content: []byte(fmt.Sprintf(`server {
    listen 127.0.0.1:%d ssl;
    server_name %s;
    ssl_certificate %s;
    ssl_certificate_key %s;
    root %s;
}
`, r.addrs.HTTPSPort, fqdn("plain"), tf.Cert, tf.Key, nginx.SiteRoot(r.layout, benchSiteID)))}
	if err := mgr.Apply(ctx, site, plain, r.sniVhost(tf)); err != nil {
		b.Fatal(err)
	}
	return r
}

// BenchmarkSite compares static files served through the site vhost
// (types, caching headers, security headers, gzip) with nginx serving the
// same directory with a minimal config: requests per second for a 1 KiB
// and a 1 MiB file, 32 keep-alive clients, interleaved rounds.
func BenchmarkSite(b *testing.B) {
	wrkBin := testutil.NeedBinary(b, "wrk")
	r := startSiteNginx(b)
	dir := nginx.SiteRoot(r.layout, benchSiteID)
	base := "https://127.0.0.1:" + strconv.Itoa(r.addrs.HTTPSPort)
	var paths []*path
	type pair struct{ site, plain *path }
	var pairs []pair
	for _, f := range []struct {
		name string
		size int
	}{{"file-1k.png", 1 << 10}, {"file-1m.png", 1 << 20}} {
		data := make([]byte, f.size)
		rand.Read(data)
		writeFile(b, filepath.Join(dir, f.name), data, 0o644)
		s := &path{name: "site vhost, " + f.name, url: base + "/" + f.name, headers: []string{"Host: " + fqdn("site")}}
		p := &path{name: "minimal nginx, " + f.name, url: base + "/" + f.name, headers: []string{"Host: " + fqdn("plain")}}
		paths = append(paths, s, p)
		pairs = append(pairs, pair{s, p})
	}
	for _, p := range paths {
		r.expectFile(b, p)
	}
	load0 := loadavg()
	b.ResetTimer()
	measure(b, r, wrkBin, paths)
	b.StopTimer()

	w := os.Stdout
	fmt.Fprintf(w, "\n== Site benchmark: %d keep-alive clients, %d × %s per path (interleaved), GOMAXPROCS=%d, %d CPUs\n",
		clients, *flagRounds, *flagDuration, runtime.GOMAXPROCS(0), runtime.NumCPU())
	fmt.Fprintf(w, "   loadavg before %s, after %s\n", load0, loadavg())
	fmt.Fprintf(w, "%-40s %10s %9s %9s %8s %8s   %s\n", "path", "req/s", "p50", "p99", "ratio", "ngx µs/r", "rounds")
	for _, pr := range pairs {
		for _, p := range []*path{pr.site, pr.plain} {
			ratio := "-"
			if p == pr.site {
				ratio = fmt.Sprintf("%.2f×", pr.site.meanRPS()/pr.plain.meanRPS())
			}
			fmt.Fprintf(w, "%-40s %10.0f %9s %9s %8s %8s   %s\n", p.name, p.meanRPS(),
				medianDur(p.p50).Round(time.Microsecond), medianDur(p.p99).Round(time.Microsecond), ratio,
				perUnit(p.cpu.nginx, p.reqs, 1), fmtRPS(p))
		}
	}
	fmt.Fprintln(w)
	b.ReportMetric(pairs[0].site.meanRPS()/pairs[0].plain.meanRPS(), "site/plain-1KiB")
	b.ReportMetric(pairs[1].site.meanRPS()/pairs[1].plain.meanRPS(), "site/plain-1MiB")
}

// expectFile checks that p answers 200 before it is measured.
func (r *relay) expectFile(b *testing.B, p *path) {
	b.Helper()
	hc := r.httpClient()
	req, _ := http.NewRequest(http.MethodGet, p.url, nil)
	req.Host = p.headers[0][len("Host: "):]
	req.URL.Host = req.Host + ":" + strconv.Itoa(r.addrs.HTTPSPort)
	resp, err := hc.Do(req)
	if err != nil {
		b.Fatalf("%s: %v", p.name, err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Fatalf("%s: %d", p.name, resp.StatusCode)
	}
}
