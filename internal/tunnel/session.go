package tunnel

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jpillora/chisel/share/settings"
	"golang.org/x/crypto/ssh"
)

// session is one authenticated, configured SSH session of an agent on the
// server. Its bindings map is guarded by Server.mu.
type session struct {
	id       uint64
	label    string
	addr     string
	ext      bool // Portlama client: per-remote control
	version  string
	password string // the password it authenticated with
	conn     *ssh.ServerConn
	since    time.Time
	bindings map[bindKey]*binding
	active   atomic.Int64 // open channels
	reason   string       // why the server closed it (Server.mu)
}

func (sess *session) clientKind() string {
	if sess.ext {
		return "portlama"
	}
	return "chisel"
}

// notice is a portlama-unbound message to send to sess's client.
type notice struct {
	sess *session
	msg  unboundMsg
}

func sendNotices(ns []notice) {
	for _, n := range ns {
		if n.sess == nil || !n.sess.ext {
			continue
		}
		// Without a reply wanted this only queues a packet; it must not run
		// under Server.mu (a congested connection blocks writers).
		go n.sess.conn.SendRequest(reqUnbound, false, mustJSON(n.msg))
	}
}

// ServeHTTP is the tunnel endpoint behind nginx. Before anything else it
// requires the proof that nginx forwarded the request (HeaderSecret) and a
// verified agent certificate; then it upgrades chisel WebSockets and runs
// the session.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	secret := s.secret
	s.mu.Unlock()
	label, err := identify(r.Header, secret)
	if err != nil {
		s.log.Warn("tunnel request refused", "reason", err.Error(), "remote", r.RemoteAddr)
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	if !websocket.IsWebSocketUpgrade(r) || !slices.Contains(websocket.Subprotocols(r), chiselProtocol) {
		if r.URL.Path == "/health" {
			w.Write([]byte("OK\n"))
			return
		}
		http.Error(w, "Not found", http.StatusNotFound)
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.log.Debug("websocket upgrade failed", "err", err, "remote", r.RemoteAddr)
		return
	}
	s.wg.Add(1)
	defer s.wg.Done()
	s.serveWS(ws, label, r.RemoteAddr)
}

var errHandshakeTimeout = errors.New("no configuration within the handshake timeout")

// serveWS runs the SSH session of one upgraded connection until it ends.
func (s *Server) serveWS(ws *websocket.Conn, certLabel, addr string) {
	nc := newWSConn(ws, nil)
	defer nc.Close()
	deadline := time.Now().Add(s.cfg.HandshakeTimeout)
	nc.SetDeadline(deadline)
	conf := s.sshConf
	var password string
	conf.PasswordCallback = func(meta ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
		p, err := s.checkPassword(certLabel, meta.User(), pw, addr)
		password = p
		return nil, err
	}
	conn, chans, reqs, err := ssh.NewServerConn(nc, &conf)
	if err != nil {
		s.log.Debug("tunnel handshake failed", "certificate", certLabel, "remote", addr, "err", err)
		return
	}
	defer conn.Close()
	go rejectChannels(chans)

	// chisel: the first request is the configuration.
	var req *ssh.Request
	timer := time.NewTimer(time.Until(deadline))
	select {
	case req = <-reqs:
	case <-timer.C:
	}
	timer.Stop()
	if req == nil {
		s.log.Debug("tunnel session ended before its configuration", "agent", certLabel, "err", errHandshakeTimeout)
		return
	}
	if req.Type != reqConfig {
		req.Reply(false, []byte("server: expecting config request"))
		return
	}
	cfg, err := parseConfig(req.Payload)
	if err != nil {
		req.Reply(false, []byte("server: "+err.Error()))
		return
	}
	sess := &session{
		label: certLabel, addr: addr, ext: cfg.Portlama >= extVersion, version: cfg.Version,
		password: password, conn: conn, since: time.Now(), bindings: map[bindKey]*binding{},
	}
	ports, ref, notes := s.register(sess, cfg.Remotes)
	if ref != nil {
		s.log.Info("tunnel session refused", "agent", certLabel, "reason", ref.msg, "remote", addr)
		req.Reply(false, []byte("server: "+ref.msg))
		return
	}
	nc.SetDeadline(time.Time{})
	var payload []byte
	if sess.ext {
		payload = mustJSON(configReply{Portlama: extVersion})
	}
	req.Reply(true, payload)
	sendNotices(notes)
	s.log.Info("tunnel session opened", "agent", sess.label, "session", sess.id, "client", sess.clientKind(), "version", sess.version, "ports", ports, "remote", addr)

	done := make(chan struct{})
	go s.keepAlive(sess, done)
	s.handleRequests(sess, reqs)
	close(done)
	conn.Close()
	reason := s.unregister(sess)
	s.log.Info("tunnel session closed", "agent", sess.label, "session", sess.id, "reason", reason, "duration", time.Since(sess.since).Round(time.Millisecond).String())
}

// rejectChannels refuses every channel a client opens: no forward
// tunnels, no SOCKS, nothing reaches the relay's own network.
func rejectChannels(chans <-chan ssh.NewChannel) {
	for ch := range chans {
		ch.Reject(ssh.Prohibited, "Denied outbound connection")
	}
}

// register adds sess under its agent and, for a stock client, binds every
// remote of its configuration (all or nothing, with chisel's refusal
// texts). It returns the bound ports.
func (s *Server) register(sess *session, specs []*settings.Remote) ([]int, *refusal, []notice) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, &refusal{CodeBusy, "tunnel server is stopping"}, nil
	}
	a, ok := s.agents[sess.label]
	if !ok || a.Password != sess.password {
		return nil, &refusal{CodeDenied, "credentials are no longer valid"}, nil
	}
	var rs []Remote
	if !sess.ext {
		seen := map[int]bool{}
		for _, spec := range specs {
			r, ref := checkSpec(spec)
			if ref != nil {
				return nil, ref, nil
			}
			if !slices.Contains(a.RelayPorts, r.RelayPort) {
				return nil, &refusal{CodeDenied, denied(r.userAddr())}, nil
			}
			if seen[r.RelayPort] {
				return nil, &refusal{CodeBusy, "Server cannot listen on " + r.userAddr()}, nil
			}
			seen[r.RelayPort] = true
			rs = append(rs, r)
		}
	}
	s.nextID++
	sess.id = s.nextID
	s.sessions[sess] = struct{}{}
	var notes []notice
	for _, r := range rs {
		ref, n := s.bindLocked(sess, r)
		if ref != nil {
			for _, b := range sess.bindings {
				s.dropBindingLocked(b)
			}
			delete(s.sessions, sess)
			return nil, ref, nil
		}
		notes = append(notes, n...)
	}
	s.signalLocked()
	ports := make([]int, 0, len(rs))
	for _, r := range rs {
		ports = append(ports, r.RelayPort)
	}
	return ports, nil, notes
}

// unregister forgets sess and closes the bindings it still owns; it
// returns why the session ended.
func (s *Server) unregister(sess *session) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	reason := sess.reason
	if reason == "" {
		reason = "connection closed"
	}
	if _, ok := s.sessions[sess]; ok {
		s.closeSessionLocked(sess, reason)
	}
	return reason
}

// closeSessionLocked closes sess and its bindings now (listeners and
// connections), so the change is in force when the caller returns.
func (s *Server) closeSessionLocked(sess *session, reason string) {
	if sess.reason == "" {
		sess.reason = reason
	}
	for _, b := range sess.bindings {
		s.dropBindingLocked(b)
	}
	if _, ok := s.sessions[sess]; ok {
		delete(s.sessions, sess)
		if reason != "connection closed" {
			s.log.Info("closing tunnel session", "agent", sess.label, "session", sess.id, "reason", reason)
		}
	}
	sess.conn.Close()
	s.signalLocked()
}

// handleRequests answers the session's global requests until it closes.
func (s *Server) handleRequests(sess *session, reqs <-chan *ssh.Request) {
	for req := range reqs {
		switch {
		case req.Type == reqPing:
			req.Reply(true, []byte("pong"))
		case req.Type == reqBind && sess.ext:
			s.handleBind(sess, req)
		case req.Type == reqUnbind && sess.ext:
			s.handleUnbind(sess, req)
		default:
			req.Reply(false, nil)
		}
	}
}

func (s *Server) handleBind(sess *session, req *ssh.Request) {
	specs, err := parseRemotesMsg(req.Payload)
	if err != nil {
		req.Reply(false, []byte(err.Error()))
		return
	}
	results := make([]BindResult, len(specs))
	allOK := true
	var notes []notice
	var bound, refused []string
	s.mu.Lock()
	for i, spec := range specs {
		res := BindResult{Remote: spec, OK: true}
		r, err := ParseRemote(spec)
		var ref *refusal
		if err != nil {
			ref = &refusal{CodeInvalid, err.Error()}
		} else {
			var n []notice
			ref, n = s.bindLocked(sess, r)
			notes = append(notes, n...)
		}
		if ref != nil {
			res = BindResult{Remote: spec, Code: ref.code, Error: ref.msg}
			allOK = false
			refused = append(refused, ref.msg)
		} else {
			bound = append(bound, strconv.Itoa(r.RelayPort))
		}
		results[i] = res
	}
	s.signalLocked()
	s.mu.Unlock()
	sendNotices(notes)
	if len(bound) > 0 {
		s.log.Debug("tunnel remotes bound", "agent", sess.label, "session", sess.id, "ports", bound)
	}
	if len(refused) > 0 {
		s.log.Info("tunnel remotes refused", "agent", sess.label, "session", sess.id, "reasons", refused)
	}
	req.Reply(allOK, mustJSON(bindReply{Results: results}))
}

func (s *Server) handleUnbind(sess *session, req *ssh.Request) {
	specs, err := parseRemotesMsg(req.Payload)
	if err != nil {
		req.Reply(false, []byte(err.Error()))
		return
	}
	s.mu.Lock()
	for _, spec := range specs {
		r, err := ParseRemote(spec)
		if err != nil {
			continue
		}
		if b := sess.bindings[bindKey{sess.label, r.RelayPort}]; b != nil {
			s.dropBindingLocked(b)
		}
	}
	s.signalLocked()
	s.mu.Unlock()
	req.Reply(true, nil)
}

// keepAlive pings the client every KeepAlive and closes the session when a
// ping is not answered within KeepAlive (a dead TCP path sends no RST).
func (s *Server) keepAlive(sess *session, done <-chan struct{}) {
	t := time.NewTicker(s.cfg.KeepAlive)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		if err := ping(sess.conn, s.cfg.KeepAlive); err != nil {
			s.mu.Lock()
			if sess.reason == "" {
				sess.reason = "keepalive: " + err.Error()
			}
			s.mu.Unlock()
			sess.conn.Close()
			return
		}
	}
}

// ping sends chisel's keep-alive request and waits up to timeout.
func ping(conn ssh.Conn, timeout time.Duration) error {
	errc := make(chan error, 1)
	go func() {
		_, _, err := conn.SendRequest(reqPing, true, nil)
		errc <- err
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-errc:
		if err != nil {
			return fmt.Errorf("ping failed: %w", err)
		}
		return nil
	case <-t.C:
		return fmt.Errorf("no answer to ping within %s", timeout)
	}
}
