package tunnel

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// bindKey identifies a binding: an agent's relay port.
type bindKey struct {
	label string
	port  int
}

// binding is a listener on 127.0.0.1:<relay port> whose connections go to
// the agent through its owner session. It outlives a change of owner: when
// another session of the same agent binds the port (a reconnect, a
// migration), the listener stays and only new connections take the new
// session, so the port never closes in between. Closing a binding closes
// its listener and every connection through it.
type binding struct {
	key bindKey
	ln  *net.TCPListener
	log *slog.Logger

	mu     sync.Mutex
	owner  *session
	remote Remote
	conns  map[net.Conn]struct{}
	closed bool
}

func (b *binding) current() (*session, Remote) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.owner, b.remote
}

// bindLocked binds r for sess: it checks the agent's ACL, takes the port
// over from another session of the agent, or listens on it. The notices
// (to a previous owner) are to be sent after s.mu is released.
func (s *Server) bindLocked(sess *session, r Remote) (*refusal, []notice) {
	a, ok := s.agents[sess.label]
	if !ok || a.Password != sess.password || s.closed {
		return &refusal{CodeDenied, denied(r.userAddr())}, nil
	}
	if _, live := s.sessions[sess]; !live {
		return &refusal{CodeDenied, denied(r.userAddr())}, nil
	}
	if !containsPort(a.RelayPorts, r.RelayPort) {
		return &refusal{CodeDenied, denied(r.userAddr())}, nil
	}
	key := bindKey{sess.label, r.RelayPort}
	if b := s.bindings[key]; b != nil {
		b.mu.Lock()
		prev := b.owner
		b.owner, b.remote = sess, r
		b.mu.Unlock()
		sess.bindings[key] = b
		if prev == sess {
			return nil, nil
		}
		delete(prev.bindings, key)
		s.log.Info("tunnel binding taken over", "agent", sess.label, "relayPort", r.RelayPort, "from", prev.id, "to", sess.id)
		return nil, []notice{{prev, unboundMsg{Remote: r.String(), Code: CodeMoved, Error: "another session of this agent took the relay port over"}}}
	}
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: r.RelayPort})
	if err != nil {
		s.log.Warn("tunnel relay port busy", "agent", sess.label, "relayPort", r.RelayPort, "err", err)
		return &refusal{CodeBusy, "Server cannot listen on " + r.userAddr()}, nil
	}
	b := &binding{key: key, ln: ln, log: s.log, owner: sess, remote: r, conns: map[net.Conn]struct{}{}}
	s.bindings[key] = b
	sess.bindings[key] = b
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		b.serve(&s.wg)
	}()
	return nil, nil
}

func containsPort(ports []int, p int) bool {
	for _, x := range ports {
		if x == p {
			return true
		}
	}
	return false
}

// dropBindingLocked closes b and forgets it.
func (s *Server) dropBindingLocked(b *binding) {
	if s.bindings[b.key] == b {
		delete(s.bindings, b.key)
	}
	b.mu.Lock()
	owner := b.owner
	b.mu.Unlock()
	if owner != nil && owner.bindings[b.key] == b {
		delete(owner.bindings, b.key)
	}
	b.close()
}

// close stops the listener and closes every visitor connection (their
// pipes then close the SSH channels), synchronously: when close returns
// the port refuses connections.
func (b *binding) close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	conns := make([]net.Conn, 0, len(b.conns))
	for c := range b.conns {
		conns = append(conns, c)
	}
	b.mu.Unlock()
	b.ln.Close()
	for _, c := range conns {
		c.Close()
	}
}

func (b *binding) serve(wg *sync.WaitGroup) {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			b.mu.Lock()
			closed := b.closed
			b.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: do not spin.
			b.log.Warn("tunnel relay port accept failed", "relayPort", b.key.port, "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.handle(c)
		}()
	}
}

// handle carries one visitor connection through the owner session. If
// the owner changed while the channel was being opened and opening failed
// (the old session is gone), it tries the new owner once.
func (b *binding) handle(c net.Conn) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		c.Close()
		return
	}
	b.conns[c] = struct{}{}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.conns, c)
		b.mu.Unlock()
	}()
	var (
		ch   ssh.Channel
		sess *session
	)
	for attempt := 0; attempt < 2; attempt++ {
		var r Remote
		sess, r = b.current()
		var reqs <-chan *ssh.Request
		var err error
		ch, reqs, err = sess.conn.OpenChannel(chanChisel, []byte(r.Target))
		if err == nil {
			go ssh.DiscardRequests(reqs)
			break
		}
		b.log.Debug("tunnel channel not opened", "agent", b.key.label, "relayPort", b.key.port, "err", err)
		var oce *ssh.OpenChannelError
		if next, _ := b.current(); next == sess || errors.As(err, &oce) {
			break
		}
	}
	if ch == nil {
		c.Close()
		return
	}
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		ch.Close()
		c.Close()
		return
	}
	sess.active.Add(1)
	pipe(c, ch)
	sess.active.Add(-1)
}
