package tunnel

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	chclient "github.com/jpillora/chisel/client"
	chshare "github.com/jpillora/chisel/share"
	"github.com/jpillora/chisel/share/ccrypto"
	"github.com/jpillora/chisel/share/cnet"
	"github.com/jpillora/chisel/share/settings"
	"github.com/portlama/portlama/internal/testutil"
	"golang.org/x/crypto/ssh"
)

func TestTunnelEndToEnd(t *testing.T) {
	r := newRelay(t)
	app := startApp(t, "hello from home")
	p := testutil.FreePort(t)
	cred := r.addAgent(t, "home", p)
	waitApplied(t, r, "home")

	if _, err := connect(t, r, cred, remote(p, app)); err != nil {
		t.Fatalf("connect: %v", err)
	}
	got, err := getEventually(p, "hello from home")
	if err != nil || got != "hello from home" {
		t.Fatalf("GET through relay port = %q, %v", got, err)
	}
	if n := r.srv.Sessions("home"); n != 1 {
		t.Fatalf("Sessions(home) = %d, want 1", n)
	}
}

// waitApplied waits until the server knows label (the ACL poll ran).
func waitApplied(t testing.TB, r *relay, label string) {
	t.Helper()
	if !eventually(2*time.Second, func() bool {
		r.srv.mu.Lock()
		defer r.srv.mu.Unlock()
		_, ok := r.srv.agents[label]
		return ok
	}) {
		t.Fatalf("acl for %s not applied", label)
	}
}

func TestTunnelDenials(t *testing.T) {
	r := newRelay(t)
	app := startApp(t, "app")
	pa, pb, other := testutil.FreePort(t), testutil.FreePort(t), testutil.FreePort(t)
	credA := r.addAgent(t, "alice", pa)
	credB := r.addAgent(t, "bob", pb)
	credNone := r.addAgent(t, "idle")
	waitApplied(t, r, "idle")

	cases := []struct {
		name    string
		auth    string
		remotes []string
		ports   []int // must never open
	}{
		{"another agent's port", credA, []string{remote(pb, app)}, []int{pb}},
		{"own and another's port", credA, []string{remote(pa, app), remote(pb, app)}, []int{pa, pb}},
		{"unassigned port", credA, []string{remote(other, app)}, []int{other}},
		{"all interfaces", credA, []string{"R:0.0.0.0:" + itoa(pa) + ":127.0.0.1:" + itoa(app)}, []int{pa}},
		{"wrong password", "alice:" + strings.Repeat("0", 64), []string{remote(pa, app)}, []int{pa}},
		{"unknown agent", "mallory:" + strings.Repeat("a", 64), []string{remote(pa, app)}, []int{pa}},
		{"placeholder user", noneUser + ":x", []string{remote(pa, app)}, []int{pa}},
		{"agent without ports", credNone, []string{remote(other, app)}, []int{other}},
		{"bob on alice's port", credB, []string{remote(pa, app)}, []int{pa}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := connect(t, r, tc.auth, tc.remotes...)
			if !isRefused(err) {
				t.Fatalf("connect err = %v, want ErrRefused", err)
			}
			for _, p := range tc.ports {
				if !portClosed(p) {
					t.Fatalf("port %d is open", p)
				}
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// stockClient runs an unmodified chisel client once and returns its error
// after it gives up.
func stockClient(t *testing.T, r *relay, auth string, remotes ...string) error {
	t.Helper()
	c, err := chclient.NewClient(&chclient.Config{
		Server:        "http://" + r.addr,
		Auth:          auth,
		Fingerprint:   r.srv.Fingerprint(),
		Remotes:       remotes,
		MaxRetryCount: 0,
	})
	if err != nil {
		t.Fatalf("chisel NewClient: %v", err)
	}
	c.Logger.Info = false
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- c.Wait() }()
	select {
	case err := <-errc:
		return err
	case <-time.After(3 * time.Second):
		c.Close()
		<-errc
		return nil // still connected: not refused
	}
}

func TestStockChiselClientDenials(t *testing.T) {
	r := newRelay(t)
	app := startApp(t, "app")
	pa := testutil.FreePort(t)
	credA := r.addAgent(t, "alice", pa)
	waitApplied(t, r, "alice")
	secret := startApp(t, "panel secret")

	cases := []struct {
		name    string
		auth    string
		remotes []string
		port    int
	}{
		{"no credentials", "", []string{remote(pa, app)}, pa},
		{"forward remote", credA, []string{"127.0.0.1:" + itoa(testutil.FreePort(t)) + ":127.0.0.1:" + itoa(secret)}, 0},
		{"forward socks", credA, []string{"127.0.0.1:" + itoa(testutil.FreePort(t)) + ":socks"}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := stockClient(t, r, tc.auth, tc.remotes...)
			if err == nil {
				t.Fatal("stock chisel client stayed connected; want refusal")
			}
			if tc.port != 0 && !portClosed(tc.port) {
				t.Fatalf("port %d is open", tc.port)
			}
		})
	}
}

func TestNoPortsNeverAllowsAnything(t *testing.T) {
	// An agent without ports must be matched by ^$, never by chisel's
	// allow-all empty list: try remotes of every shape.
	r := newRelay(t)
	cred := r.addAgent(t, "idle")
	waitApplied(t, r, "idle")
	app := startApp(t, "app")
	p := testutil.FreePort(t)
	for _, rem := range []string{
		remote(p, app),
		"R:" + itoa(p) + ":127.0.0.1:" + itoa(app),
		"R:127.0.0.1:" + itoa(p) + ":127.0.0.1:" + itoa(app) + "/udp",
		"127.0.0.1:" + itoa(p) + ":127.0.0.1:" + itoa(app),
		"socks",
	} {
		if err := stockClient(t, r, cred, rem); err == nil {
			t.Fatalf("remote %q accepted for an agent without ports", rem)
		}
		if !portClosed(p) {
			t.Fatalf("port %d open after %q", p, rem)
		}
	}
	// And with no agents at all (only the placeholder user).
	if err := r.acl.RemoveAgent(context.Background(), "idle"); err != nil {
		t.Fatal(err)
	}
	if !eventually(2*time.Second, func() bool { return stockClient(t, r, "", remote(p, app)) != nil }) {
		t.Fatal("anonymous client accepted with an empty ACL")
	}
	if err := stockClient(t, r, "anyone:pw", remote(p, app)); err == nil {
		t.Fatal("unknown user accepted with an empty ACL")
	}
	if !portClosed(p) {
		t.Fatalf("port %d open", p)
	}
}

func TestLiveACLChanges(t *testing.T) {
	r := newRelay(t)
	appA := startApp(t, "alice app")
	appB := startApp(t, "bob app")
	pa1, pa2, pb := testutil.FreePort(t), testutil.FreePort(t), testutil.FreePort(t)
	credA := r.addAgent(t, "alice", pa1)
	credB := r.addAgent(t, "bob", pb)
	waitApplied(t, r, "bob")
	fp := r.srv.Fingerprint()
	srv := r.srv

	bob, err := connect(t, r, credB, remote(pb, appB))
	if err != nil {
		t.Fatalf("bob connect: %v", err)
	}
	// Bob keeps being served throughout.
	bobOK := func() {
		t.Helper()
		if got, err := httpGet(pb); err != nil || got != "bob app" {
			t.Fatalf("bob's tunnel broke: %q, %v", got, err)
		}
	}
	if got, err := getEventually(pb, "bob app"); err != nil {
		t.Fatalf("bob: %q, %v", got, err)
	}

	// Port pa2 is not alice's yet.
	if _, err := connect(t, r, credA, remote(pa2, appA)); !isRefused(err) {
		t.Fatalf("pa2 before grant: %v, want refused", err)
	}
	// Grant it: usable within 1 s of trying again, server not restarted.
	if err := r.acl.SetPorts(context.Background(), "alice", []int{pa1, pa2}); err != nil {
		t.Fatal(err)
	}
	granted := time.Now()
	var alice *runningClient
	for alice == nil {
		c, err := connect(t, r, credA, remote(pa1, appA), remote(pa2, appA))
		if err == nil {
			alice = c
			break
		}
		if time.Since(granted) > time.Second {
			t.Fatalf("new port not usable 1 s after the acl change: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r.srv != srv || r.srv.Fingerprint() != fp {
		t.Fatal("server changed")
	}
	if got, err := getEventually(pa2, "alice app"); err != nil || got != "alice app" {
		t.Fatalf("GET pa2 = %q, %v", got, err)
	}
	bobOK()

	// Take pa2 away: alice's session is closed, pa2 stops listening.
	if err := r.acl.SetPorts(context.Background(), "alice", []int{pa1}); err != nil {
		t.Fatal(err)
	}
	removed := time.Now()
	select {
	case err := <-alice.err:
		if !errors.Is(err, ErrConnection) {
			t.Fatalf("alice ended with %v, want ErrConnection", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("alice's session still up 2 s after losing a port")
	}
	if !eventually(2*time.Second-time.Since(removed), func() bool { return portClosed(pa2) }) {
		t.Fatal("pa2 still listening")
	}
	bobOK()

	// Alice reconnects with her current config, then is removed (revoked).
	alice, err = connect(t, r, credA, remote(pa1, appA))
	if err != nil {
		t.Fatalf("alice reconnect: %v", err)
	}
	if err := r.acl.RemoveAgent(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-alice.err:
	case <-time.After(2 * time.Second):
		t.Fatal("revoked agent's session still up after 2 s")
	}
	if !eventually(time.Second, func() bool { return portClosed(pa1) }) {
		t.Fatal("revoked agent's port still listening")
	}
	if _, err := connect(t, r, credA, remote(pa1, appA)); !isRefused(err) {
		t.Fatalf("revoked agent reconnect: %v, want refused", err)
	}
	bobOK()
	select {
	case err := <-bob.err:
		t.Fatalf("bob's client ended: %v", err)
	default:
	}
	if r.srv.Sessions("bob") != 1 {
		t.Fatalf("bob sessions = %d", r.srv.Sessions("bob"))
	}
}

func TestRestartKeepsFingerprint(t *testing.T) {
	r := newRelay(t)
	app := startApp(t, "app")
	p := testutil.FreePort(t)
	cred := r.addAgent(t, "home", p)
	waitApplied(t, r, "home")
	fp := r.srv.Fingerprint()
	fileFP, err := ReadFingerprint(filepath.Join(r.dir, "fingerprint"))
	if err != nil || fileFP != fp {
		t.Fatalf("fingerprint file = %q, %v; want %q", fileFP, err, fp)
	}
	c, err := connect(t, r, cred, remote(p, app))
	if err != nil {
		t.Fatal(err)
	}
	r.stop()
	select {
	case <-c.err:
	case <-time.After(3 * time.Second):
		t.Fatal("client still connected after server stop")
	}
	if !eventually(2*time.Second, func() bool { return portClosed(p) }) {
		t.Fatal("relay port still open after server stop")
	}
	r.start(t)
	if r.srv.Fingerprint() != fp {
		t.Fatalf("fingerprint changed across restart: %s -> %s", fp, r.srv.Fingerprint())
	}
	if _, err := connect(t, r, cred, remote(p, app)); err != nil {
		t.Fatalf("reconnect after restart: %v", err)
	}
	if got, err := getEventually(p, "app"); err != nil || got != "app" {
		t.Fatalf("GET after restart = %q, %v", got, err)
	}
	for name, want := range map[string]os.FileMode{"server.key": 0o600, "fingerprint": 0o644, "acl.json": 0o600} {
		fi, err := os.Stat(filepath.Join(r.dir, name))
		if err != nil || fi.Mode().Perm() != want {
			t.Fatalf("%s mode = %v, %v; want %v", name, fi.Mode().Perm(), err, want)
		}
	}
}

func TestClientVerifiesFingerprint(t *testing.T) {
	r := newRelay(t)
	app := startApp(t, "app")
	p := testutil.FreePort(t)
	cred := r.addAgent(t, "home", p)
	waitApplied(t, r, "home")
	other, err := KeyFingerprint(mustKey(t))
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(ClientConfig{ServerURL: "http://" + r.addr, Auth: cred, Fingerprint: other, Remotes: []string{remote(p, app)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Run(ctx); !errors.Is(err, ErrUnverified) {
		t.Fatalf("Run = %v, want ErrUnverified", err)
	}
	if !portClosed(p) {
		t.Fatal("port opened despite fingerprint mismatch")
	}
}

func mustKey(t *testing.T) []byte {
	k, err := newChiselKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestChiselInternals(t *testing.T) {
	r := newRelay(t)
	if _, _, err := chiselInternals(r.srv.ch); err != nil {
		t.Fatal(err)
	}
}

func TestServerConfigRefusesPublicAddr(t *testing.T) {
	dir := t.TempDir()
	for _, addr := range []string{"0.0.0.0:9090", ":9090", "192.0.2.1:9090", "example.com:9090"} {
		_, err := NewServer(ServerConfig{Addr: addr, KeyFile: filepath.Join(dir, "k"), ACLFile: filepath.Join(dir, "a")})
		if err == nil {
			t.Fatalf("NewServer accepted %s", addr)
		}
	}
}

// TestChannelACL uses a hand-made chisel client that passes the handshake
// with a legitimate reverse remote and then asks, channel by channel, for
// forward connections to relay-local services: every one must be refused.
func TestChannelACL(t *testing.T) {
	r := newRelay(t)
	p := testutil.FreePort(t)
	cred := r.addAgent(t, "home", p)
	waitApplied(t, r, "home")
	var hits atomic.Int32
	secret := startCountingApp(t, &hits)

	ws, _, err := (&websocket.Dialer{Subprotocols: []string{chshare.ProtocolVersion}}).Dial("ws://"+r.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	user, pass, _ := strings.Cut(cred, ":")
	conn, chans, reqs, err := ssh.NewClientConn(cnet.NewWebSocketConn(ws), "", &ssh.ClientConfig{
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
		t.Fatal(err)
	}
	defer conn.Close()
	go ssh.DiscardRequests(reqs)
	go func() {
		for ch := range chans {
			ch.Reject(ssh.Prohibited, "test")
		}
	}()
	rem, _ := settings.DecodeRemote(remote(p, 9))
	ok, reply, err := conn.SendRequest("config", true, settings.EncodeConfig(settings.Config{Version: chshare.BuildVersion, Remotes: settings.Remotes{rem}}))
	if err != nil || !ok {
		t.Fatalf("config refused: %v %s", err, reply)
	}
	for _, dst := range []string{"127.0.0.1:" + itoa(secret), "localhost:" + itoa(secret), "socks", "R:127.0.0.1:" + itoa(p), "127.0.0.1:" + itoa(secret) + "/udp"} {
		ch, _, err := conn.OpenChannel("chisel", []byte(dst))
		if err == nil {
			ch.Close()
			t.Fatalf("channel to %q accepted", dst)
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("relay-local service was reached %d times", hits.Load())
	}
}

func startCountingApp(t *testing.T, hits *atomic.Int32) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			hits.Add(1)
			c.Close()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

func TestBrokenACLKeepsPrevious(t *testing.T) {
	r := newRelay(t)
	app := startApp(t, "app")
	p := testutil.FreePort(t)
	cred := r.addAgent(t, "home", p)
	waitApplied(t, r, "home")
	c, err := connect(t, r, cred, remote(p, app))
	if err != nil {
		t.Fatal(err)
	}
	broken := []byte(`{"agents":[{"label":"home"`)
	if err := os.WriteFile(r.acl.Path(), broken, 0o600); err != nil {
		t.Fatal(err)
	}
	if !eventually(2*time.Second, func() bool {
		r.srv.mu.Lock()
		defer r.srv.mu.Unlock()
		return bytes.Equal(r.srv.seenData, broken)
	}) {
		t.Fatal("server never looked at the broken acl")
	}
	r.srv.mu.Lock()
	_, ok := r.srv.agents["home"]
	r.srv.mu.Unlock()
	if !ok {
		t.Fatal("broken acl dropped the applied one")
	}
	select {
	case err := <-c.err:
		t.Fatalf("session closed by a broken acl: %v", err)
	default:
	}
	if got, err := getEventually(p, "app"); err != nil {
		t.Fatalf("tunnel broken: %q %v", got, err)
	}
	// A valid file again, without the agent: its session goes.
	if err := os.WriteFile(r.acl.Path(), []byte(`{"agents":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.err:
	case <-time.After(2 * time.Second):
		t.Fatal("session not closed after the agent left the acl")
	}
}

func TestCredentialChangeClosesSession(t *testing.T) {
	r := newRelay(t)
	app := startApp(t, "app")
	p := testutil.FreePort(t)
	cred := r.addAgent(t, "home", p)
	waitApplied(t, r, "home")
	c, err := connect(t, r, cred, remote(p, app))
	if err != nil {
		t.Fatal(err)
	}
	// Revoke and re-enrol: same label, new password.
	ctx := context.Background()
	if err := r.acl.RemoveAgent(ctx, "home"); err != nil {
		t.Fatal(err)
	}
	if err := r.acl.AddAgent(ctx, "home"); err != nil {
		t.Fatal(err)
	}
	if err := r.acl.SetPorts(ctx, "home", []int{p}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.err:
	case <-time.After(2 * time.Second):
		t.Fatal("session with the old credential still up")
	}
	if _, err := connect(t, r, cred, remote(p, app)); !isRefused(err) {
		t.Fatalf("old credential: %v, want refused", err)
	}
}

func TestTrackerForgetsEndedSessions(t *testing.T) {
	r := newRelay(t)
	app := startApp(t, "app")
	p := testutil.FreePort(t)
	cred := r.addAgent(t, "home", p)
	waitApplied(t, r, "home")
	for range 3 {
		c, err := connect(t, r, cred, remote(p, app))
		if err != nil {
			t.Fatal(err)
		}
		c.stop()
		<-c.c.Done()
	}
	if !eventually(3*time.Second, func() bool {
		r.srv.tracker.sweep()
		r.srv.tracker.mu.Lock()
		defer r.srv.tracker.mu.Unlock()
		return len(r.srv.tracker.conns) == 0 && len(r.srv.tracker.users) == 0
	}) {
		t.Fatalf("tracker still holds %d connections", len(r.srv.tracker.conns))
	}
	if r.srv.Sessions("home") != 0 {
		t.Fatal("Sessions counts ended sessions")
	}
}
