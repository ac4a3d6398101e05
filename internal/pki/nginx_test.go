package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/testutil"
)

// TestNginxAcceptsPKI runs a real nginx with the PKI's files: the IP
// certificate serves TLS, client certificates chain to the CA, nginx prints
// DN and serial as the panel expects (docs/api.md, "Headers nginx sets"), and a serial revoked through the
// CRL is refused after a reload while other certificates keep working.
func TestNginxAcceptsPKI(t *testing.T) {
	nginxBin := testutil.NeedBinary(t, "nginx")
	p, _ := newTestPKI(t)
	agentA, err := p.IssueClient(AgentCN("a"))
	if err != nil {
		t.Fatal(err)
	}
	agentB, err := p.IssueClient(AgentCN("b"))
	if err != nil {
		t.Fatal(err)
	}

	prefix := t.TempDir()
	port := testutil.FreePort(t)
	conf := filepath.Join(prefix, "nginx.conf")
	cfg := fmt.Sprintf(`daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path %[1]s/body; proxy_temp_path %[1]s/proxy; fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi; scgi_temp_path %[1]s/scgi;
  server {
    listen 127.0.0.1:%[2]d ssl;
    ssl_certificate %[3]s/self-signed.pem;
    ssl_certificate_key %[3]s/self-signed-key.pem;
    ssl_client_certificate %[3]s/ca.crt;
    ssl_crl %[3]s/crl.pem;
    ssl_verify_client on;
    location / { return 200 "$ssl_client_verify|$ssl_client_s_dn|$ssl_client_serial"; }
  }
}
`, prefix, port, p.Dir())
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, nginxBin, "-c", conf, "-p", prefix+"/", "-e", prefix+"/error.log")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGQUIT)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cancel()
			<-done
		}
		cancel()
	})

	roots := x509.NewCertPool()
	ipCert, _ := readCertFile(p.Path(SelfSignedCertFile))
	roots.AddCert(ipCert)
	get := func(cred *Credential) (int, string, error) {
		tlsCfg := &tls.Config{RootCAs: roots, ServerName: testIP}
		if cred != nil {
			tlsCfg.Certificates = []tls.Certificate{{Certificate: [][]byte{cred.Cert.Raw}, PrivateKey: cred.Key}}
		}
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg, DisableKeepAlives: true}}
		resp, err := c.Get(fmt.Sprintf("https://127.0.0.1:%d/", port))
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, _, err := get(agentA); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("nginx did not come up: %v\n%s", err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	adminKey, _ := readKeyFile(p.Path(ClientKeyFile))
	adminCert, _ := p.AdminCert()
	admin := &Credential{Issued: Issued{Cert: adminCert}, Key: adminKey}
	for _, tc := range []struct {
		cred *Credential
		dn   string
	}{{agentA, "CN=agent:a,O=Portlama"}, {admin, "CN=admin,O=Portlama"}} {
		code, body, err := get(tc.cred)
		want := "SUCCESS|" + tc.dn + "|"
		if err != nil || code != 200 || !strings.HasPrefix(body, want) {
			t.Fatalf("GET with %s = %d %q %v; want 200 %q…", tc.dn, code, body, err, want)
		}
		if nginxSerial := strings.Split(body, "|")[2]; !SerialsEqual(nginxSerial, FormatSerial(tc.cred.Cert.SerialNumber)) {
			t.Errorf("nginx prints serial %s, we store %s", nginxSerial, FormatSerial(tc.cred.Cert.SerialNumber))
		}
	}
	if code, _, err := get(nil); err == nil && code == 200 {
		t.Error("request without a client certificate got 200")
	}

	if err := p.Revoke(agentA.Serial, "agent:a"); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		code, _, err := get(agentA)
		if err == nil && code == 400 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("revoked certificate still accepted after reload: %d %v\n%s", code, err, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, body, err := get(agentB); err != nil || code != 200 {
		t.Errorf("unrevoked certificate refused after the CRL change: %d %q %v", code, body, err)
	}
}
