package nginx

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/testutil"
)

// The relay's nginx.conf with every vhost the relay writes passes nginx -t
// (paths moved into a temporary directory).
func TestRelayConfWithEveryVhost(t *testing.T) {
	bin := testutil.NeedBinary(t, "nginx")
	l := config.DirLayout(tempDir(t))
	renderAll(t, l)
	p := newTestPKI(t)
	writeFile(t, filepath.Join(l.PKIDir(), "ca.crt"), p.caPEM, 0o644)
	writeFile(t, filepath.Join(l.PKIDir(), "crl.pem"), p.crlPEM, 0o644)
	writeFile(t, filepath.Join(l.PKIDir(), "self-signed.pem"), p.serverPEM, 0o644)
	writeFile(t, filepath.Join(l.PKIDir(), "self-signed-key.pem"), p.serverKey, 0o600)
	tlsf := CertFiles(l, testDomain)
	writeFile(t, tlsf.Cert, p.serverPEM, 0o644)
	writeFile(t, tlsf.Key, p.serverKey, 0o600)
	// The distribution's mime.types and modules-enabled.
	mime, err := os.ReadFile("/etc/nginx/mime.types")
	if err != nil {
		t.Fatalf("the distribution's mime.types: %v (reinstall nginx-common)", err)
	}
	writeFile(t, filepath.Join(l.NginxDir, "mime.types"), mime, 0o644)
	if err := os.MkdirAll(filepath.Join(l.NginxDir, "modules-enabled"), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := tempDir(t)
	conf, err := RenderRelayConf(RelayConf{
		NginxDir:  l.NginxDir,
		User:      "root",
		PidFile:   filepath.Join(tmp, "nginx.pid"),
		ErrorLog:  filepath.Join(tmp, "error.log"),
		AccessLog: filepath.Join(tmp, "access.log"),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"worker_shutdown_timeout 600s;", "worker_connections 4096;", "worker_rlimit_nofile 10240;"} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("nginx.conf lacks %q", want)
		}
	}
	cpath := filepath.Join(tmp, "nginx.conf")
	writeFile(t, cpath, conf, 0o644)
	out, err := exec.Command(bin, "-t", "-c", cpath, "-e", filepath.Join(tmp, "error.log")).CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}

func TestRelayConfRefuses(t *testing.T) {
	for _, c := range []RelayConf{
		{NginxDir: "etc/nginx"},
		{NginxDir: "/etc/nginx", User: "root; load_module x"},
		{NginxDir: "/etc/nginx", ErrorLog: "/var/log/x y"},
		{NginxDir: "/etc/nginx", WorkerConnections: 10},
	} {
		if _, err := RenderRelayConf(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	b, err := RenderRelayConf(RelayConf{NginxDir: "/etc/nginx", ShutdownTimeout: 90 * time.Second})
	if err != nil || !strings.Contains(string(b), "worker_shutdown_timeout 90s;") || !strings.Contains(string(b), "include /etc/nginx/sites-enabled/*;") {
		t.Fatalf("%v\n%s", err, b)
	}
}

func TestRelayConfSitesDir(t *testing.T) {
	b, err := RenderRelayConf(RelayConf{NginxDir: "/etc/nginx", SitesDir: "/etc/nginx/portlama-checked"})
	if err != nil || !strings.Contains(string(b), "include /etc/nginx/portlama-checked/*;") || strings.Contains(string(b), "sites-enabled") {
		t.Fatalf("%v\n%s", err, b)
	}
	if _, err := RenderRelayConf(RelayConf{NginxDir: "/etc/nginx", SitesDir: "relative"}); err == nil {
		t.Fatal("relative sites dir accepted")
	}
}
