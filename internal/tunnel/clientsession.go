package tunnel

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jpillora/chisel/share/ccrypto"
	"golang.org/x/crypto/ssh"
)

// csession is one SSH session of a Client.
type csession struct {
	c    *Client
	id   uint64
	conn ssh.Conn
	nc   *wsConn
	done chan struct{} // closed when the connection has ended; err is set
	err  error

	mu      sync.Mutex
	failure *Error // why we closed it, if we did
	active  int
	idle    chan struct{} // closed and replaced when active drops to 0
}

var errFingerprint = errors.New("server key does not match the fingerprint")

// connect dials the relay and completes the chisel handshake, with every
// failure classified (see Error).
func (c *Client) connect(ctx context.Context) (*csession, error) {
	ctx, cancel := context.WithTimeout(ctx, DefaultHandshakeTimeout)
	defer cancel()
	var batch *batchConn
	d := &websocket.Dialer{
		NetDialContext:   c.dialTCP,
		Subprotocols:     []string{chiselProtocol},
		HandshakeTimeout: DefaultHandshakeTimeout,
		ReadBufferSize:   wsReadBuffer,
		WriteBufferSize:  wsWriteBuffer,
	}
	if c.tlsConf != nil {
		d.NetDialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			raw, err := c.dialTCP(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			batch = &batchConn{Conn: raw}
			tc := tls.Client(batch, c.tlsConf)
			if err := tc.HandshakeContext(ctx); err != nil {
				raw.Close()
				return nil, err
			}
			return tc, nil
		}
	}
	ws, resp, err := d.DialContext(ctx, c.url, c.cfg.Header.Clone())
	if err != nil {
		return nil, classifyDial(err, resp)
	}
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	nc := newWSConn(ws, batch)
	nc.SetDeadline(time.Now().Add(DefaultHandshakeTimeout))
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()

	var triedPassword, keyOK, keyBad bool
	conf := &ssh.ClientConfig{
		User: c.user,
		Auth: []ssh.AuthMethod{ssh.PasswordCallback(func() (string, error) {
			triedPassword = true
			return c.pass, nil
		})},
		ClientVersion: sshClientVersion,
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			if ccrypto.FingerprintKey(key) != c.cfg.Fingerprint {
				keyBad = true
				return errFingerprint
			}
			keyOK = true
			return nil
		},
		Config: ssh.Config{Ciphers: c.cfg.Ciphers},
	}
	conn, chans, reqs, err := ssh.NewClientConn(nc, "", conf)
	if err != nil {
		nc.Close()
		switch {
		case keyBad:
			return nil, newError(KindUnverified, nil, "the tunnel server's key does not match the fingerprint in agent-config (the relay's key was replaced, or someone is in between)")
		case ctx.Err() != nil:
			return nil, newError(KindUnreachable, ctx.Err(), "SSH handshake timed out")
		case triedPassword && keyOK && !isNetErr(err):
			return nil, newError(KindRefused, nil, "the tunnel server refused the credentials (unknown or revoked agent, or a certificate of another agent)")
		default:
			return nil, newError(KindUnreachable, err, "SSH handshake failed")
		}
	}
	ok, payload, err := conn.SendRequest(reqConfig, true, mustJSON(configMsg{Version: c.cfg.Version, Remotes: nil, Portlama: extVersion}))
	if err != nil {
		conn.Close()
		return nil, newError(KindUnreachable, err, "sending the configuration failed")
	}
	if !ok {
		conn.Close()
		return nil, newError(KindRefused, nil, "the tunnel server refused the session: %s", strings.TrimPrefix(string(payload), "server: "))
	}
	var rep configReply
	if perr := jsonUnmarshal(payload, &rep); perr != nil || rep.Portlama < extVersion {
		conn.Close()
		return nil, newError(KindRefused, nil, "the tunnel server does not offer Portlama's per-tunnel control (is it a stock chisel server?)")
	}
	nc.SetDeadline(time.Time{})
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	c.mu.Unlock()
	s := &csession{c: c, id: id, conn: conn, nc: nc, done: make(chan struct{}), idle: make(chan struct{})}
	go s.handleRequests(reqs)
	go s.handleChannels(chans)
	go func() {
		werr := conn.Wait()
		s.mu.Lock()
		if s.failure != nil {
			s.err = s.failure
		} else {
			s.err = newError(KindLost, werr, "the connection to the tunnel server ended")
		}
		s.mu.Unlock()
		close(s.done)
	}()
	go s.keepAlive()
	return s, nil
}

func (c *Client) dialTCP(ctx context.Context, network, addr string) (net.Conn, error) {
	if c.cfg.DialContext != nil {
		return c.cfg.DialContext(ctx, network, addr)
	}
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	return d.DialContext(ctx, network, loopbackForLocalhost(addr))
}

// classifyDial turns a failed WebSocket dial into an *Error.
func classifyDial(err error, resp *http.Response) *Error {
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if isVerifyError(err) {
		return newError(KindUnverified, err, "the tunnel server's TLS certificate did not verify")
	}
	if errors.Is(err, websocket.ErrBadHandshake) && resp != nil {
		e := newError(KindUnreachable, nil, "the tunnel endpoint answered HTTP %d instead of opening the tunnel", resp.StatusCode)
		e.HTTPStatus = resp.StatusCode
		switch resp.StatusCode {
		case 400, 495, 496:
			e.Kind = KindRefused
			e.Reason = "the relay refused the client certificate (HTTP " + itoa(resp.StatusCode) + "): missing, from another CA, expired or revoked"
		case 401, 403:
			e.Kind = KindRefused
			e.Reason = "the tunnel server refused the request (HTTP " + itoa(resp.StatusCode) + ")"
		}
		return e
	}
	return newError(KindUnreachable, err, "could not reach the tunnel server")
}

func isVerifyError(err error) bool {
	var (
		cv *tls.CertificateVerificationError
		ua x509.UnknownAuthorityError
		ci x509.CertificateInvalidError
		hn x509.HostnameError
	)
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &ci) || errors.As(err, &hn)
}

// isNetErr reports a transport failure (as opposed to the server's answer).
func isNetErr(err error) bool {
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) || websocket.IsUnexpectedCloseError(err)
}

// request sends a global request and waits for the answer or ctx.
func (s *csession) request(ctx context.Context, name string, payload []byte) (bool, []byte, error) {
	type answer struct {
		ok  bool
		p   []byte
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		ok, p, err := s.conn.SendRequest(name, true, payload)
		ch <- answer{ok, p, err}
	}()
	select {
	case a := <-ch:
		return a.ok, a.p, a.err
	case <-ctx.Done():
		return false, nil, ctx.Err()
	case <-s.done:
		return false, nil, s.err
	}
}

// fail closes the session, recording why.
func (s *csession) fail(e *Error) {
	s.mu.Lock()
	if s.failure == nil {
		s.failure = e
	}
	s.mu.Unlock()
	s.conn.Close()
}

func (s *csession) close() { s.fail(newError(KindLost, nil, "closed by the agent")) }

func (s *csession) handleRequests(reqs <-chan *ssh.Request) {
	for req := range reqs {
		switch req.Type {
		case reqPing:
			req.Reply(true, []byte("pong"))
		case reqMigrate:
			req.Reply(true, nil)
			go s.c.migrate(s)
		case reqUnbound:
			if m, err := parseUnbound(req.Payload); err == nil {
				s.c.onUnbound(s, m)
			}
		default:
			req.Reply(false, nil)
		}
	}
}

// handleChannels serves the relay's connections: only "chisel" channels to
// the target of a bound remote are accepted (a compromised relay must not
// make the agent connect anywhere else); the target is dialled before the
// channel is accepted, so a dead app shows as a refused connection.
func (s *csession) handleChannels(chans <-chan ssh.NewChannel) {
	for nc := range chans {
		if nc.ChannelType() != chanChisel {
			nc.Reject(ssh.UnknownChannelType, "unsupported channel type")
			continue
		}
		target := string(nc.ExtraData())
		if !s.c.allowed(target) {
			s.c.log.Warn("the relay asked for a connection to a target that is not one of this agent's tunnels; refused", "target", truncate(target, 80))
			nc.Reject(ssh.Prohibited, "not a tunnel target of this agent")
			continue
		}
		go s.serveChannel(nc, target)
	}
}

func (s *csession) serveChannel(nc ssh.NewChannel, target string) {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	conn, err := d.Dial("tcp", target)
	if err != nil {
		s.c.log.Debug("tunnel target not reachable", "target", target, "err", err)
		nc.Reject(ssh.ConnectionFailed, "could not connect to "+target+" on the agent's side")
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		conn.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	s.mu.Lock()
	s.active++
	s.mu.Unlock()
	pipe(conn, ch)
	s.mu.Lock()
	s.active--
	if s.active == 0 {
		close(s.idle)
		s.idle = make(chan struct{})
	}
	s.mu.Unlock()
}

// drain waits until the session has no open connections (or timeout or
// ctx), then closes it.
func (s *csession) drain(ctx context.Context, timeout time.Duration) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		s.mu.Lock()
		n, idle := s.active, s.idle
		s.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-idle:
		case <-s.done:
			return
		case <-t.C:
			s.c.log.Warn("closing a migrated tunnel session with connections still open", "connections", n)
			s.close()
			return
		case <-ctx.Done():
			s.close()
			return
		}
	}
	s.close()
}

// keepAlive pings the relay every KeepAlive; no answer within KeepAlive
// ends the session (a dead path sends no RST).
func (s *csession) keepAlive() {
	t := time.NewTicker(s.c.cfg.KeepAlive)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		if err := ping(s.conn, s.c.cfg.KeepAlive); err != nil {
			s.fail(newError(KindLost, err, "the tunnel server stopped answering keep-alives"))
			return
		}
	}
}

// loopbackForLocalhost maps names under .localhost to 127.0.0.1, as RFC 6761
// §6.3 asks of resolvers (browsers and curl do it; Go's resolver does not).
// The TLS server name stays the original host. The demo's relay lives at
// tunnel.demo.localhost.
func loopbackForLocalhost(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
