package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	"golang.org/x/crypto/bcrypt"

	"github.com/portlama/portlama/internal/agent"
	"github.com/portlama/portlama/internal/auth"
	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/nginx"
	"github.com/portlama/portlama/internal/panelclient"
	"github.com/portlama/portlama/internal/pki"
	"github.com/portlama/portlama/internal/pki/pkitest"
	"github.com/portlama/portlama/internal/sampleapp"
	"github.com/portlama/portlama/internal/testutil"
	"github.com/portlama/portlama/internal/tunnel"
)

const (
	domain    = "bench.localhost"
	agentName = "bench"
	benchUser = "bench"
	benchPass = "correct horse battery"

	// Host names of the app vhosts, all rendered by nginx.Renderer.App.
	subDirect = "direct" // nginx → app
	subTunnel = "app"    // nginx → relay port → tunnel (client on ws://, loopback) → app
	subWSS    = "appwss" // nginx → relay port → tunnel (client through nginx wss://tunnel.<d>, mTLS) → app
	subSecure = "secure" // like subTunnel, protected (auth_request to the auth server)
)

// relay is everything a benchmark drives: nginx with the app vhosts, the
// tunnel server and the agents (child processes), the auth server and the
// sample app (in this process).
type relay struct {
	root      string
	layout    config.Layout
	addrs     config.Addrs
	caFile    string
	appPort   int // the sample app
	relayPort int // bound by the tunnel server for the ws:// agent
	wssPort   int // bound by the tunnel server for the wss:// agent
	variants  []*variant
	authAddr  string
	cookie    string // a valid two-factor session for benchUser
	inst      *nginx.Instance
	server    *child   // the tunnel server
	agentWS   *child   // agent straight to the tunnel server (ws://)
	agentWSS  *child   // agent through nginx's tunnel vhost (wss://, mTLS): production
	agents    []*child // every agent process (ours and stock chisel clients)
	servers   []*child // every tunnel server process (ours and stock chisel)
}

// variant is an extra path for an A/B comparison in the same run: its own
// app vhost (sub), reaching the app directly or through its own agent and
// relay port, with optional edits of the rendered vhosts.
type variant struct {
	name       string
	sub        string
	direct     bool // nginx → app, no tunnel
	wss        bool // agent through nginx's tunnel vhost
	appEdit    func(*testing.B, []byte) []byte
	tunnelEdit func(*testing.B, []byte) []byte // wss only: a copy of the tunnel vhost on its own port
	ciphers    []string                        // the agent's SSH cipher preference
	env        []string                        // extra environment of the variant's agent
	// chisel runs stock chisel (bin/chisel-v1.12.0 server and client)
	// instead of ours, behind a copy of the tunnel vhost: the baseline.
	chisel bool
	// exe runs the variant's own tunnel server and agent from another
	// build of this test binary (-base): before and after in one run.
	exe string

	chiselPort int
	chiselSrv  *child
	serverAddr string // exe: the variant's own tunnel server
	server     *child

	relayPort  int
	tunnelPort int
	agent      *child
}

// replaceOnce is an edit that replaces old with new exactly once.
func replaceOnce(old, new string) func(*testing.B, []byte) []byte {
	return func(b *testing.B, c []byte) []byte {
		if bytes.Count(c, []byte(old)) != 1 {
			b.Fatalf("vhost edit: %q not found exactly once in:\n%s", old, c)
		}
		return bytes.Replace(c, []byte(old), []byte(new), 1)
	}
}

func fqdn(sub string) string { return sub + "." + domain }

// startRelay builds the whole relay under a temporary directory. Every
// process and goroutine it starts is stopped by b.Cleanup.
func startRelay(b *testing.B, variants ...*variant) *relay {
	b.Helper()
	nginxBin := testutil.NeedBinary(b, "nginx")
	root, err := os.MkdirTemp("", "portlama-bench-") // plain characters: nginx paths
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(root) })
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)

	r := &relay{root: root, layout: config.DirLayout(root)}

	// PKI: CA, admin client cert, CRL, self-signed; a CA-signed wildcard for
	// the domain vhosts ("localhost" too: see tunnelVhost).
	p, _, err := pki.Init(pki.Config{Dir: r.layout.PKIDir(), GenerateKey: pkitest.GenerateKey}, "127.0.0.1")
	if err != nil {
		b.Fatalf("pki init: %v", err)
	}
	r.caFile = p.Path(pki.CACertFile)
	certPEM, keyPEM, err := p.IssueServer([]string{domain, "*." + domain, "localhost"}, 24*time.Hour)
	if err != nil {
		b.Fatalf("issue server cert: %v", err)
	}
	tlsFiles := nginx.CertFiles(r.layout, domain)
	writeFile(b, tlsFiles.Cert, certPEM, 0o644)
	writeFile(b, tlsFiles.Key, keyPEM, 0o600)
	agentCred, err := p.IssueClient(pki.AgentCN(agentName))
	if err != nil {
		b.Fatalf("issue agent cert: %v", err)
	}

	// Sample app.
	appLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	r.appPort = appLn.Addr().(*net.TCPAddr).Port
	appDone := make(chan struct{})
	go func() { defer close(appDone); _ = sampleapp.Serve(ctx, appLn, "bench app") }()
	b.Cleanup(func() { cancel(); <-appDone })

	// Auth server: its address goes into conf.d, so listen first.
	authLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	r.authAddr = authLn.Addr().String()

	r.addrs = config.Addrs{
		Panel:           "127.0.0.1:" + strconv.Itoa(testutil.FreePort(b)), // nothing listens: not benchmarked
		Tunnel:          "127.0.0.1:" + strconv.Itoa(testutil.FreePort(b)),
		Auth:            r.authAddr,
		NginxListenHost: "127.0.0.1",
		HTTPPort:        testutil.FreePort(b),
		HTTPSPort:       testutil.FreePort(b),
		PanelIPPort:     testutil.FreePort(b),
	}
	r.relayPort = testutil.FreePort(b)
	r.wssPort = testutil.FreePort(b)
	relayPorts := []int{r.relayPort, r.wssPort}
	for _, v := range variants {
		if !v.direct {
			v.relayPort = testutil.FreePort(b)
			relayPorts = append(relayPorts, v.relayPort)
		}
		if v.chisel {
			v.chiselPort = testutil.FreePort(b)
			addr := "127.0.0.1:" + strconv.Itoa(v.chiselPort)
			v.tunnelEdit = func(b *testing.B, c []byte) []byte {
				return replaceOnce("proxy_pass http://"+r.addrs.Tunnel+";", "proxy_pass http://"+addr+";")(b, c)
			}
		}
		if v.exe != "" {
			if !v.wss {
				b.Fatalf("variant %s: a -base binary runs the wss path only", v.sub)
			}
			v.serverAddr = "127.0.0.1:" + strconv.Itoa(testutil.FreePort(b))
			v.tunnelEdit = func(b *testing.B, c []byte) []byte {
				return replaceOnce("proxy_pass http://"+r.addrs.Tunnel+";", "proxy_pass http://"+v.serverAddr+";")(b, c)
			}
		}
		if v.wss && v.tunnelEdit != nil {
			v.tunnelPort = testutil.FreePort(b)
		}
	}
	r.variants = variants

	r.startAuth(b, ctx, cancel, authLn)

	// Tunnel server (a child process) with one agent allowed every relay
	// port.
	tdir := r.layout.TunnelDir()
	if err := os.MkdirAll(tdir, 0o700); err != nil {
		b.Fatal(err)
	}
	acl := tunnel.NewACL(filepath.Join(tdir, tunnel.ACLFileName))
	if err := acl.AddAgent(ctx, agentName); err != nil {
		b.Fatal(err)
	}
	if err := acl.SetPorts(ctx, agentName, relayPorts); err != nil {
		b.Fatal(err)
	}
	cred, err := acl.Credential(ctx, agentName)
	if err != nil {
		b.Fatal(err)
	}
	tcfg := tunnel.DirConfig(tdir)
	r.server = startChild(b, "tunnel server", "tunnel-server", serverSpec{Dir: tdir, Addr: r.addrs.Tunnel, Pprof: *flagProfileDir != ""}, childEnv()...)
	fingerprint, err := tunnel.ReadFingerprint(tcfg.FingerprintFile)
	if err != nil {
		b.Fatal(err)
	}

	// nginx: shared pieces, the tunnel vhost and the app vhosts.
	rd, err := nginx.NewRenderer(r.layout, r.addrs)
	if err != nil {
		b.Fatal(err)
	}
	r.inst, err = nginx.NewInstance(nginx.InstanceConfig{Binary: nginxBin, Prefix: filepath.Join(root, "run"), NginxDir: r.layout.NginxDir})
	if err != nil {
		b.Fatal(err)
	}
	sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
	defer scancel()
	if err := r.inst.Start(sctx); err != nil {
		b.Fatalf("start nginx: %v", err)
	}
	b.Cleanup(func() { _ = r.inst.Stop(context.Background()) })
	mgr := nginx.NewManager(r.layout, r.inst, nil)
	sh, err := rd.Shared(nginx.SharedParams{ProxySecret: randomHex(b, 32)})
	if err != nil {
		b.Fatal(err)
	}
	tunnelSecret, err := tunnel.ReadProxySecret(tcfg.SecretFile)
	if err != nil {
		b.Fatal(err)
	}
	ts, err := rd.TunnelSecret(tunnelSecret)
	if err != nil {
		b.Fatal(err)
	}
	sh.Files = append(sh.Files, ts)
	if err := mgr.WriteShared(sctx, sh); err != nil {
		b.Fatalf("nginx shared config: %v", err)
	}
	var vhosts []nginx.Vhost
	for _, a := range []nginx.AppParams{
		{Subdomain: subDirect, RelayPort: r.appPort, Public: true},
		{Subdomain: subTunnel, RelayPort: r.relayPort, Public: true},
		{Subdomain: subWSS, RelayPort: r.wssPort, Public: true},
		{Subdomain: subSecure, RelayPort: r.relayPort, Public: false},
	} {
		a.Domain, a.TLS = domain, tlsFiles
		v, err := rd.App(a)
		if err != nil {
			b.Fatal(err)
		}
		vhosts = append(vhosts, v)
	}
	tv, err := rd.Tunnel(domain, tlsFiles)
	if err != nil {
		b.Fatal(err)
	}
	vhosts = append(vhosts, tunnelVhost(b, tv), r.sniVhost(tlsFiles))
	for _, v := range variants {
		port := v.relayPort
		if v.direct {
			port = r.appPort
		}
		av, err := rd.App(nginx.AppParams{Domain: domain, Subdomain: v.sub, RelayPort: port, Public: true, TLS: tlsFiles})
		if err != nil {
			b.Fatal(err)
		}
		if v.appEdit != nil {
			av.Content = v.appEdit(b, av.Content)
		}
		vhosts = append(vhosts, av)
		if v.tunnelPort != 0 {
			// A copy of the tunnel vhost on its own port, edited.
			c := tunnelVhost(b, tv)
			old := fmt.Sprintf("listen 127.0.0.1:%d ssl;", r.addrs.HTTPSPort)
			if !bytes.Contains(c.Content, []byte(old)) {
				b.Fatalf("tunnel vhost has no %q", old)
			}
			c.Content = bytes.Replace(c.Content, []byte(old), []byte(fmt.Sprintf("listen 127.0.0.1:%d ssl;", v.tunnelPort)), 1)
			c.Content = v.tunnelEdit(b, c.Content)
			c.Name = "portlama-bench-tunnel-" + v.sub
			vhosts = append(vhosts, c)
		}
	}
	if err := mgr.Apply(sctx, vhosts...); err != nil {
		b.Fatalf("nginx vhosts: %v", err)
	}

	// Agents: one straight to the tunnel server (ws://, the bench sends
	// nginx's proof headers), one the production way through nginx
	// (wss://tunnel.<d>, client certificate), one per tunnel variant.
	certFile, keyFile := filepath.Join(root, "agent.crt"), filepath.Join(root, "agent.key")
	writeFile(b, certFile, agentCred.CertPEM, 0o600)
	writeFile(b, keyFile, agentCred.KeyPEM, 0o600)
	tunnelsTo := func(relay int) []agent.AgentTunnel {
		return []agent.AgentTunnel{{ID: "1", FQDN: "bench", Port: r.appPort, TargetHost: "127.0.0.1", RelayPort: relay}}
	}
	wsSpec := func(relay int) agentSpec {
		return agentSpec{Server: "http://" + r.addrs.Tunnel, Auth: cred, Fingerprint: fingerprint, Tunnels: tunnelsTo(relay),
			Header: map[string]string{tunnel.HeaderSecret: tunnelSecret, tunnel.HeaderClientVerify: "SUCCESS",
				tunnel.HeaderClientDN: "CN=" + pki.AgentCN(agentName) + ",O=Portlama"},
			Pprof: *flagProfileDir != ""}
	}
	wssSpec := func(port, relay int) agentSpec {
		return agentSpec{Server: "https://localhost:" + strconv.Itoa(port), Auth: cred, Fingerprint: fingerprint, Tunnels: tunnelsTo(relay),
			CAFile: r.caFile, CertFile: certFile, KeyFile: keyFile, Pprof: *flagProfileDir != ""}
	}
	r.agentWS = startChild(b, "agent (ws)", "agent", wsSpec(r.relayPort), childEnv()...)
	r.agentWSS = startChild(b, "agent (wss)", "agent", wssSpec(r.addrs.HTTPSPort, r.wssPort), childEnv()...)
	r.agents = []*child{r.agentWS, r.agentWSS}
	r.servers = []*child{r.server}
	for _, v := range variants {
		if v.direct {
			continue
		}
		if v.chisel {
			bin := testutil.NeedTool(b, "chisel-v1.12.0")
			v.chiselSrv = startCmd(b, "chisel server", bin, "server", "--host", "127.0.0.1", "--port", strconv.Itoa(v.chiselPort),
				"--reverse", "--auth", cred, "--keyfile", tcfg.KeyFile)
			v.agent = startCmd(b, "chisel client", bin, "client", "--tls-cert", certFile, "--tls-key", keyFile, "--tls-ca", r.caFile,
				"--fingerprint", fingerprint, "--auth", cred, "https://localhost:"+strconv.Itoa(v.tunnelPort),
				fmt.Sprintf("R:127.0.0.1:%d:127.0.0.1:%d", v.relayPort, r.appPort))
			r.servers = append(r.servers, v.chiselSrv)
			r.agents = append(r.agents, v.agent)
			continue
		}
		spec := wsSpec(v.relayPort)
		if v.wss {
			port := r.addrs.HTTPSPort
			if v.tunnelPort != 0 {
				port = v.tunnelPort
			}
			spec = wssSpec(port, v.relayPort)
		}
		spec.Ciphers = v.ciphers
		exe := os.Args[0]
		if v.exe != "" {
			exe = v.exe
			// Its own server: a copy of the tunnel directory (ACL, key,
			// proxy secret), so the agent's credentials and fingerprint hold.
			dir := tdir + "-" + v.sub
			copyDir(b, tdir, dir)
			srv := startChildFrom(b, exe, "tunnel server ("+v.name+")", "tunnel-server",
				serverSpec{Dir: dir, Addr: v.serverAddr, Pprof: *flagProfileDir != ""}, childEnv()...)
			r.servers = append(r.servers, srv)
			v.server = srv
		}
		v.agent = startChildFrom(b, exe, "agent ("+v.name+")", "agent", spec, append(childEnv(), v.env...)...)
		r.agents = append(r.agents, v.agent)
	}

	// Every path answers with the sample app's page; the protected one
	// only with the session.
	hc := r.httpClient()
	for _, sub := range []string{subDirect, subTunnel, subWSS} {
		r.expect(b, hc, sub, "", 200, "bench app")
	}
	for _, v := range variants {
		r.expect(b, hc, v.sub, "", 200, "bench app")
	}
	r.expect(b, hc, subSecure, "", 302, "")
	r.expect(b, hc, subSecure, r.cookie, 200, "Hello, "+benchUser)
	return r
}

// copyDir copies the regular files of src into a new directory dst.
func copyDir(b *testing.B, src, dst string) {
	b.Helper()
	if err := os.MkdirAll(dst, 0o700); err != nil {
		b.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			b.Fatal(err)
		}
		writeFile(b, filepath.Join(dst, e.Name()), data, 0o600)
	}
}

// tunnelVhost adds "localhost" to the names of the rendered tunnel vhost:
// *.localhost names do not resolve here, so the client dials
// https://localhost:<port> (certificate valid for localhost, SNI and Host
// both "localhost", as nginx requires on an mTLS vhost). Nothing else in the
// vhost changes.
func tunnelVhost(b *testing.B, v nginx.Vhost) nginx.Vhost {
	old := "server_name tunnel." + domain + ";"
	if !bytes.Contains(v.Content, []byte(old)) {
		b.Fatalf("tunnel vhost has no %q:\n%s", old, v.Content)
	}
	v.Content = bytes.Replace(v.Content, []byte(old), []byte("server_name tunnel."+domain+" localhost;"), 1)
	return v
}

// sniVhost accepts the TLS handshake for SNI "127.0.0.1": wrk sends the
// URL host as SNI and cannot resolve the app names, so it connects to
// https://127.0.0.1:<port> with a Host header, which selects the app vhost
// for every request (no client certificate involved, so nginx allows it).
func (r *relay) sniVhost(tf nginx.TLSFiles) nginx.Vhost {
	c := fmt.Sprintf(`# Benchmark harness: TLS handshakes of wrk (SNI 127.0.0.1).
server {
    listen 127.0.0.1:%d ssl;
    server_name 127.0.0.1;
    ssl_certificate %s;
    ssl_certificate_key %s;
    include %s/portlama-tls.conf;
    return 421;
}
`, r.addrs.HTTPSPort, tf.Cert, tf.Key, r.layout.NginxSnippets())
	return nginx.Vhost{Name: "portlama-bench-sni", FQDN: "127.0.0.1", Content: []byte(c)}
}

// startAuth creates the user with a TOTP secret, starts the auth server on
// ln and logs in through its JSON API.
func (r *relay) startAuth(b *testing.B, ctx context.Context, cancel context.CancelFunc, ln net.Listener) {
	b.Helper()
	dir := r.layout.AuthDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		b.Fatal(err)
	}
	if _, err := auth.NewUserStore(auth.UsersFilePath(dir), bcrypt.MinCost).Create(auth.NewUser{
		Username: benchUser, DisplayName: "Bench", Email: "bench@example.com", Password: benchPass, Groups: []string{"users"},
	}); err != nil {
		b.Fatalf("create user: %v", err)
	}
	portal := "https://auth." + domain + ":" + "443"
	srv, err := auth.NewServer(auth.Config{Dir: dir, Domain: domain, PortalURL: portal, Addr: ln.Addr().String(), BcryptCost: bcrypt.MinCost})
	if err != nil {
		b.Fatal(err)
	}
	mln, err := auth.ListenManageSocket(auth.ManageSocketPath(dir))
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ctx, ln, mln) }()
	b.Cleanup(func() { cancel(); <-done })
	enr, err := srv.ResetTOTP(benchUser)
	if err != nil {
		b.Fatalf("reset TOTP: %v", err)
	}

	signIn := panelclient.NewPortal("http://"+ln.Addr().String(), http.DefaultClient)
	target := "https://" + fqdn(subSecure) + "/"
	code, err := totp.GenerateCode(enr.Secret, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	ck, err := signIn.Login(context.Background(), benchUser, benchPass, code, target)
	if err != nil {
		b.Fatalf("sign in: %v", err)
	}
	r.cookie = ck.Value
}

// httpClient talks HTTPS to nginx for any name under the domain.
func (r *relay) httpClient() *http.Client {
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(r.caFile)
	pool.AppendCertsFromPEM(pem)
	d := &net.Dialer{Timeout: 5 * time.Second}
	port := strconv.Itoa(r.addrs.HTTPSPort)
	return &http.Client{
		Timeout: 15 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return d.DialContext(ctx, network, "127.0.0.1:"+port)
			},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func (r *relay) url(sub, path string) string {
	return "https://" + fqdn(sub) + ":" + strconv.Itoa(r.addrs.HTTPSPort) + path
}

// expect fetches / of sub until it answers status with body containing
// want (the tunnel may need a moment), or fails the benchmark.
func (r *relay) expect(b *testing.B, hc *http.Client, sub, cookie string, status int, want string) {
	b.Helper()
	var last string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		req, _ := http.NewRequest(http.MethodGet, r.url(sub, "/"), nil)
		if cookie != "" {
			req.Header.Set("Cookie", auth.SessionCookieName+"="+cookie)
		}
		resp, err := hc.Do(req)
		if err != nil {
			last = err.Error()
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == status && strings.Contains(string(body), want) {
			return
		}
		last = fmt.Sprintf("%d %.200s", resp.StatusCode, body)
	}
	b.Fatalf("%s: want %d %q, last answer: %s", fqdn(sub), status, want, last)
}

func writeFile(b *testing.B, path string, data []byte, mode os.FileMode) {
	b.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		b.Fatal(err)
	}
}

func randomHex(b *testing.B, n int) string {
	buf := make([]byte, n)
	if _, err := rand.Read(buf); err != nil {
		b.Fatal(err)
	}
	return hex.EncodeToString(buf)
}
