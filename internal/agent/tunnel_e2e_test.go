package agent

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/portlama/portlama/internal/agent/agenttest"
	"github.com/portlama/portlama/internal/testutil"
	"github.com/portlama/portlama/internal/tunnel"
)

// tLog sends slog output to t.Log.
type tLog struct {
	mu sync.Mutex
	t  testing.TB
}

func (w *tLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// tunnelFront stands in for nginx's tunnel.<d> vhost (the tunnel and nginx
// packages test the real one): TLS with a certificate from the relay CA, a
// client certificate required, proxying with WebSocket upgrades to the
// tunnel server with the proof headers nginx sets.
func tunnelFront(t *testing.T, ca *agenttest.CA, r *tunnelRelay) *httptest.Server {
	u, _ := url.Parse("http://" + r.addr)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0)
	front := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		secret, _ := tunnel.ReadProxySecret(filepath.Join(r.dir, tunnel.ProxySecretFileName))
		req.Header.Set(tunnel.HeaderSecret, secret)
		req.Header.Set(tunnel.HeaderClientVerify, "SUCCESS")
		req.Header.Set(tunnel.HeaderClientDN, "CN="+req.TLS.PeerCertificates[0].Subject.CommonName+",O=Portlama")
		rp.ServeHTTP(w, req)
	}))
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	front.TLS = &tls.Config{
		Certificates: []tls.Certificate{ca.ServerCert(t)},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	}
	front.Config.ErrorLog = log.New(io.Discard, "", 0)
	front.StartTLS()
	t.Cleanup(front.Close)
	return front
}

type tunnelRelay struct {
	dir, addr string
	cancel    context.CancelFunc
	done      chan error
	srv       *tunnel.Server
	acl       *tunnel.ACL
}

func newTunnelRelay(t *testing.T) *tunnelRelay {
	dir, err := os.MkdirTemp("", "agt") // short: the management socket path
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	r := &tunnelRelay{dir: dir, addr: testutil.FreeAddr(t), acl: tunnel.NewACL(filepath.Join(dir, tunnel.ACLFileName))}
	r.start(t)
	t.Cleanup(r.stop)
	return r
}

func (r *tunnelRelay) start(t *testing.T) {
	t.Helper()
	cfg := tunnel.DirConfig(r.dir)
	cfg.Addr = r.addr
	srv, err := tunnel.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := srv.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	r.srv, r.cancel, r.done = srv, cancel, make(chan error, 1)
	go func() { r.done <- srv.Wait() }()
}

func (r *tunnelRelay) stop() {
	if r.cancel != nil {
		r.cancel()
		<-r.done
		r.cancel = nil
	}
}

// setPorts changes the agent's ports and applies them (what the panel's
// notification does).
func (r *tunnelRelay) setPorts(t *testing.T, label string, ports ...int) {
	t.Helper()
	if err := r.acl.SetPorts(context.Background(), label, ports); err != nil {
		t.Fatal(err)
	}
	if _, err := r.srv.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func appServer(t *testing.T, body string) int {
	t.Helper()
	return serveApp(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, body) }))
}

func serveApp(t *testing.T, h http.Handler) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &http.Server{Handler: h}
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() { _ = s.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

func getBody(port int) (string, error) {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// waitBody polls the relay port until it answers want: the runner's
// progress has no signal of its own outside the process.
func waitBody(t *testing.T, port int, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, err := getBody(port)
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay port %d: got %q, %v; want %q", port, got, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// agentSetup enrolls "home" against the stand-in panel and starts a tunnel
// server with the agent's credentials and a TLS front for it.
type agentSetup struct {
	p     *agenttest.Panel
	id    *Identity
	relay *tunnelRelay
	front *httptest.Server
	cred  string
}

func newAgentSetup(t *testing.T) *agentSetup {
	p := agenttest.NewPanel(t)
	h := Home{Dir: t.TempDir()}
	if _, err := Setup(context.Background(), h, setupOpts(p)); err != nil {
		t.Fatal(err)
	}
	id, err := h.LoadIdentity("home")
	if err != nil {
		t.Fatal(err)
	}
	r := newTunnelRelay(t)
	if err := r.acl.AddAgent(context.Background(), "home"); err != nil {
		t.Fatal(err)
	}
	cred, _ := r.acl.Credential(context.Background(), "home")
	return &agentSetup{p: p, id: id, relay: r, front: tunnelFront(t, p.CA, r), cred: cred}
}

// setTunnels makes ts the agent's enabled tunnels: ACL first (applied),
// then agent-config, as the panel does.
func (a *agentSetup) setTunnels(t *testing.T, ts ...AgentTunnel) {
	t.Helper()
	var ports []int
	for _, tn := range ts {
		ports = append(ports, tn.RelayPort)
	}
	a.relay.setPorts(t, "home", ports...)
	b, _ := json.Marshal(AgentConfig{Domain: "demo.localhost", ChiselServerURL: a.front.URL, Auth: a.cred,
		Fingerprint: a.relay.srv.Fingerprint(), Tunnels: ts})
	a.p.SetAgentConfig(b)
}

// runner starts the real runner with the real tunnel client.
func (a *agentSetup) runner(t *testing.T, logs *recLog) *Runner {
	t.Helper()
	tc, err := a.id.PanelTLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(&tLog{t: t}, nil))
	var l *slog.Logger = logger
	if logs != nil {
		l = slog.New(logs)
	}
	r, err := NewRunner(RunnerConfig{
		Fetch: NewFetcher(NewClient(a.id.Profile.PanelURL, tc)), NewClient: TunnelClientFactory(a.id, "test", logger),
		PollInterval: 50 * time.Millisecond, MinBackoff: 50 * time.Millisecond, MaxBackoff: 400 * time.Millisecond,
		Logger: l,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if n := r.workers.Load(); n != 0 {
			t.Errorf("%d connection goroutines left", n)
		}
	})
	return r
}

// waitRunner waits until cond holds for the runner's state.
func waitRunner(t *testing.T, r *Runner, what string, cond func(RunnerState) bool) {
	t.Helper()
	waitFor(t, what, func() bool { return cond(r.State()) })
}

func allConnected(n int) func(RunnerState) bool {
	return func(st RunnerState) bool {
		if st.Connection != TunnelConnected || len(st.Tunnels) != n {
			return false
		}
		for _, ts := range st.Tunnels {
			if ts.State != TunnelConnected {
				return false
			}
		}
		return true
	}
}

// TestRunnerWithRealTunnelServer: the real runner and tunnel client against
// the real tunnel server behind a TLS front that demands the client
// certificate: traffic flows, a tunnel added on the relay is picked up
// without a restart, and the agent reconnects after the tunnel server
// restarts.
func TestRunnerWithRealTunnelServer(t *testing.T) {
	a := newAgentSetup(t)
	app1, app2 := appServer(t, "one"), appServer(t, "two")
	ps := testutil.FreePorts(t, 2)
	rp1, rp2 := ps[0], ps[1]
	t1 := AgentTunnel{ID: "1", FQDN: "t1.demo.localhost", Port: app1, TargetHost: "127.0.0.1", RelayPort: rp1}
	t2 := AgentTunnel{ID: "2", FQDN: "t2.demo.localhost", Port: app2, TargetHost: "127.0.0.1", RelayPort: rp2}
	a.setTunnels(t, t1)
	r := a.runner(t, nil)
	waitRunner(t, r, "tunnel 1", allConnected(1))
	waitBody(t, rp1, "one")

	a.setTunnels(t, t1, t2)
	waitRunner(t, r, "tunnel 2", allConnected(2))
	waitBody(t, rp2, "two")
	if n := a.relay.srv.Sessions("home"); n != 1 {
		t.Fatalf("%d sessions for two tunnels, want one", n)
	}

	// The tunnel server restarts: the agent reconnects by itself.
	a.relay.stop()
	if _, err := getBody(rp1); err == nil {
		t.Fatal("relay port still answers with the tunnel server down")
	}
	waitRunner(t, r, "the runner to notice", func(st RunnerState) bool { return st.Connection == TunnelReconnecting })
	if st := r.State(); st.Tunnels[0].State != TunnelReconnecting || !strings.Contains(st.Tunnels[0].Reason, "lost") {
		t.Fatalf("state while the server is down: %+v", st)
	}
	a.relay.start(t)
	waitRunner(t, r, "reconnect", allConnected(2))
	waitBody(t, rp1, "one")
	waitBody(t, rp2, "two")
}

// TestRunnerRefusedCertificate: credentials of another agent's certificate
// (here: the relay knows no such agent) show as refused with the reason.
func TestRunnerRefusedCredentials(t *testing.T) {
	a := newAgentSetup(t)
	rp := testutil.FreePort(t)
	a.setTunnels(t, AgentTunnel{ID: "1", FQDN: "t1.demo.localhost", Port: appServer(t, "x"), TargetHost: "127.0.0.1", RelayPort: rp})
	b, _ := json.Marshal(AgentConfig{Domain: "demo.localhost", ChiselServerURL: a.front.URL, Auth: "home:" + strings.Repeat("0", 64),
		Fingerprint: a.relay.srv.Fingerprint(), Tunnels: []AgentTunnel{{ID: "1", FQDN: "t1.demo.localhost", Port: 80, TargetHost: "127.0.0.1", RelayPort: rp}}})
	a.p.SetAgentConfig(b)
	logs := &recLog{}
	a.runner(t, logs)
	waitFor(t, "the refusal", func() bool { return len(logs.find("tunnel connection refused")) >= 2 })
	if l := logs.find("tunnel connection refused")[0]; !strings.Contains(l.attrs["reason"], "refused the credentials") {
		t.Fatalf("reason = %q", l.attrs["reason"])
	}
	logs.mustNotContain(t, strings.Repeat("0", 64))
}

func detBytes() io.Reader { return rand.NewChaCha8([32]byte{1}) }

// streamApp serves /big?size=N (deterministic bytes), /ws (echo) and "/".
func streamApp(t *testing.T, name string) int {
	up := websocket.Upgrader{}
	return serveApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			n, _ := strconv.ParseInt(r.URL.Query().Get("size"), 10, 64)
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
			io.Copy(w, io.LimitReader(detBytes(), n))
		case "/ws":
			c, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer c.Close()
			for {
				typ, m, err := c.ReadMessage()
				if err != nil || c.WriteMessage(typ, m) != nil {
					return
				}
			}
		default:
			io.WriteString(w, name)
		}
	}))
}

// TestRunnerTunnelChangesKeepTransfers: tunnel B is disabled, re-ported
// and deleted through the panel's path (ACL applied, then agent-config)
// while a 64 MiB download and a WebSocket run through tunnel A of the same
// agent: A's transfers complete byte-exact and A never goes down.
func TestRunnerTunnelChangesKeepTransfers(t *testing.T) {
	const size = 64 << 20
	a := newAgentSetup(t)
	appA, appB := streamApp(t, "A"), streamApp(t, "B")
	ps := testutil.FreePorts(t, 3)
	rpA, rpB, rpB2 := ps[0], ps[1], ps[2]
	tA := AgentTunnel{ID: "a", FQDN: "a.demo.localhost", Port: appA, TargetHost: "127.0.0.1", RelayPort: rpA}
	tB := AgentTunnel{ID: "b", FQDN: "b.demo.localhost", Port: appB, TargetHost: "127.0.0.1", RelayPort: rpB}
	a.setTunnels(t, tA, tB)
	logs := &recLog{}
	r := a.runner(t, logs)
	waitRunner(t, r, "both tunnels", allConnected(2))

	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Get(fmt.Sprintf("http://127.0.0.1:%d/big?size=%d", rpA, size))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	if _, err := io.CopyN(h, resp.Body, 1<<20); err != nil {
		t.Fatal(err)
	}
	ws, _, err := websocket.DefaultDialer.Dial(fmt.Sprintf("ws://127.0.0.1:%d/ws", rpA), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	echo := func(i int) {
		t.Helper()
		msg := []byte("message " + strconv.Itoa(i))
		ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		if err := ws.WriteMessage(websocket.TextMessage, msg); err != nil {
			t.Fatal(err)
		}
		if _, got, err := ws.ReadMessage(); err != nil || string(got) != string(msg) {
			t.Fatalf("echo %d: %q %v", i, got, err)
		}
	}
	echo(0)

	tB2 := tB
	tB2.RelayPort = rpB2
	closed := func(port int) func() {
		return func() {
			if _, err := getBody(port); err == nil {
				t.Fatalf("relay port %d still answers", port)
			}
		}
	}
	steps := []struct {
		name  string
		ts    []AgentTunnel
		check func()
	}{
		{"disable B", []AgentTunnel{tA}, closed(rpB)},
		{"re-port B", []AgentTunnel{tA, tB2}, func() { waitBody(t, rpB2, "B"); closed(rpB)() }},
		{"delete B", []AgentTunnel{tA}, closed(rpB2)},
	}
	for i, step := range steps {
		a.setTunnels(t, step.ts...)
		// The relay applied the change before setTunnels returned.
		if step.name != "re-port B" {
			step.check()
		}
		waitRunner(t, r, step.name, allConnected(len(step.ts)))
		step.check()
		echo(i + 1)
		if _, err := io.CopyN(h, resp.Body, 4<<20); err != nil {
			t.Fatalf("download broke at %s: %v", step.name, err)
		}
	}
	n, err := io.Copy(h, resp.Body)
	if err != nil || n+(1<<20)+3*(4<<20) != size {
		t.Fatalf("download: %d bytes, %v", n, err)
	}
	want := sha256.New()
	io.Copy(want, io.LimitReader(detBytes(), size))
	if string(h.Sum(nil)) != string(want.Sum(nil)) {
		t.Fatal("download through tunnel A is not byte-exact")
	}
	echo(9)
	for _, l := range logs.find("tunnel down; reconnecting") {
		t.Fatalf("a tunnel went down: %v", l)
	}
	if n := a.relay.srv.Sessions("home"); n != 1 {
		t.Fatalf("%d sessions", n)
	}
}

// TestTunnelTLSRefusesForeignServer: the tunnel server's certificate must
// chain to the system roots or the pinned relay CA.
func TestTunnelTLSRefusesForeignServer(t *testing.T) {
	p := agenttest.NewPanel(t)
	h := Home{Dir: t.TempDir()}
	if _, err := Setup(context.Background(), h, setupOpts(p)); err != nil {
		t.Fatal(err)
	}
	id, _ := h.LoadIdentity("home")
	r := &tunnelRelay{addr: "127.0.0.1:1"}
	good := tunnelFront(t, p.CA, r)
	bad := tunnelFront(t, agenttest.NewCA(t, "Other CA"), r)
	for _, c := range []struct {
		url    string
		wantOK bool
	}{{good.URL, true}, {bad.URL, false}} {
		tc, err := id.TunnelTLSConfig(c.url)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := tls.Dial("tcp", strings.TrimPrefix(c.url, "https://"), tc)
		if err == nil {
			err = conn.Handshake()
			conn.Close()
		}
		if (err == nil) != c.wantOK {
			t.Fatalf("%s: handshake err = %v, want ok=%v", c.url, err, c.wantOK)
		}
		var verr *tls.CertificateVerificationError
		if !c.wantOK && !errors.As(err, &verr) {
			t.Fatalf("want a verification error, got %v", err)
		}
	}
}
