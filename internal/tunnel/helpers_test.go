package tunnel

import (
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
	"testing"
	"time"

	"github.com/portlama/portlama/internal/testutil"
)

// testLogger logs to the test output when -v and TUNNEL_TEST_LOG=1.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("TUNNEL_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

type relay struct {
	dir    string
	addr   string
	acl    *ACL
	srv    *Server
	cancel context.CancelFunc
	done   chan error
}

func (r *relay) files() ServerConfig {
	return ServerConfig{
		Addr:            r.addr,
		KeyFile:         filepath.Join(r.dir, "server.key"),
		FingerprintFile: filepath.Join(r.dir, "fingerprint"),
		ACLFile:         filepath.Join(r.dir, "acl.json"),
	}
}

// newRelay starts a tunnel server in a fresh directory.
func newRelay(t testing.TB) *relay {
	t.Helper()
	dir := t.TempDir()
	r := &relay{dir: dir, addr: testutil.FreeAddr(t), acl: NewACL(filepath.Join(dir, "acl.json"))}
	r.start(t)
	return r
}

// start (re)starts the server process on the relay's files.
func (r *relay) start(t testing.TB) {
	t.Helper()
	cfg := r.files()
	cfg.Logger = testLogger(t)
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

// addAgent registers label with ports and returns its credential.
func (r *relay) addAgent(t testing.TB, label string, ports ...int) string {
	t.Helper()
	ctx := context.Background()
	if err := r.acl.AddAgent(ctx, label); err != nil {
		t.Fatal(err)
	}
	if err := r.acl.SetPorts(ctx, label, ports); err != nil {
		t.Fatal(err)
	}
	cred, err := r.acl.Credential(ctx, label)
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

// startApp serves body on a loopback port and returns that port.
func startApp(t testing.TB, body string) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, body)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

func remote(relayPort, appPort int) string {
	return fmt.Sprintf("R:127.0.0.1:%d:127.0.0.1:%d", relayPort, appPort)
}

type runningClient struct {
	c    *Client
	stop context.CancelFunc
	err  chan error
}

// connect runs a Client; it fails the test unless the client either
// connects (wantOK) or ends with an error (returned).
func connect(t testing.TB, r *relay, auth string, remotes ...string) (*runningClient, error) {
	t.Helper()
	c, err := NewClient(ClientConfig{
		ServerURL:   "http://" + r.addr,
		Auth:        auth,
		Fingerprint: r.srv.Fingerprint(),
		Remotes:     remotes,
		Logger:      testLogger(t),
	})
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rc := &runningClient{c: c, stop: cancel, err: make(chan error, 1)}
	go func() { rc.err <- c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-c.Done() })
	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer rcancel()
	if err := c.Ready(rctx); err != nil {
		cancel()
		return nil, err
	}
	return rc, nil
}

// httpGet fetches http://127.0.0.1:port/ with a fresh connection.
func httpGet(port int) (string, error) {
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
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

// eventually polls cond every 20 ms until it holds or d passes.
func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func isRefused(err error) bool { return errors.Is(err, ErrRefused) }

// getEventually polls GET 127.0.0.1:port until it answers want (the relay
// binds reverse listeners right after accepting the session) or 2 s pass.
func getEventually(port int, want string) (string, error) {
	var (
		got string
		err error
	)
	eventually(2*time.Second, func() bool {
		got, err = httpGet(port)
		return err == nil && got == want
	})
	return got, err
}
