package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

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

// tunnelFront stands in for nginx's tunnel.<d> vhost: TLS with a
// certificate from the relay CA, a client certificate required, proxying
// (with WebSocket upgrades) to the tunnel server.
func tunnelFront(t *testing.T, ca *agenttest.CA, backend string) *httptest.Server {
	u, _ := url.Parse("http://" + backend)
	front := httptest.NewUnstartedServer(httputil.NewSingleHostReverseProxy(u))
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
}

func (r *tunnelRelay) start(t *testing.T) {
	t.Helper()
	srv, err := tunnel.NewServer(tunnel.ServerConfig{
		Addr: r.addr, KeyFile: filepath.Join(r.dir, "server.key"),
		FingerprintFile: filepath.Join(r.dir, "fingerprint"), ACLFile: filepath.Join(r.dir, "acl.json"),
		ReloadInterval: 100 * time.Millisecond,
	})
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

func appServer(t *testing.T, body string) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, body) })}
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() { _ = s.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

func getBody(port int) (string, error) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

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
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRunnerWithRealTunnelServer enrolls against the stand-in panel, then
// runs the real runner and tunnel client against the real tunnel server
// behind a TLS front that demands the client certificate: traffic flows,
// a tunnel added on the relay is picked up without a restart, and the agent
// reconnects after the tunnel server restarts.
func TestRunnerWithRealTunnelServer(t *testing.T) {
	p := agenttest.NewPanel(t)
	h := Home{Dir: t.TempDir()}
	if _, err := Setup(context.Background(), h, setupOpts(p)); err != nil {
		t.Fatal(err)
	}
	id, err := h.LoadIdentity("home")
	if err != nil {
		t.Fatal(err)
	}

	relay := &tunnelRelay{dir: t.TempDir(), addr: testutil.FreeAddr(t)}
	relay.start(t)
	t.Cleanup(relay.stop)
	acl := tunnel.NewACL(filepath.Join(relay.dir, "acl.json"))
	ctx := context.Background()
	if err := acl.AddAgent(ctx, "home"); err != nil {
		t.Fatal(err)
	}
	cred, _ := acl.Credential(ctx, "home")
	front := tunnelFront(t, p.CA, relay.addr)

	app1, app2 := appServer(t, "one"), appServer(t, "two")
	rp1, rp2 := testutil.FreePort(t), testutil.FreePort(t)
	setTunnels := func(ports ...[2]int) {
		var ts []AgentTunnel
		var relayPorts []int
		for i, pp := range ports {
			ts = append(ts, AgentTunnel{ID: strconv.Itoa(i), FQDN: "t" + strconv.Itoa(i) + ".demo.localhost", Port: pp[1], TargetHost: "127.0.0.1", RelayPort: pp[0]})
			relayPorts = append(relayPorts, pp[0])
		}
		if err := acl.SetPorts(ctx, "home", relayPorts); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(AgentConfig{Domain: "demo.localhost", ChiselServerURL: front.URL, Auth: cred,
			Fingerprint: relay.srv.Fingerprint(), Tunnels: ts})
		p.SetAgentConfig(b)
	}
	setTunnels([2]int{rp1, app1})
	time.Sleep(300 * time.Millisecond) // let the server reload acl.json

	tc, err := id.PanelTLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(&tLog{t: t}, nil))
	r, err := NewRunner(RunnerConfig{
		Fetch: NewFetcher(NewClient(id.Profile.PanelURL, tc)), NewSession: TunnelClientFactory(id, logger),
		PollInterval: 200 * time.Millisecond, MinBackoff: 100 * time.Millisecond, MaxBackoff: 400 * time.Millisecond,
		Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	defer func() {
		cancel()
		<-done
	}()

	waitBody(t, rp1, "one")

	// A second tunnel appears on the relay: picked up without a restart.
	setTunnels([2]int{rp1, app1}, [2]int{rp2, app2})
	waitBody(t, rp2, "two")
	waitBody(t, rp1, "one")

	// The tunnel server restarts: the agent reconnects by itself.
	relay.stop()
	if _, err := getBody(rp1); err == nil {
		t.Fatal("relay port still answers with the tunnel server down")
	}
	relay.start(t)
	waitBody(t, rp1, "one")
	waitBody(t, rp2, "two")
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
	good := tunnelFront(t, p.CA, "127.0.0.1:1")
	bad := tunnelFront(t, agenttest.NewCA(t, "Other CA"), "127.0.0.1:1")
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
