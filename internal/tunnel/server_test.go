package tunnel

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	chclient "github.com/jpillora/chisel/client"
	"github.com/jpillora/chisel/share/settings"
	"golang.org/x/crypto/ssh"

	"github.com/portlama/portlama/internal/manage"
	"github.com/portlama/portlama/internal/testutil"
)

func TestTunnelEndToEnd(t *testing.T) {
	r := newRelay(t)
	app := startApp(t, "hello from home")
	p := testutil.FreePort(t)
	cred := r.addAgent(t, "home", p)

	c, err := connect(t, r, cred, remote(p, app))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	if st := c.State(); !st.AllBound() {
		t.Fatalf("state after connect: %+v", st)
	}
	mustGet(t, p, "hello from home")
	if n := r.srv.Sessions("home"); n != 1 {
		t.Fatalf("Sessions(home) = %d, want 1", n)
	}
	st := r.srv.Status()
	if len(st.Agents) != 1 || !slices.Equal(st.Agents[0].BoundPorts, []int{p}) || st.Agents[0].Sessions != 1 ||
		st.Agents[0].Clients[0].Client != "portlama" {
		t.Fatalf("status = %+v", st)
	}
}

// One session carries many remotes: adding and removing some leaves the
// others bound and their connections running.
func TestManyRemotesOneSession(t *testing.T) {
	r := newRelay(t)
	// Apps first: a relay port picked before an app bound its ephemeral
	// port could be taken by that app.
	apps := make([]int, 20)
	for i := range apps {
		apps[i] = startApp(t, "app "+itoa(i))
	}
	ports := testutil.FreePorts(t, 20)
	var remotes []string
	for i := range ports {
		remotes = append(remotes, remote(ports[i], apps[i]))
	}
	cred := r.addAgent(t, "home", ports...)
	c, err := connect(t, r, cred, remotes[:10]...)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		mustGet(t, ports[i], "app "+itoa(i))
	}
	// A long connection through remote 0 survives the change.
	conn, err := net.Dial("tcp", "127.0.0.1:"+itoa(ports[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := c.SetRemotes(context.Background(), append(remotes[:1:1], remotes[5:]...)); err != nil {
		t.Fatal(err)
	}
	st := c.State()
	if !st.AllBound() || len(st.Remotes) != 16 {
		t.Fatalf("after SetRemotes: %+v", st)
	}
	for i := 1; i < 5; i++ {
		if !portClosed(ports[i]) {
			t.Fatalf("released relay port %d still listening", ports[i])
		}
	}
	for i := 5; i < 20; i++ {
		mustGet(t, ports[i], "app "+itoa(i))
	}
	io.WriteString(conn, "GET / HTTP/1.0\r\n\r\n")
	body, _ := io.ReadAll(conn)
	if !bytes.HasSuffix(body, []byte("app 0")) {
		t.Fatalf("long connection through a kept remote: %q", body)
	}
	if n := r.srv.Sessions("home"); n != 1 {
		t.Fatalf("%d sessions, want 1", n)
	}
}

func TestTunnelDenials(t *testing.T) {
	r := newRelay(t)
	app := startApp(t, "app")
	ps := testutil.FreePorts(t, 3)
	pa, pb, other := ps[0], ps[1], ps[2]
	credA := r.addAgent(t, "alice", pa)
	credB := r.addAgent(t, "bob", pb)
	credNone := r.addAgent(t, "idle")

	// Remotes the server refuses one by one: the session stays, the port
	// never opens, the reason is the server's.
	for _, tc := range []struct {
		name    string
		cred    string
		remotes []string
		refused []int
	}{
		{"another agent's port", credA, []string{remote(pb, app)}, []int{pb}},
		{"own and another's port", credA, []string{remote(pa, app), remote(pb, app)}, []int{pb}},
		{"unassigned port", credA, []string{remote(other, app)}, []int{other}},
		{"agent without ports", credNone, []string{remote(other, app)}, []int{other}},
		{"bob on alice's port", credB, []string{remote(pa, app)}, []int{pa}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := connect(t, r, tc.cred, tc.remotes...)
			if err != nil {
				t.Fatalf("session refused: %v", err)
			}
			for _, p := range tc.refused {
				rs, _ := c.State().Remote(p)
				if rs.Status != RemoteRefused || rs.Code != CodeDenied || rs.Reason != "access to 'R:127.0.0.1:"+itoa(p)+"' denied" {
					t.Fatalf("remote on %d: %+v", p, rs)
				}
				if !portClosed(p) && p != pa {
					t.Fatalf("port %d is open", p)
				}
			}
			c.stop()
			<-c.done
		})
	}
	// Sessions the server refuses as a whole.
	for _, tc := range []struct {
		name, cred, cert string
	}{
		{"wrong password", "alice:" + strings.Repeat("0", 64), "alice"},
		{"unknown agent", "mallory:" + strings.Repeat("a", 64), "mallory"},
		{"empty password", "alice:x", "alice"},
		{"another agent's certificate", credA, "bob"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := run(t, newTestClient(t, r, tc.cred, tc.cert), remote(pa, app))
			if !isRefused(err) {
				t.Fatalf("err = %v, want ErrRefused", err)
			}
			if !portClosed(pa) {
				t.Fatalf("port %d is open", pa)
			}
		})
	}
}

// TestServerRefusesInvalidRemotes sends remotes no Portlama client would
// send (its own validation stops them) straight in bind requests.
func TestServerRefusesInvalidRemotes(t *testing.T) {
	r := newRelay(t)
	fine := startApp(t, "fine") // before the relay port is picked (see TestManyRemotesOneSession)
	p := testutil.FreePort(t)
	cred := r.addAgent(t, "home", p)
	raw, err := dialRaw(t, r, cred, nginxHeaders(r.secret, "home"))
	if err != nil {
		t.Fatal(err)
	}
	go ssh.DiscardRequests(raw.reqs)
	if ok, reply, err := raw.conn.SendRequest(reqConfig, true, mustJSON(configMsg{Portlama: 1})); !ok || err != nil || string(reply) != `{"portlama":1}` {
		t.Fatalf("config: %v %q %v", ok, reply, err)
	}
	bad := []string{
		"R:0.0.0.0:" + itoa(p) + ":127.0.0.1:80",
		"R:" + itoa(p) + ":127.0.0.1:80",
		"R:127.0.0.1:0" + itoa(p) + ":127.0.0.1:80",
		"R:127.0.0.1:" + itoa(p) + "/udp:127.0.0.1:53/udp",
		"R:127.0.0.1:" + itoa(p) + ":socks",
		"127.0.0.1:" + itoa(p) + ":127.0.0.1:3100",
		"R:127.0.0.2:" + itoa(p) + ":127.0.0.1:80",
		"R:localhost:" + itoa(p) + ":127.0.0.1:80",
		"R:127.0.0.1:" + itoa(p) + ":x y:80",
		"socks",
		"",
	}
	ok, payload, err := raw.conn.SendRequest(reqBind, true, mustJSON(remotesMsg{Remotes: bad}))
	if err != nil || ok {
		t.Fatalf("bind of invalid remotes: ok=%v err=%v", ok, err)
	}
	res, err := parseBindReply(payload, bad)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range res {
		if x.OK || x.Code != CodeInvalid {
			t.Errorf("remote %q: %+v", x.Remote, x)
		}
	}
	if !portClosed(p) {
		t.Fatal("relay port opened")
	}
	// Garbage payloads are refused without a result list.
	for _, pl := range []string{``, `{`, `{"remotes":[]}`, `{"remotes":"x"}`} {
		if ok, _, _ := raw.conn.SendRequest(reqBind, true, []byte(pl)); ok {
			t.Fatalf("bind payload %q accepted", pl)
		}
	}
	// The session is still usable.
	good := []string{remote(p, fine)}
	if ok, _, err := raw.conn.SendRequest(reqBind, true, mustJSON(remotesMsg{Remotes: good})); !ok || err != nil {
		t.Fatalf("valid bind after refusals: %v %v", ok, err)
	}
}

// stockClient runs an unmodified chisel client (the library) once, with
// the headers nginx would add for certLabel, and returns its error after
// it gives up, or nil if it stayed connected for 2 s.
func stockClient(t *testing.T, r *relay, auth, certLabel string, remotes ...string) error {
	t.Helper()
	c, err := chclient.NewClient(&chclient.Config{
		Server:        "http://" + r.addr,
		Auth:          auth,
		Fingerprint:   r.srv.Fingerprint(),
		Remotes:       remotes,
		Headers:       nginxHeaders(r.secret, certLabel),
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
	case <-time.After(2 * time.Second):
		c.Close()
		<-errc
		return nil
	}
}

func TestStockChiselClient(t *testing.T) {
	r := newRelay(t)
	app := startApp(t, "stock app")
	secret := startApp(t, "relay-local secret")
	ps := testutil.FreePorts(t, 2)
	pa, pb := ps[0], ps[1]
	credA := r.addAgent(t, "alice", pa)
	r.addAgent(t, "bob", pb)

	// A stock client with its configuration works.
	c, err := chclient.NewClient(&chclient.Config{
		Server: "http://" + r.addr, Auth: credA, Fingerprint: r.srv.Fingerprint(),
		Remotes: []string{remote(pa, app)}, Headers: nginxHeaders(r.secret, "alice"), MaxRetryCount: 0,
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Logger.Info = false
	ctx, cancel := context.WithCancel(context.Background())
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "stock client's binding", func() bool { return r.srv.Sessions("alice") == 1 && !portClosed(pa) })
	mustGet(t, pa, "stock app")
	if st := r.srv.Status(); st.Agents[0].Clients[0].Client != "chisel" {
		t.Fatalf("status: %+v", st.Agents[0])
	}
	cancel()
	c.Wait()
	waitFor(t, "stock client's port to close", func() bool { return portClosed(pa) })

	for _, tc := range []struct {
		name, auth, cert string
		remotes          []string
		ports            []int
	}{
		{"no credentials", "", "alice", []string{remote(pa, app)}, []int{pa}},
		{"another agent's certificate", credA, "bob", []string{remote(pa, app)}, []int{pa}},
		{"another agent's port", credA, "alice", []string{remote(pb, app)}, []int{pb}},
		{"own and another's port: all or nothing", credA, "alice", []string{remote(pa, app), remote(pb, app)}, []int{pa, pb}},
		{"forward remote", credA, "alice", []string{"127.0.0.1:" + itoa(testutil.FreePort(t)) + ":127.0.0.1:" + itoa(secret)}, nil},
		{"forward socks", credA, "alice", []string{"127.0.0.1:" + itoa(testutil.FreePort(t)) + ":socks"}, nil},
		{"all interfaces", credA, "alice", []string{"R:0.0.0.0:" + itoa(pa) + ":127.0.0.1:" + itoa(app)}, []int{pa}},
		{"udp", credA, "alice", []string{"R:127.0.0.1:" + itoa(pa) + "/udp:127.0.0.1:53/udp"}, []int{pa}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := stockClient(t, r, tc.auth, tc.cert, tc.remotes...); err == nil {
				t.Fatal("stock chisel client stayed connected; want refusal")
			}
			for _, p := range tc.ports {
				if !portClosed(p) {
					t.Fatalf("port %d is open", p)
				}
			}
		})
	}
}

// waitFor polls cond (state outside the tunnel packages' own signals, such
// as a stock client) for up to 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestNoPortsNeverAllowsAnything(t *testing.T) {
	r := newRelay(t)
	cred := r.addAgent(t, "idle")
	app := startApp(t, "app")
	p := testutil.FreePort(t)
	for _, rem := range []string{
		remote(p, app),
		"R:" + itoa(p) + ":127.0.0.1:" + itoa(app),
		"R:127.0.0.1:" + itoa(p) + ":127.0.0.1:" + itoa(app) + "/udp",
		"127.0.0.1:" + itoa(p) + ":127.0.0.1:" + itoa(app),
		"socks",
	} {
		if err := stockClient(t, r, cred, "idle", rem); err == nil {
			t.Fatalf("remote %q accepted for an agent without ports", rem)
		}
		if !portClosed(p) {
			t.Fatalf("port %d open after %q", p, rem)
		}
	}
	// And with no agents at all.
	if err := r.acl.RemoveAgent(context.Background(), "idle"); err != nil {
		t.Fatal(err)
	}
	r.reload(t)
	for _, auth := range []string{"", "idle:" + strings.Repeat("0", 64), "anyone:pw"} {
		if err := stockClient(t, r, auth, "idle", remote(p, app)); err == nil {
			t.Fatalf("client %q accepted with an empty ACL", auth)
		}
	}
	if !portClosed(p) {
		t.Fatalf("port %d open", p)
	}
}

// TestLiveACLChanges: ports granted and withdrawn while sessions run. A
// withdrawn port closes when Reload returns (the panel's notification),
// with nothing else of the agent, or of any other agent, touched.
func TestLiveACLChanges(t *testing.T) {
	r := newRelay(t)
	appA := startApp(t, "alice app")
	appB := startApp(t, "bob app")
	ps := testutil.FreePorts(t, 3)
	pa1, pa2, pb := ps[0], ps[1], ps[2]
	credA := r.addAgent(t, "alice", pa1)
	credB := r.addAgent(t, "bob", pb)
	srv, fp := r.srv, r.srv.Fingerprint()

	bob, err := connect(t, r, credB, remote(pb, appB))
	if err != nil {
		t.Fatalf("bob connect: %v", err)
	}
	bobOK := func() {
		t.Helper()
		mustGet(t, pb, "bob app")
		if st := bob.State(); !st.AllBound() {
			t.Fatalf("bob's state changed: %+v", st)
		}
	}
	mustGet(t, pb, "bob app")

	// pa2 is not alice's yet: refused, the rest of her session works.
	alice, err := connect(t, r, credA, remote(pa1, appA), remote(pa2, appA))
	if err != nil {
		t.Fatal(err)
	}
	if rs, _ := alice.State().Remote(pa2); rs.Status != RemoteRefused || rs.Code != CodeDenied {
		t.Fatalf("pa2 before the grant: %+v", rs)
	}
	mustGet(t, pa1, "alice app")
	// Grant it: a retry on the same session binds it, server not restarted.
	r.setPorts(t, "alice", pa1, pa2)
	if err := alice.SetRemotes(context.Background(), []string{remote(pa1, appA), remote(pa2, appA)}); err != nil {
		t.Fatal(err)
	}
	if st := alice.State(); !st.AllBound() {
		t.Fatalf("after the grant: %+v", st)
	}
	mustGet(t, pa2, "alice app")
	if r.srv != srv || r.srv.Fingerprint() != fp {
		t.Fatal("server changed")
	}

	// Withdraw pa2: closed when Reload returns; pa1 and the session stay.
	conn1, err := net.Dial("tcp", "127.0.0.1:"+itoa(pa1))
	if err != nil {
		t.Fatal(err)
	}
	defer conn1.Close()
	r.setPorts(t, "alice", pa1)
	if !portClosed(pa2) {
		t.Fatal("withdrawn port still listening after the reload returned")
	}
	st := waitState(t, alice.Client, "the relay's notice about pa2", func(st ClientState) bool {
		rs, _ := st.Remote(pa2)
		return rs.Status == RemoteRefused
	})
	if rs, _ := st.Remote(pa2); rs.Code != CodeRemoved {
		t.Fatalf("pa2 after withdrawal: %+v", rs)
	}
	io.WriteString(conn1, "GET / HTTP/1.0\r\n\r\n")
	if body, _ := io.ReadAll(conn1); !bytes.HasSuffix(body, []byte("alice app")) {
		t.Fatalf("connection through pa1 during the change: %q", body)
	}
	mustGet(t, pa1, "alice app")
	if n := r.srv.Sessions("alice"); n != 1 {
		t.Fatalf("alice has %d sessions, want her one session kept", n)
	}
	bobOK()

	// Revoke alice: her session and port end when Reload returns.
	if err := r.acl.RemoveAgent(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	r.reload(t)
	if !portClosed(pa1) {
		t.Fatal("revoked agent's port still listening after the reload returned")
	}
	select {
	case err := <-alice.err:
		if !errors.Is(err, ErrLost) {
			t.Fatalf("alice ended with %v, want ErrLost", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("revoked agent's session still up")
	}
	if _, err := connect(t, r, credA, remote(pa1, appA)); !isRefused(err) {
		t.Fatalf("revoked agent reconnect: %v, want refused", err)
	}
	bobOK()
	if r.srv.Sessions("bob") != 1 {
		t.Fatalf("bob sessions = %d", r.srv.Sessions("bob"))
	}
}

func TestRestartKeepsFingerprint(t *testing.T) {
	r := newRelay(t)
	app := startApp(t, "app")
	p := testutil.FreePort(t)
	cred := r.addAgent(t, "home", p)
	fp := r.srv.Fingerprint()
	fileFP, err := ReadFingerprint(filepath.Join(r.dir, "fingerprint"))
	if err != nil || fileFP != fp {
		t.Fatalf("fingerprint file = %q, %v; want %q", fileFP, err, fp)
	}
	c, err := connect(t, r, cred, remote(p, app))
	if err != nil {
		t.Fatal(err)
	}
	secret := r.secret
	r.stop()
	select {
	case err := <-c.err:
		if !errors.Is(err, ErrLost) {
			t.Fatalf("after server stop: %v, want ErrLost", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("client still connected after server stop")
	}
	if !portClosed(p) {
		t.Fatal("relay port still open after server stop")
	}
	r.start(t)
	if r.srv.Fingerprint() != fp || r.secret != secret {
		t.Fatal("fingerprint or proxy secret changed across restart")
	}
	if _, err := connect(t, r, cred, remote(p, app)); err != nil {
		t.Fatalf("reconnect after restart: %v", err)
	}
	mustGet(t, p, "app")
	for name, want := range map[string]os.FileMode{KeyFileName: 0o600, FingerprintFileName: 0o644, ACLFileName: 0o600, ProxySecretFileName: 0o600, ManageSocketName: 0o600} {
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
	other, err := KeyFingerprint(mustKey(t))
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(ClientConfig{ServerURL: "http://" + r.addr, Auth: cred, Fingerprint: other, Header: nginxHeaders(r.secret, "home")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = run(t, c, remote(p, app))
	var te *Error
	if !errors.Is(err, ErrUnverified) || !errors.As(err, &te) || te.Kind != KindUnverified {
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

func TestServerConfigRefusesPublicAddr(t *testing.T) {
	dir := t.TempDir()
	for _, addr := range []string{"0.0.0.0:9090", ":9090", "192.0.2.1:9090", "example.com:9090"} {
		cfg := DirConfig(dir)
		cfg.Addr = addr
		if _, err := NewServer(cfg); err == nil {
			t.Fatalf("NewServer accepted %s", addr)
		}
	}
}

// TestProofRequired: only requests nginx forwarded (with the secret) and
// that carry a verified agent certificate reach the WebSocket upgrade.
func TestProofRequired(t *testing.T) {
	r := newRelay(t)
	app := startApp(t, "app")
	p := testutil.FreePort(t)
	cred := r.addAgent(t, "home", p)
	h := func(mod func(http.Header)) http.Header {
		x := nginxHeaders(r.secret, "home")
		mod(x)
		return x
	}
	for name, hdr := range map[string]http.Header{
		"no headers at all":            {},
		"forged DN without secret":     h(func(x http.Header) { x.Del(HeaderSecret) }),
		"wrong secret":                 h(func(x http.Header) { x.Set(HeaderSecret, strings.Repeat("0", 64)) }),
		"secret twice":                 h(func(x http.Header) { x.Add(HeaderSecret, r.secret) }),
		"certificate not verified":     h(func(x http.Header) { x.Set(HeaderClientVerify, "FAILED:self signed") }),
		"no DN":                        h(func(x http.Header) { x.Del(HeaderClientDN) }),
		"admin certificate":            h(func(x http.Header) { x.Set(HeaderClientDN, "CN=admin,O=Portlama") }),
		"two CNs":                      h(func(x http.Header) { x.Set(HeaderClientDN, "CN=agent:home+CN=agent:bob") }),
		"panel's secret header":        h(func(x http.Header) { x.Del(HeaderSecret); x.Set("X-Portlama-Proxy-Secret", r.secret) }),
		"DN in the panel's header":     h(func(x http.Header) { x.Del(HeaderClientDN); x.Set("X-SSL-Client-DN", "CN=agent:home") }),
		"invalid label":                h(func(x http.Header) { x.Set(HeaderClientDN, "CN=agent:Home") }),
		"verify in the panel's header": h(func(x http.Header) { x.Del(HeaderClientVerify); x.Set("X-SSL-Client-Verify", "SUCCESS") }),
	} {
		t.Run(name, func(t *testing.T) {
			_, resp, err := (&websocket.Dialer{Subprotocols: []string{chiselProtocol}}).Dial("ws://"+r.addr, hdr)
			if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Fatalf("upgrade: %v, %v; want 403", err, resp)
			}
			// A plain request too.
			req, _ := http.NewRequest("GET", "http://"+r.addr+"/health", nil)
			req.Header = hdr
			resp, err = http.DefaultClient.Do(req)
			if err != nil || resp.StatusCode != http.StatusForbidden {
				t.Fatalf("GET /health: %v %v", resp, err)
			}
			resp.Body.Close()
			// Our client with these headers is refused.
			c, err := NewClient(ClientConfig{ServerURL: "http://" + r.addr, Auth: cred, Fingerprint: r.srv.Fingerprint(), Header: hdr})
			if err != nil {
				t.Fatal(err)
			}
			_, err = run(t, c, remote(p, app))
			var te *Error
			if !errors.As(err, &te) || te.Kind != KindRefused || te.HTTPStatus != 403 {
				t.Fatalf("client: %v, want refused with HTTP 403", err)
			}
			if !portClosed(p) {
				t.Fatal("relay port opened")
			}
		})
	}
	req, _ := http.NewRequest("GET", "http://"+r.addr+"/health", nil)
	req.Header = nginxHeaders(r.secret, "home")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /health with proof: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestChannelACL: a client that passes the handshake asks, channel by
// channel, for connections to relay-local services: every one is refused.
func TestChannelACL(t *testing.T) {
	r := newRelay(t)
	var hits atomic.Int32
	secret := startCountingApp(t, &hits)
	p := testutil.FreePort(t)
	cred := r.addAgent(t, "home", p)
	for _, ext := range []int{0, 1} {
		raw, err := dialRaw(t, r, cred, nginxHeaders(r.secret, "home"))
		if err != nil {
			t.Fatal(err)
		}
		go ssh.DiscardRequests(raw.reqs)
		go func() {
			for ch := range raw.chans {
				ch.Reject(ssh.Prohibited, "test")
			}
		}()
		rem, _ := settings.DecodeRemote(remote(p, 9))
		cfg := configMsg{Version: "test", Remotes: []*settings.Remote{rem}, Portlama: ext}
		if ok, reply, err := raw.conn.SendRequest(reqConfig, true, mustJSON(cfg)); err != nil || !ok {
			t.Fatalf("config refused: %v %s", err, reply)
		}
		for _, dst := range []string{"127.0.0.1:" + itoa(secret), "localhost:" + itoa(secret), "socks", "R:127.0.0.1:" + itoa(p), "127.0.0.1:" + itoa(secret) + "/udp"} {
			for _, typ := range []string{chanChisel, "direct-tcpip", "session"} {
				ch, _, err := raw.conn.OpenChannel(typ, []byte(dst))
				if err == nil {
					ch.Close()
					t.Fatalf("channel %s to %q accepted", typ, dst)
				}
			}
		}
		raw.conn.Close()
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
	c, err := connect(t, r, cred, remote(p, app))
	if err != nil {
		t.Fatal(err)
	}
	before := r.srv.Status().ACLGeneration
	broken := []byte(`{"agents":[{"label":"home"`)
	if err := os.WriteFile(r.acl.Path(), broken, 0o600); err != nil {
		t.Fatal(err)
	}
	// Through the management socket, as the panel does it.
	mc := NewManageClient(r.config().ManageSocket, r.acl.Path())
	var rej *manage.RejectedError
	if err := mc.Notify(context.Background()); !errors.As(err, &rej) || !strings.Contains(rej.Message, "acl.json") {
		t.Fatalf("notify with a broken acl: %v, want a refusal", err)
	}
	if g := r.srv.Status().ACLGeneration; g != before {
		t.Fatalf("generation changed to %s", g)
	}
	if st := c.State(); !st.AllBound() {
		t.Fatalf("session touched by a broken acl: %+v", st)
	}
	mustGet(t, p, "app")
	// A valid file again, without the agent: its session goes at once.
	if err := os.WriteFile(r.acl.Path(), []byte(`{"agents":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := mc.Notify(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !portClosed(p) {
		t.Fatal("port open after the agent left the acl")
	}
	if err := <-c.err; !errors.Is(err, ErrLost) {
		t.Fatalf("session ended with %v", err)
	}
}

func TestCredentialChangeClosesSession(t *testing.T) {
	r := newRelay(t)
	app := startApp(t, "app")
	p := testutil.FreePort(t)
	cred := r.addAgent(t, "home", p)
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
	r.setPorts(t, "home", p)
	if !portClosed(p) {
		t.Fatal("port of the old credential's session still open")
	}
	if err := <-c.err; !errors.Is(err, ErrLost) {
		t.Fatalf("old session ended with %v", err)
	}
	if _, err := connect(t, r, cred, remote(p, app)); !isRefused(err) {
		t.Fatalf("old credential: %v, want refused", err)
	}
}

func TestSessionsForgotten(t *testing.T) {
	r := newRelay(t)
	app := startApp(t, "app")
	p := testutil.FreePort(t)
	cred := r.addAgent(t, "home", p)
	for range 3 {
		c, err := connect(t, r, cred, remote(p, app))
		if err != nil {
			t.Fatal(err)
		}
		c.stop()
		<-c.done
	}
	waitFor(t, "sessions to be forgotten", func() bool {
		r.srv.mu.Lock()
		defer r.srv.mu.Unlock()
		return len(r.srv.sessions) == 0 && len(r.srv.bindings) == 0
	})
	if !portClosed(p) {
		t.Fatal("port open without a session")
	}
}

func TestManageSocket(t *testing.T) {
	r := newRelay(t)
	app := startApp(t, "x")
	p := testutil.FreePort(t)
	cred := r.addAgent(t, "home", p)
	mc := NewManageClient(r.config().ManageSocket, r.acl.Path())
	ctx := context.Background()
	if _, err := connect(t, r, cred, remote(p, app)); err != nil {
		t.Fatal(err)
	}
	st, err := mc.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gen, _ := manage.FileGeneration(r.acl.Path())
	if st.ACLGeneration != gen || len(st.Agents) != 1 || st.Agents[0].Label != "home" || st.Agents[0].Sessions != 1 ||
		!slices.Equal(st.Agents[0].BoundPorts, []int{p}) || !slices.Equal(st.Agents[0].AllowedPorts, []int{p}) {
		t.Fatalf("status = %+v", st)
	}
	// A change is in force when Notify returns.
	if err := r.acl.SetPorts(ctx, "home", nil); err != nil {
		t.Fatal(err)
	}
	if err := mc.Notify(ctx); err != nil {
		t.Fatalf("notify: %v", err)
	}
	if !portClosed(p) {
		t.Fatal("port open after a confirmed notify")
	}
	res, err := mc.Migrate(ctx, time.Second)
	if err != nil || res.Asked != 0 {
		t.Fatalf("migrate with nothing bound: %+v %v", res, err)
	}
	var me *manage.Error
	if err := mc.mc.Do(ctx, "POST", MigratePath+"?wait=forever", nil, nil); !errors.As(err, &me) || me.Status != 400 {
		t.Fatalf("bad wait: %v", err)
	}
}
