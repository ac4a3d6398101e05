package tunnel

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jpillora/chisel/share/ccrypto"
	"golang.org/x/crypto/ssh"

	"github.com/portlama/portlama/internal/testutil"
)

// streamApp serves GET /big?size=N (N deterministic pseudo-random bytes,
// see expectedSHA), GET /ws (a WebSocket echo) and "/" (its name).
func streamApp(t testing.TB, name string) int {
	t.Helper()
	up := websocket.Upgrader{}
	return serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			n, _ := strconv.ParseInt(r.URL.Query().Get("size"), 10, 64)
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
			io.Copy(w, io.LimitReader(detStream(), n))
		case "/ws":
			c, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer c.Close()
			for {
				typ, msg, err := c.ReadMessage()
				if err != nil {
					return
				}
				if c.WriteMessage(typ, msg) != nil {
					return
				}
			}
		default:
			io.WriteString(w, name)
		}
	}))
}

func detStream() io.Reader { return mrand.NewChaCha8([32]byte{'p', 'o', 'r', 't', 'l', 'a', 'm', 'a'}) }

func expectedSHA(n int64) string {
	h := sha256.New()
	io.Copy(h, io.LimitReader(detStream(), n))
	return hex.EncodeToString(h.Sum(nil))
}

// download is a GET /big in progress: read some, then the rest.
type download struct {
	resp *http.Response
	h    hash.Hash
	n    int64
}

func startDownload(t testing.TB, port int, size int64) *download {
	t.Helper()
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Get(fmt.Sprintf("http://127.0.0.1:%d/big?size=%d", port, size))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("download: %s", resp.Status)
	}
	return &download{resp: resp, h: sha256.New()}
}

func (d *download) read(t testing.TB, n int64) {
	t.Helper()
	m, err := io.CopyN(d.h, d.resp.Body, n)
	d.n += m
	if err != nil {
		t.Fatalf("download broke after %d bytes: %v", d.n, err)
	}
}

// finish reads the rest and checks the whole body byte for byte.
func (d *download) finish(t testing.TB, size int64) {
	t.Helper()
	m, err := io.Copy(d.h, d.resp.Body)
	d.n += m
	d.resp.Body.Close()
	if err != nil || d.n != size {
		t.Fatalf("download: %d of %d bytes, %v", d.n, size, err)
	}
	if got := hex.EncodeToString(d.h.Sum(nil)); got != expectedSHA(size) {
		t.Fatal("download content differs from what the app sent")
	}
}

// echoWS is a WebSocket through a relay port.
type echoWS struct {
	c *websocket.Conn
	i int
}

func dialWS(t testing.TB, port int) *echoWS {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial(fmt.Sprintf("ws://127.0.0.1:%d/ws", port), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &echoWS{c: c}
}

func (e *echoWS) roundTrip(t testing.TB) {
	t.Helper()
	e.i++
	msg := fmt.Sprintf("message %d %s", e.i, make([]byte, e.i%7*1000))
	e.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := e.c.WriteMessage(websocket.BinaryMessage, []byte(msg)); err != nil {
		t.Fatalf("websocket write %d: %v", e.i, err)
	}
	_, got, err := e.c.ReadMessage()
	if err != nil || string(got) != msg {
		t.Fatalf("websocket echo %d: %d bytes, %v", e.i, len(got), err)
	}
}

// TestACLChangesKeepOtherTunnelsTransfers: tunnel B of an agent is
// disabled, re-ported and deleted (ACL changes in force at each reload)
// while a 100 MiB download and a WebSocket run through tunnel A of the
// same agent, over the same session: A's transfers complete byte-exact.
func TestACLChangesKeepOtherTunnelsTransfers(t *testing.T) {
	const size = 100 << 20
	r := newRelay(t)
	appA, appB := streamApp(t, "A"), streamApp(t, "B")
	ps := testutil.FreePorts(t, 3)
	pa, pb, pb2 := ps[0], ps[1], ps[2]
	cred := r.addAgent(t, "home", pa, pb)
	c, err := connect(t, r, cred, remote(pa, appA), remote(pb, appB))
	if err != nil {
		t.Fatal(err)
	}
	boundA, _ := c.State().Remote(pa)
	mustGet(t, pb, "B")

	dl := startDownload(t, pa, size)
	dl.read(t, 1<<20)
	ws := dialWS(t, pa)
	ws.roundTrip(t)
	wsB := dialWS(t, pb)
	wsB.roundTrip(t)
	ctx := context.Background()

	// Disable B: its port and its WebSocket end when the reload returns.
	r.setPorts(t, "home", pa)
	if !portClosed(pb) {
		t.Fatal("disabled tunnel's port still open")
	}
	wsB.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := wsB.c.ReadMessage(); err == nil {
		t.Fatal("WebSocket through the disabled tunnel still open")
	}
	ws.roundTrip(t)
	dl.read(t, 8<<20)

	// Re-enable it on another relay port (re-port).
	r.setPorts(t, "home", pa, pb2)
	if err := c.SetRemotes(ctx, []string{remote(pa, appA), remote(pb2, appB)}); err != nil {
		t.Fatal(err)
	}
	mustGet(t, pb2, "B")
	ws.roundTrip(t)
	dl.read(t, 8<<20)

	// Delete it.
	r.setPorts(t, "home", pa)
	if err := c.SetRemotes(ctx, []string{remote(pa, appA)}); err != nil {
		t.Fatal(err)
	}
	if !portClosed(pb2) {
		t.Fatal("deleted tunnel's port still open")
	}
	ws.roundTrip(t)
	dl.finish(t, size)
	ws.roundTrip(t)

	st := c.State()
	if a, _ := st.Remote(pa); a.Status != RemoteBound || !a.Since.Equal(boundA.Since) || len(st.Remotes) != 1 {
		t.Fatalf("tunnel A was touched: %+v (before %+v)", a, boundA)
	}
	if n := r.srv.Sessions("home"); n != 1 {
		t.Fatalf("%d sessions, want 1", n)
	}
}

// freezer is a TCP proxy that can stop forwarding without closing
// anything: a dead path (NAT timeout, a laptop that slept) sends no RST.
type freezer struct {
	addr   string
	frozen atomic.Bool
}

func newFreezer(t testing.TB, backend string) *freezer {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	f := &freezer{addr: l.Addr().String()}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", backend)
			if err != nil {
				c.Close()
				continue
			}
			t.Cleanup(func() { c.Close(); b.Close() })
			go f.copy(b, c)
			go f.copy(c, b)
		}
	}()
	return f
}

func (f *freezer) copy(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for f.frozen.Load() {
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			return
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

// TestTakeoverOnReconnect: after the path of an agent's session died
// silently, its reconnect binds the same relay ports at once (the relay
// has not noticed yet); the port never closes and connections already
// running through the old session go on.
func TestTakeoverOnReconnect(t *testing.T) {
	r := newRelay(t)
	app1, app2 := streamApp(t, "one"), streamApp(t, "two")
	fr := newFreezer(t, r.addr)
	p := testutil.FreePort(t)
	cred := r.addAgent(t, "home", p)
	old, err := NewClient(ClientConfig{ServerURL: "http://" + fr.addr, Auth: cred, Fingerprint: r.srv.Fingerprint(), Header: nginxHeaders(r.secret, "home")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, old, remote(p, app1)); err != nil {
		t.Fatal(err)
	}
	mustGet(t, p, "one")
	ws := dialWS(t, p) // through the old session

	newc, err := connect(t, r, cred, remote(p, app2))
	if err != nil {
		t.Fatal(err)
	}
	if st := newc.State(); !st.AllBound() {
		t.Fatalf("reconnect refused: %+v", st)
	}
	mustGet(t, p, "two")
	if n := r.srv.Sessions("home"); n != 2 {
		t.Fatalf("%d sessions, want the old (not yet noticed) and the new", n)
	}
	ws.roundTrip(t) // the old path still works until it dies
	st := waitState(t, old, "the old session's notice", func(st ClientState) bool {
		rs, _ := st.Remote(p)
		return rs.Status == RemoteRefused
	})
	if rs, _ := st.Remote(p); rs.Code != CodeMoved {
		t.Fatalf("old session's remote: %+v", rs)
	}
	// Now the old path dies: the new session is unaffected.
	fr.frozen.Store(true)
	mustGet(t, p, "two")
}

// TestMigrationKeepsTransfer: MigrateAll moves the agent to a new session
// make-before-break; a download running through the old one completes
// byte-exact, new connections use the new one, and the old session closes
// when its last connection ends.
func TestMigrationKeepsTransfer(t *testing.T) {
	const size = 32 << 20
	r := newRelay(t)
	app := streamApp(t, "app")
	p := testutil.FreePort(t)
	cred := r.addAgent(t, "home", p)
	c, err := connect(t, r, cred, remote(p, app))
	if err != nil {
		t.Fatal(err)
	}
	before := r.srv.Status().Agents[0].Clients[0].ID
	dl := startDownload(t, p, size)
	dl.read(t, 1<<20)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := r.srv.MigrateAll(ctx)
	if err != nil || res.Asked != 1 || res.Migrated != 1 || res.Pending != 0 {
		t.Fatalf("MigrateAll = %+v, %v", res, err)
	}
	waitState(t, c.Client, "the client to finish migrating", func(st ClientState) bool { return st.Migrations == 1 })
	st := r.srv.Status().Agents[0]
	if st.Sessions != 2 || st.Clients[1].ID == before || len(st.Clients[0].Ports) != 0 || st.Clients[0].Channels != 1 {
		t.Fatalf("after migration: %+v (old session %d)", st, before)
	}
	mustGet(t, p, "app") // through the new session
	dl.finish(t, size)
	waitFor(t, "the old session to close after its transfer", func() bool { return r.srv.Sessions("home") == 1 })
	if got := r.srv.Status().Agents[0].Clients[0].ID; got == before {
		t.Fatal("the old session survived, the new one closed")
	}
	mustGet(t, p, "app")
	select {
	case err := <-c.err:
		t.Fatalf("Run ended: %v", err)
	default:
	}
}

// fakeRelay is a malicious relay: it passes the agent's handshake and
// accepts every bind, so the test can open any channel it likes.
type fakeRelay struct {
	url  string
	fp   string
	conn chan ssh.Conn
}

func newFakeRelay(t *testing.T) *fakeRelay {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, err := ssh.NewSignerFromKey(key)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRelay{fp: ccrypto.FingerprintKey(signer.PublicKey()), conn: make(chan ssh.Conn, 1)}
	up := websocket.Upgrader{Subprotocols: []string{chiselProtocol}}
	port := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		conf := &ssh.ServerConfig{PasswordCallback: func(ssh.ConnMetadata, []byte) (*ssh.Permissions, error) { return nil, nil }}
		conf.AddHostKey(signer)
		conn, chans, reqs, err := ssh.NewServerConn(newWSConn(ws, nil), conf)
		if err != nil {
			return
		}
		go func() {
			for ch := range chans {
				ch.Reject(ssh.Prohibited, "no")
			}
		}()
		f.conn <- conn
		for req := range reqs {
			switch req.Type {
			case reqConfig:
				req.Reply(true, mustJSON(configReply{Portlama: 1}))
			case reqBind:
				specs, _ := parseRemotesMsg(req.Payload)
				res := make([]BindResult, len(specs))
				for i, s := range specs {
					res[i] = BindResult{Remote: s, OK: true}
				}
				req.Reply(true, mustJSON(bindReply{Results: res}))
			default:
				req.Reply(true, nil)
			}
		}
	}))
	f.url = "http://127.0.0.1:" + itoa(port)
	return f
}

// TestClientRefusesUnboundTarget: a compromised relay cannot make the
// agent connect anywhere but the targets of its bound tunnels.
func TestClientRefusesUnboundTarget(t *testing.T) {
	f := newFakeRelay(t)
	app := startApp(t, "tunnelled app")
	var hits atomic.Int32
	secret := startCountingApp(t, &hits)
	c, err := NewClient(ClientConfig{ServerURL: f.url, Auth: "home:pw", Fingerprint: f.fp})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, c, remote(20001, app)); err != nil {
		t.Fatal(err)
	}
	conn := <-f.conn
	for _, tc := range []struct{ typ, target string }{
		{chanChisel, "127.0.0.1:" + itoa(secret)},
		{chanChisel, "localhost:" + itoa(app)}, // same app, other spelling
		{chanChisel, "127.0.0.1:" + itoa(app) + "/udp"},
		{chanChisel, "socks"},
		{"direct-tcpip", "127.0.0.1:" + itoa(app)},
		{"session", ""},
	} {
		ch, _, err := conn.OpenChannel(tc.typ, []byte(tc.target))
		var oce *ssh.OpenChannelError
		if err == nil {
			ch.Close()
			t.Fatalf("agent accepted a %s channel to %q", tc.typ, tc.target)
		}
		if !errors.As(err, &oce) || (oce.Reason != ssh.Prohibited && oce.Reason != ssh.UnknownChannelType) {
			t.Fatalf("%s %q: %v", tc.typ, tc.target, err)
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("the agent connected to a non-tunnel target %d times", hits.Load())
	}
	// The bound target itself works.
	ch, reqs, err := conn.OpenChannel(chanChisel, []byte("127.0.0.1:"+itoa(app)))
	if err != nil {
		t.Fatalf("bound target refused: %v", err)
	}
	go ssh.DiscardRequests(reqs)
	io.WriteString(ch, "GET / HTTP/1.0\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(ch), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "tunnelled app" {
		t.Fatalf("body %q", body)
	}
	ch.Close()
	// After the tunnel is removed, its target is refused too.
	if err := c.SetRemotes(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := conn.OpenChannel(chanChisel, []byte("127.0.0.1:"+itoa(app))); err == nil {
		t.Fatal("target of a removed tunnel accepted")
	}
}

// TestKeepAliveDropsDeadPaths: when the path dies silently, the server
// drops the session (and its ports) and the client reports the session
// lost, each by its own keep-alive.
func TestKeepAliveDropsDeadPaths(t *testing.T) {
	r := newRelayWith(t, 100*time.Millisecond)
	app := startApp(t, "app")
	fr := newFreezer(t, r.addr)
	p := testutil.FreePort(t)
	cred := r.addAgent(t, "home", p)
	c, err := NewClient(ClientConfig{ServerURL: "http://" + fr.addr, Auth: cred, Fingerprint: r.srv.Fingerprint(),
		Header: nginxHeaders(r.secret, "home"), KeepAlive: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := run(t, c, remote(p, app))
	if err != nil {
		t.Fatal(err)
	}
	mustGet(t, p, "app")
	fr.frozen.Store(true)
	select {
	case err := <-rc.err:
		var te *Error
		if !errors.As(err, &te) || te.Kind != KindLost || !strings.Contains(te.Reason, "keep-alive") {
			t.Fatalf("client ended with %v, want lost by keep-alive", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("client did not notice the dead path")
	}
	waitFor(t, "the server to drop the session", func() bool { return r.srv.Sessions("home") == 0 })
	if !portClosed(p) {
		t.Fatal("the dead session's port is still open")
	}
}
