package tunnel

// Session tracking. chisel v1.12.0 has no API to list or close the sessions
// of a user, and its HTTP handler is not exported, so the server reaches
// two unexported fields of chserver.Server once, before it starts serving:
//
//   - httpServer (*cnet.HTTPServer, which embeds *http.Server): we set
//     http.Server.ConnState to record every accepted TCP connection by its
//     remote address (hijacked WebSocket connections included);
//   - sshConfig (*ssh.ServerConfig): we wrap PasswordCallback so that a
//     successful login records "remote address → user".
//
// SSH's ConnMetadata.RemoteAddr() is the TCP peer of the WebSocket
// connection (chisel's cnet.wsConn passes it through), so the two maps join:
// closing the TCP connections recorded for a user ends its SSH sessions, and
// chisel then closes that session's reverse listeners.
//
// Both fields are looked up by name and type with reflect; if chisel's layout
// differs (another version), NewServer fails instead of running without the
// ability to cut sessions. TestChiselInternals guards this.

import (
	"errors"
	"net"
	"net/http"
	"reflect"
	"sync"
	"syscall"
	"time"
	"unsafe"

	chserver "github.com/jpillora/chisel/server"
	"github.com/jpillora/chisel/share/cnet"
	"golang.org/x/crypto/ssh"
)

// chiselInternals returns the two unexported fields described above.
func chiselInternals(s *chserver.Server) (*http.Server, *ssh.ServerConfig, error) {
	v := reflect.ValueOf(s).Elem()
	hf := v.FieldByName("httpServer")
	if !hf.IsValid() || hf.Type() != reflect.TypeFor[*cnet.HTTPServer]() {
		return nil, nil, errors.New("unsupported chisel version: no httpServer field")
	}
	sf := v.FieldByName("sshConfig")
	if !sf.IsValid() || sf.Type() != reflect.TypeFor[*ssh.ServerConfig]() {
		return nil, nil, errors.New("unsupported chisel version: no sshConfig field")
	}
	hs := *(**cnet.HTTPServer)(unsafe.Pointer(hf.UnsafeAddr()))
	sc := *(**ssh.ServerConfig)(unsafe.Pointer(sf.UnsafeAddr()))
	if hs == nil || hs.Server == nil || sc == nil || sc.PasswordCallback == nil {
		return nil, nil, errors.New("unsupported chisel version: server not initialised as expected")
	}
	return hs.Server, sc, nil
}

// sessionTracker joins TCP connections and authenticated users.
type sessionTracker struct {
	mu    sync.Mutex
	conns map[string]net.Conn // remote address → connection
	users map[string]string   // remote address → authenticated user
}

func newSessionTracker() *sessionTracker {
	return &sessionTracker{conns: map[string]net.Conn{}, users: map[string]string{}}
}

// install hooks the tracker into chisel's HTTP server and SSH config. It
// must run before the server starts.
func (t *sessionTracker) install(s *chserver.Server, onLogin func(user, addr string, ok bool)) error {
	hs, sc, err := chiselInternals(s)
	if err != nil {
		return err
	}
	hs.ConnState = t.connState
	// Only nginx talks to this server; still, do not let a client hold a
	// connection open without sending its request.
	hs.ReadHeaderTimeout = 30 * time.Second
	orig := sc.PasswordCallback
	sc.PasswordCallback = func(md ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
		perms, err := orig(md, pw)
		addr := md.RemoteAddr().String()
		if err == nil {
			t.mu.Lock()
			if _, ok := t.conns[addr]; ok {
				t.users[addr] = md.User()
			}
			t.mu.Unlock()
		}
		if onLogin != nil {
			onLogin(md.User(), addr, err == nil)
		}
		return perms, err
	}
	return nil
}

func (t *sessionTracker) connState(c net.Conn, st http.ConnState) {
	addr := c.RemoteAddr().String()
	t.mu.Lock()
	defer t.mu.Unlock()
	switch st {
	case http.StateNew:
		t.conns[addr] = c
		delete(t.users, addr)
	case http.StateClosed:
		if t.conns[addr] == c {
			delete(t.conns, addr)
			delete(t.users, addr)
		}
	}
}

// closeUser closes every connection authenticated as user and returns how
// many it closed.
func (t *sessionTracker) closeUser(user string) int {
	var victims []net.Conn
	t.mu.Lock()
	for addr, u := range t.users {
		if u != user {
			continue
		}
		if c, ok := t.conns[addr]; ok {
			victims = append(victims, c)
		}
		delete(t.conns, addr)
		delete(t.users, addr)
	}
	t.mu.Unlock()
	for _, c := range victims {
		_ = c.Close()
	}
	return len(victims)
}

// closeAll closes every tracked connection (server shutdown: net/http does
// not close hijacked connections).
func (t *sessionTracker) closeAll() {
	t.mu.Lock()
	victims := make([]net.Conn, 0, len(t.conns))
	for _, c := range t.conns {
		victims = append(victims, c)
	}
	t.conns = map[string]net.Conn{}
	t.users = map[string]string{}
	t.mu.Unlock()
	for _, c := range victims {
		_ = c.Close()
	}
}

// sweep forgets connections that were closed after being hijacked (net/http
// reports no StateClosed for them).
func (t *sessionTracker) sweep() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for addr, c := range t.conns {
		if connClosed(c) {
			delete(t.conns, addr)
			delete(t.users, addr)
		}
	}
}

// sessionsOf returns how many live connections are authenticated as user.
func (t *sessionTracker) sessionsOf(user string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for addr, u := range t.users {
		if u == user && !connClosed(t.conns[addr]) {
			n++
		}
	}
	return n
}

// connClosed reports whether c's file descriptor is already closed.
func connClosed(c net.Conn) bool {
	if c == nil {
		return true
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	return rc.Control(func(uintptr) {}) != nil
}
