package tunnel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jpillora/chisel/share/ccrypto"
	"golang.org/x/crypto/ssh"

	"github.com/portlama/portlama/internal/testutil"
)

// testLogger logs to the test output when TUNNEL_TEST_LOG is set.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("TUNNEL_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// relay is a tunnel server in a fresh directory.
type relay struct {
	dir    string
	addr   string
	acl    *ACL
	srv    *Server
	secret string
	// keepAlive, when set before start, overrides the server's keep-alive.
	keepAlive time.Duration
	cancel    context.CancelFunc
	done      chan error
}

func (r *relay) config() ServerConfig {
	cfg := DirConfig(r.dir)
	cfg.Addr = r.addr
	return cfg
}

// newRelay starts a tunnel server in a fresh directory.
func newRelay(t testing.TB) *relay {
	t.Helper()
	return newRelayWith(t, 0)
}

// newRelayWith starts a tunnel server with the given keep-alive (0: the
// default).
func newRelayWith(t testing.TB, keepAlive time.Duration) *relay {
	t.Helper()
	// Unix socket paths are limited to ~100 bytes: keep the directory short.
	dir, err := os.MkdirTemp("", "tun")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	r := &relay{dir: dir, addr: testutil.FreeAddr(t), acl: NewACL(filepath.Join(dir, ACLFileName)), keepAlive: keepAlive}
	r.start(t)
	return r
}

// start (re)starts the server on the relay's files.
func (r *relay) start(t testing.TB) {
	t.Helper()
	cfg := r.config()
	cfg.Logger = testLogger(t)
	cfg.KeepAlive = r.keepAlive
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := srv.Start(ctx); err != nil {
		cancel()
		t.Fatalf("Start: %v", err)
	}
	r.srv, r.cancel, r.done = srv, cancel, make(chan error, 1)
	r.secret, err = ReadProxySecret(cfg.SecretFile)
	if err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- srv.Wait() }()
	t.Cleanup(r.stop)
}

func (r *relay) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	<-r.done
	r.cancel = nil
}

// reload applies acl.json now (what the panel's notification does) and
// fails the test if the server refuses it.
func (r *relay) reload(t testing.TB) {
	t.Helper()
	if _, err := r.srv.Reload(context.Background()); err != nil {
		t.Fatalf("reload: %v", err)
	}
}

// addAgent registers label with ports, applies the ACL and returns the
// credential.
func (r *relay) addAgent(t testing.TB, label string, ports ...int) string {
	t.Helper()
	ctx := context.Background()
	if err := r.acl.AddAgent(ctx, label); err != nil {
		t.Fatal(err)
	}
	if err := r.acl.SetPorts(ctx, label, ports); err != nil {
		t.Fatal(err)
	}
	r.reload(t)
	cred, err := r.acl.Credential(ctx, label)
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

func (r *relay) setPorts(t testing.TB, label string, ports ...int) {
	t.Helper()
	if err := r.acl.SetPorts(context.Background(), label, ports); err != nil {
		t.Fatal(err)
	}
	r.reload(t)
}

// nginxHeaders are the headers nginx's tunnel vhost sets for a verified
// certificate of agent certLabel.
func nginxHeaders(secret, certLabel string) http.Header {
	h := http.Header{}
	h.Set(HeaderSecret, secret)
	h.Set(HeaderClientVerify, "SUCCESS")
	h.Set(HeaderClientDN, "CN=agent:"+certLabel+",O=Portlama")
	return h
}

func labelOf(cred string) string { l, _, _ := strings.Cut(cred, ":"); return l }

// startApp serves body on a loopback port and returns that port.
func startApp(t testing.TB, body string) int {
	t.Helper()
	return serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, body)
	}))
}

func serveHTTP(t testing.TB, h http.Handler) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

func remote(relayPort, appPort int) string {
	return fmt.Sprintf("R:127.0.0.1:%d:127.0.0.1:%d", relayPort, appPort)
}

// running is a Client whose Run loop runs in the background.
type running struct {
	*Client
	stop context.CancelFunc
	err  chan error    // Run's result
	done chan struct{} // closed after Run returned
}

// newTestClient builds a client of r for cred presenting certLabel's
// certificate (through nginxHeaders).
func newTestClient(t testing.TB, r *relay, cred, certLabel string) *Client {
	t.Helper()
	c, err := NewClient(ClientConfig{
		ServerURL:   "http://" + r.addr,
		Auth:        cred,
		Fingerprint: r.srv.Fingerprint(),
		Header:      nginxHeaders(r.secret, certLabel),
		Logger:      testLogger(t),
	})
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c
}

// run starts c.Run once in the background and waits until the first
// attempt connected (returning nil) or ended (returning its error).
func run(t testing.TB, c *Client, remotes ...string) (*running, error) {
	t.Helper()
	if err := c.SetRemotes(context.Background(), remotes); err != nil {
		t.Fatalf("SetRemotes: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rc := &running{Client: c, stop: cancel, err: make(chan error, 1), done: make(chan struct{})}
	go func() { rc.err <- c.Run(ctx); close(rc.done) }()
	t.Cleanup(func() { cancel(); <-rc.done })
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	for {
		ch := c.Changed()
		st := c.State()
		if st.Status == StatusConnected && settled(st) {
			return rc, nil
		}
		select {
		case err := <-rc.err:
			return nil, err
		case <-ch:
		case <-wctx.Done():
			t.Fatalf("client neither connected nor failed within 10 s: %+v", st)
		}
	}
}

// settled: every remote was answered.
func settled(st ClientState) bool {
	for _, r := range st.Remotes {
		if r.Status == RemotePending {
			return false
		}
	}
	return true
}

// connect runs a client of cred with its own certificate.
func connect(t testing.TB, r *relay, cred string, remotes ...string) (*running, error) {
	t.Helper()
	return run(t, newTestClient(t, r, cred, labelOf(cred)), remotes...)
}

// waitState waits up to 10 s for cond.
func waitState(t testing.TB, c *Client, what string, cond func(ClientState) bool) ClientState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.Wait(ctx, cond)
	if err != nil {
		t.Fatalf("waiting for %s: %v (state %+v)", what, err, st)
	}
	return st
}

// httpGet fetches http://127.0.0.1:port/ with a fresh connection.
func httpGet(port int) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func mustGet(t testing.TB, port int, want string) {
	t.Helper()
	got, err := httpGet(port)
	if err != nil || got != want {
		t.Fatalf("GET relay port %d = %q, %v; want %q", port, got, err, want)
	}
}

// portClosed reports whether nothing accepts on 127.0.0.1:port.
func portClosed(port int) bool {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
	if err != nil {
		return true
	}
	c.Close()
	return false
}

func isRefused(err error) bool { return errors.Is(err, ErrRefused) }

// rawSession is a hand-made chisel client: WebSocket, SSH, config. It lets
// tests send what no well-behaved client sends.
type rawSession struct {
	conn  ssh.Conn
	chans <-chan ssh.NewChannel
	reqs  <-chan *ssh.Request
}

func dialRaw(t testing.TB, r *relay, cred string, header http.Header) (*rawSession, error) {
	t.Helper()
	ws, _, err := (&websocket.Dialer{Subprotocols: []string{chiselProtocol}}).Dial("ws://"+r.addr, header)
	if err != nil {
		return nil, err
	}
	user, pass, _ := strings.Cut(cred, ":")
	conn, chans, reqs, err := ssh.NewClientConn(newWSConn(ws, nil), "", &ssh.ClientConfig{
		User: user,
		Auth: []ssh.AuthMethod{ssh.Password(pass)},
		HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
			if ccrypto.FingerprintKey(k) != r.srv.Fingerprint() {
				return errors.New("fingerprint")
			}
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { conn.Close() })
	return &rawSession{conn: conn, chans: chans, reqs: reqs}, nil
}

// sha is the hex SHA-256 of b, for byte-exact comparisons.

// lockedBuffer collects a child process's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
