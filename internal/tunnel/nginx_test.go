package tunnel

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/nginx"
	"github.com/portlama/portlama/internal/pki"
	"github.com/portlama/portlama/internal/pki/pkitest"
	"github.com/portlama/portlama/internal/testutil"
	"github.com/portlama/portlama/internal/tunnels"
)

const nginxDomain = "t.localhost"

// edge is real nginx with the shared pieces, the tunnel secret snippet and
// the tunnel vhost in front of a real tunnel server.
type edge struct {
	*relay
	pki       *pki.PKI
	https     int
	caFile    string
	tunnelURL string // https://tunnel.t.localhost:<port>
}

func startEdge(t *testing.T) *edge {
	t.Helper()
	nginxBin := testutil.NeedBinary(t, "nginx")
	root, err := os.MkdirTemp("", "tng") // nginx paths and the socket: short and plain
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	layout := config.DirLayout(root)
	p, _, err := pki.Init(pki.Config{Dir: layout.PKIDir(), GenerateKey: pkitest.GenerateKey}, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := p.IssueServer([]string{nginxDomain, "*." + nginxDomain}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tlsFiles := nginx.CertFiles(layout, nginxDomain)
	for path, data := range map[string][]byte{tlsFiles.Cert: certPEM, tlsFiles.Key: keyPEM} {
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	addrs := config.Addrs{
		Panel: testutil.FreeAddr(t), Tunnel: testutil.FreeAddr(t), Auth: testutil.FreeAddr(t),
		NginxListenHost: "127.0.0.1", HTTPPort: testutil.FreePort(t), HTTPSPort: testutil.FreePort(t), PanelIPPort: testutil.FreePort(t),
	}
	// The tunnel server first: it creates the proxy secret nginx sends.
	tdir := layout.TunnelDir()
	if err := os.MkdirAll(tdir, 0o700); err != nil {
		t.Fatal(err)
	}
	r := &relay{dir: tdir, addr: addrs.Tunnel, acl: NewACL(filepath.Join(tdir, ACLFileName))}
	r.start(t)

	rd, err := nginx.NewRenderer(layout, addrs)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := nginx.NewInstance(nginx.InstanceConfig{Binary: nginxBin, Prefix: filepath.Join(root, "run"), NginxDir: layout.NginxDir, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := inst.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inst.Stop(context.Background()) })
	mgr := nginx.NewManager(layout, inst, nil)
	sh, err := rd.Shared(nginx.SharedParams{ProxySecret: strings.Repeat("ab", 32)})
	if err != nil {
		t.Fatal(err)
	}
	snippet, err := rd.TunnelSecret(r.secret)
	if err != nil {
		t.Fatal(err)
	}
	sh.Files = append(sh.Files, snippet)
	if err := mgr.WriteShared(ctx, sh); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(snippet.Path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret snippet mode: %v %v", fi, err)
	}
	vh, err := rd.Tunnel(nginxDomain, tlsFiles)
	if err != nil {
		t.Fatal(err)
	}
	if err := mgr.Apply(ctx, vh); err != nil {
		t.Fatal(err)
	}
	return &edge{relay: r, pki: p, https: addrs.HTTPSPort, caFile: p.Path(pki.CACertFile),
		tunnelURL: "https://tunnel." + nginxDomain + ":" + strconv.Itoa(addrs.HTTPSPort)}
}

// agentCert issues a client certificate CN=agent:<label> and writes it
// (and its key) to files for stock clients.
func (e *edge) agentCert(t *testing.T, label string) (tls.Certificate, string, string) {
	t.Helper()
	cred, err := e.pki.IssueClient(pki.AgentCN(label))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	crt, key := filepath.Join(dir, label+".crt"), filepath.Join(dir, label+".key")
	os.WriteFile(crt, cred.CertPEM, 0o600)
	os.WriteFile(key, cred.KeyPEM, 0o600)
	return tls.Certificate{Certificate: [][]byte{cred.Cert.Raw}, PrivateKey: cred.Key}, crt, key
}

func (e *edge) client(t *testing.T, cred string, cert *tls.Certificate) *Client {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(e.pki.CACert())
	tc := &tls.Config{RootCAs: pool}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	c, err := NewClient(ClientConfig{ServerURL: e.tunnelURL, Auth: cred, Fingerprint: e.srv.Fingerprint(), TLS: tc, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestThroughNginx is the production path: the agent through nginx's
// tunnel vhost (TLS, client certificate, proof headers) to the server.
func TestThroughNginx(t *testing.T) {
	e := startEdge(t)
	app := startApp(t, "through nginx")
	ps := testutil.FreePorts(t, 2)
	pa, pb := ps[0], ps[1]
	credA := e.addAgent(t, "alice", pa)
	credB := e.addAgent(t, "bob", pb)
	certA, _, _ := e.agentCert(t, "alice")

	c, err := run(t, e.client(t, credA, &certA), remote(pa, app))
	if err != nil {
		t.Fatalf("through nginx: %v", err)
	}
	mustGet(t, pa, "through nginx")
	c.stop()
	<-c.done
	waitFor(t, "the port to close", func() bool { return portClosed(pa) })

	// Agent A's certificate with agent B's credentials: refused, B's port
	// stays closed.
	_, err = run(t, e.client(t, credB, &certA), remote(pb, app))
	var te *Error
	if !errors.As(err, &te) || te.Kind != KindRefused || te.HTTPStatus != 0 {
		t.Fatalf("A's certificate with B's credentials: %v, want refused by the tunnel server", err)
	}
	if !portClosed(pb) {
		t.Fatal("B's port opened")
	}
	// No client certificate: nginx answers 400 before the tunnel server.
	if _, err := run(t, e.client(t, credA, nil), remote(pa, app)); !errors.As(err, &te) || te.Kind != KindRefused || te.HTTPStatus != 400 {
		t.Fatalf("without a client certificate: %v, want refused with HTTP 400", err)
	}
	// A certificate of another CA naming the same agent: 400 too.
	other := newTestPKI(t)
	fc := other.issue(t, 7, pki.AgentCN("alice"), x509.ExtKeyUsageClientAuth, nil)
	if _, err := run(t, e.client(t, credA, &fc), remote(pa, app)); !errors.As(err, &te) || te.Kind != KindRefused || te.HTTPStatus != 400 {
		t.Fatalf("foreign certificate: %v", err)
	}
	// Straight to the tunnel server, bypassing nginx: without the secret,
	// even with a forged certificate DN, the answer is 403 before the
	// upgrade.
	for name, h := range map[string]http.Header{
		"no headers": {},
		"forged DN without the secret": func() http.Header {
			h := http.Header{}
			h.Set(HeaderClientVerify, "SUCCESS")
			h.Set(HeaderClientDN, "CN=agent:alice,O=Portlama")
			return h
		}(),
	} {
		_, resp, err := (&websocket.Dialer{Subprotocols: []string{chiselProtocol}}).Dial("ws://"+e.addr, h)
		if err == nil || resp == nil || resp.StatusCode != 403 {
			t.Fatalf("%s: %v %v", name, resp, err)
		}
	}
	if !portClosed(pa) || !portClosed(pb) {
		t.Fatal("a relay port opened")
	}
}

// TestStockChiselBinaries: the pinned stock chisel client and an older
// release, with the chiselArgs agent-config returns plus --tls-* for
// nginx's mTLS, through real nginx: the tunnel works and an ACL denial is
// refused with chisel's own message.
func TestStockChiselBinaries(t *testing.T) {
	bins := map[string]string{
		"v1.12.0": testutil.NeedTool(t, "chisel-v1.12.0"),
		"v1.9.1":  testutil.NeedTool(t, "chisel-v1.9.1"),
	}
	e := startEdge(t)
	app := startApp(t, "stock chisel")
	for version, bin := range bins {
		t.Run(version, func(t *testing.T) {
			label := "stock-" + strings.ReplaceAll(version, ".", "-")
			ps := testutil.FreePorts(t, 2)
			p, denied := ps[0], ps[1]
			cred := e.addAgent(t, label, p)
			_, crt, key := e.agentCert(t, label)
			user, pass, _ := strings.Cut(cred, ":")
			cfg := tunnels.BuildAgentConfig(nginxDomain, e.tunnelURL, user, pass, e.srv.Fingerprint(),
				[]api.Tunnel{{RelayPort: p, TargetHost: "127.0.0.1", Port: app}})
			args := stockArgs(t, cfg.ChiselArgs, e, crt, key)

			cmd, out := startStock(t, bin, args)
			waitFor(t, "the stock client's tunnel", func() bool {
				got, err := httpGet(p)
				return err == nil && got == "stock chisel"
			})
			if st := e.srv.Status(); !slices.ContainsFunc(st.Agents, func(a AgentStatus) bool {
				return a.Label == label && len(a.Clients) == 1 && a.Clients[0].Client == "chisel"
			}) {
				t.Fatalf("status: %+v", st)
			}
			cmd.Process.Kill()
			cmd.Wait()

			// A remote outside the ACL: refused, the port never opens.
			cfg = tunnels.BuildAgentConfig(nginxDomain, e.tunnelURL, user, pass, e.srv.Fingerprint(),
				[]api.Tunnel{{RelayPort: denied, TargetHost: "127.0.0.1", Port: app}})
			cmd, out = startStock(t, bin, stockArgs(t, cfg.ChiselArgs, e, crt, key))
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-done: // v1.12.0 exits 1 after giving up, v1.9.1 exits 0
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("stock client kept running; output:\n%s", out)
			}
			want := "server: access to 'R:127.0.0.1:" + strconv.Itoa(denied) + "' denied"
			if !strings.Contains(out.String(), want) {
				t.Fatalf("stock client output lacks %q:\n%s", want, out)
			}
			if !portClosed(denied) {
				t.Fatal("denied port opened")
			}
		})
	}
}

// stockArgs turns agent-config's chiselArgs into a command line for this
// test: --tls-* inserted after "client" as the contract says, one attempt,
// and the server URL pointed at 127.0.0.1 with --hostname (the test's
// names under .localhost do not resolve here; chisel sends the name as
// SNI and Host).
func stockArgs(t *testing.T, chiselArgs []string, e *edge, crt, key string) []string {
	t.Helper()
	if len(chiselArgs) < 6 || chiselArgs[0] != "client" || chiselArgs[5] != e.tunnelURL {
		t.Fatalf("unexpected chiselArgs %q", chiselArgs)
	}
	args := []string{"client", "--tls-cert", crt, "--tls-key", key, "--tls-ca", e.caFile,
		"--hostname", "tunnel." + nginxDomain, "--max-retry-count", "0"}
	args = append(args, chiselArgs[1:5]...)
	args = append(args, "https://127.0.0.1:"+strconv.Itoa(e.https))
	return append(args, chiselArgs[6:]...)
}

func startStock(t *testing.T, bin string, args []string) (*exec.Cmd, *lockedBuffer) {
	t.Helper()
	out := &lockedBuffer{}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	return cmd, out
}
