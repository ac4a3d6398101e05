package tunnel

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
)

// ClientConfig configures a Client. ServerURL, Auth and Fingerprint come
// from GET /api/tunnels/agent-config.
type ClientConfig struct {
	// ServerURL is the tunnel endpoint, e.g. "https://tunnel.<d>:443".
	// https/wss use TLS with the TLS field; http/ws connect in clear text
	// (tests; the SSH layer is still authenticated by Fingerprint).
	ServerURL string
	// Auth is the agent's credential "<label>:<password>". Never logged.
	Auth string
	// Fingerprint is the tunnel server key fingerprint (SHA256, base64, 44
	// characters, as chisel prints it). Required.
	Fingerprint string
	// TLS is used for https/wss: RootCAs (nil means system roots),
	// Certificates or GetClientCertificate (nginx demands a client
	// certificate on tunnel.<d>), ServerName (default: the URL host).
	// InsecureSkipVerify is refused. Cloned; never modified.
	TLS *tls.Config
	// KeepAlive is the SSH keep-alive interval; zero means DefaultKeepAlive.
	KeepAlive time.Duration
	// DrainTimeout bounds how long a session replaced by a migration
	// keeps running for its open connections; zero means one hour.
	DrainTimeout time.Duration
	// Version is sent to the server in the configuration (status shows it).
	Version string
	// Ciphers overrides the SSH cipher preference (default: AES-128-GCM,
	// then AES-256-GCM, then chacha20-poly1305).
	Ciphers []string
	// Header is added to the WebSocket upgrade request (chisel's --header).
	Header http.Header
	// DialContext dials the relay's TCP address; nil means a net.Dialer
	// (names under .localhost go to 127.0.0.1).
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// Logger receives the client's messages; nil discards them.
	Logger *slog.Logger
}

// defaultCiphers puts AES-GCM first: with AES-NI it costs half the CPU of
// chacha20-poly1305 per transfer (test/bench; x/crypto's chacha20 has no
// amd64 assembly), which outweighs its one drawback here: x/crypto/ssh
// writes a GCM packet above 4 KiB with two Writes (wsConn joins them).
var defaultCiphers = []string{ssh.CipherAES128GCM, ssh.CipherAES256GCM, ssh.CipherChaCha20Poly1305}

// ConnStatus is the state of a Client's connection.
type ConnStatus string

// Connection states.
const (
	StatusDisconnected ConnStatus = "disconnected"
	StatusConnecting   ConnStatus = "connecting"
	StatusConnected    ConnStatus = "connected"
)

// RemoteStatus is the state of one remote.
type RemoteStatus string

// Remote states.
const (
	// RemotePending: not bound yet (not connected, or being bound).
	RemotePending RemoteStatus = "pending"
	// RemoteBound: the relay listens on the relay port for this agent.
	RemoteBound RemoteStatus = "bound"
	// RemoteRefused: the relay refused or dropped it; Code and Reason say
	// why. SetRemotes tries it again.
	RemoteRefused RemoteStatus = "refused"
)

// RemoteState is the state of one remote of a Client.
type RemoteState struct {
	Remote    Remote
	Status    RemoteStatus
	Code      string // a Code* constant when refused
	Reason    string // the relay's message when refused
	Since     time.Time
	sessionID uint64
}

// ClientState is a snapshot of a Client.
type ClientState struct {
	Status ConnStatus
	// Err is why the last session ended or failed (a *Error), nil while
	// connected.
	Err   error
	Since time.Time
	// ConnectedAt is when the current or last session connected (zero if
	// none ever did).
	ConnectedAt time.Time
	// Remotes are in the order SetRemotes gave them.
	Remotes []RemoteState
	// Migrations counts completed make-before-break reconnects.
	Migrations int
}

// Remote returns the state of the remote on relayPort.
func (s ClientState) Remote(relayPort int) (RemoteState, bool) {
	for _, r := range s.Remotes {
		if r.Remote.RelayPort == relayPort {
			return r, true
		}
	}
	return RemoteState{}, false
}

// AllBound reports whether the client is connected and every remote is
// bound.
func (s ClientState) AllBound() bool {
	if s.Status != StatusConnected {
		return false
	}
	for _, r := range s.Remotes {
		if r.Status != RemoteBound {
			return false
		}
	}
	return true
}

// Client is an agent's connection to one relay: one session carrying all
// of the agent's remotes, which SetRemotes changes without touching the
// others. Run connects it and returns when the session is lost; the
// caller decides when to run it again (see Error). State and Changed
// report what happens.
type Client struct {
	cfg     ClientConfig
	user    string
	pass    string
	url     string
	tlsConf *tls.Config
	log     *slog.Logger
	running atomic.Bool
	opMu    sync.Mutex // serializes binding work: SetRemotes, connect, migration

	mu         sync.Mutex
	want       []Remote
	remotes    map[int]*RemoteState // by relay port
	cur        *csession
	sessions   map[*csession]struct{} // current and draining
	status     ConnStatus
	err        error
	since      time.Time
	migrations int
	connected  time.Time
	changed    chan struct{}
	nextID     uint64
	runCtx     context.Context // of the running Run, for migrations
}

// NewClient validates cfg and returns a Client without remotes.
func NewClient(cfg ClientConfig) (*Client, error) {
	u, err := url.Parse(cfg.ServerURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("tunnel server URL %q is not a valid URL", cfg.ServerURL)
	}
	secure := false
	switch u.Scheme {
	case "https", "wss":
		secure = true
	case "http", "ws":
	default:
		return nil, fmt.Errorf("tunnel server URL %q: scheme must be https or http", cfg.ServerURL)
	}
	if u.User != nil {
		return nil, errors.New("tunnel server URL must not contain credentials")
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "80"
		if secure {
			port = "443"
		}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || host == "" {
		return nil, fmt.Errorf("tunnel server URL %q: invalid host or port", cfg.ServerURL)
	}
	scheme := "ws"
	if secure {
		scheme = "wss"
	}
	wsURL := (&url.URL{Scheme: scheme, Host: net.JoinHostPort(host, port), Path: u.Path}).String()
	user, pass, ok := strings.Cut(cfg.Auth, ":")
	if !ok || user == "" || pass == "" {
		return nil, errors.New("tunnel credential must have the form <label>:<password>")
	}
	if err := checkFingerprint(cfg.Fingerprint); err != nil {
		return nil, err
	}
	var tc *tls.Config
	if secure {
		if cfg.TLS != nil {
			tc = cfg.TLS.Clone()
		} else {
			tc = &tls.Config{}
		}
		if tc.InsecureSkipVerify {
			return nil, errors.New("TLS verification cannot be disabled for the tunnel")
		}
		if tc.ServerName == "" {
			tc.ServerName = host
		}
		if tc.MinVersion < tls.VersionTLS12 {
			tc.MinVersion = tls.VersionTLS12
		}
		tc.NextProtos = []string{"http/1.1"} // the WebSocket upgrade needs HTTP/1.1
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = time.Hour
	}
	if cfg.Version == "" {
		cfg.Version = "0.0.0-portlama"
	}
	if len(cfg.Ciphers) == 0 {
		cfg.Ciphers = defaultCiphers
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{
		cfg: cfg, user: user, pass: pass, url: wsURL, tlsConf: tc, log: log,
		remotes: map[int]*RemoteState{}, sessions: map[*csession]struct{}{},
		status: StatusDisconnected, since: time.Now(), changed: make(chan struct{}),
	}, nil
}

// checkFingerprint accepts only chisel's SHA256 form (base64 of 32 bytes).
func checkFingerprint(fp string) error {
	if fp == "" {
		return errors.New("tunnel server fingerprint is required")
	}
	b, err := base64.StdEncoding.DecodeString(fp)
	if err != nil || len(b) != 32 {
		return fmt.Errorf("tunnel server fingerprint %q is not a SHA256 fingerprint (44 base64 characters)", fp)
	}
	return nil
}

// State returns a snapshot.
func (c *Client) State() ClientState {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := ClientState{Status: c.status, Err: c.err, Since: c.since, ConnectedAt: c.connected, Migrations: c.migrations}
	for _, r := range c.want {
		st.Remotes = append(st.Remotes, *c.remotes[r.RelayPort])
	}
	return st
}

// Changed returns a channel that is closed at the next change of State.
func (c *Client) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

// Wait blocks until cond holds for the client's state or ctx ends.
func (c *Client) Wait(ctx context.Context, cond func(ClientState) bool) (ClientState, error) {
	for {
		ch := c.Changed()
		st := c.State()
		if cond(st) {
			return st, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return st, ctx.Err()
		}
	}
}

func (c *Client) signalLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *Client) setStatus(s ConnStatus, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.status != s || err != nil {
		c.since = time.Now()
		if s == StatusConnected {
			c.connected = c.since
		}
	}
	c.status, c.err = s, err
	c.signalLocked()
}

// SetRemotes makes remotes (chisel reverse remotes, e.g.
// "R:127.0.0.1:20001:127.0.0.1:8080") the client's set. When connected, it
// releases the remotes that are gone, binds the new ones and retries those
// that were refused, on the running session, and returns once the relay
// answered (or ctx ended); the results are in State. Remotes that stay are
// not touched. Invalid remotes are an error and change nothing.
func (c *Client) SetRemotes(ctx context.Context, remotes []string) error {
	want := make([]Remote, 0, len(remotes))
	ports := map[int]bool{}
	for _, s := range remotes {
		r, err := ParseRemote(s)
		if err != nil {
			return err
		}
		if ports[r.RelayPort] {
			return fmt.Errorf("relay port %d appears in two tunnel remotes", r.RelayPort)
		}
		ports[r.RelayPort] = true
		want = append(want, r)
	}
	c.opMu.Lock()
	defer c.opMu.Unlock()
	c.mu.Lock()
	var gone []string
	for port, st := range c.remotes {
		if !ports[port] && st.Status == RemoteBound {
			gone = append(gone, st.Remote.String())
		}
	}
	next := make(map[int]*RemoteState, len(want))
	var bind []Remote
	for _, r := range want {
		st := c.remotes[r.RelayPort]
		if st == nil || st.Remote != r {
			st = &RemoteState{Remote: r, Status: RemotePending, Since: time.Now()}
		}
		next[r.RelayPort] = st
		if st.Status != RemoteBound {
			bind = append(bind, r)
		}
	}
	c.want, c.remotes = want, next
	cur := c.cur
	c.signalLocked()
	c.mu.Unlock()
	if cur == nil {
		return nil
	}
	if len(gone) > 0 {
		if _, _, err := cur.request(ctx, reqUnbind, mustJSON(remotesMsg{Remotes: gone})); err != nil {
			return nil // the session is going away; Run reports it
		}
	}
	c.bind(ctx, cur, bind)
	return nil
}

// bind asks s to bind rs and records the answers. Caller holds opMu.
func (c *Client) bind(ctx context.Context, s *csession, rs []Remote) {
	if len(rs) == 0 {
		return
	}
	specs := make([]string, len(rs))
	for i, r := range rs {
		specs[i] = r.String()
	}
	_, payload, err := s.request(ctx, reqBind, mustJSON(remotesMsg{Remotes: specs}))
	if err != nil {
		return // the session is going away
	}
	results, err := parseBindReply(payload, specs)
	if err != nil {
		c.log.Warn("tunnel server sent an invalid bind answer; closing the session", "err", err)
		s.fail(newError(KindLost, err, "protocol error"))
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	for i, res := range results {
		st := c.remotes[rs[i].RelayPort]
		if st == nil || st.Remote != rs[i] {
			continue // changed meanwhile
		}
		if res.OK {
			*st = RemoteState{Remote: rs[i], Status: RemoteBound, Since: now, sessionID: s.id}
			c.log.Info("tunnel up", "relayPort", rs[i].RelayPort, "to", rs[i].Target)
		} else {
			*st = RemoteState{Remote: rs[i], Status: RemoteRefused, Code: res.Code, Reason: res.Error, Since: now}
			c.log.Warn("tunnel refused by the relay", "relayPort", rs[i].RelayPort, "code", res.Code, "reason", res.Error)
		}
	}
	c.signalLocked()
}

// Run connects to the relay, binds the remotes and serves until ctx ends
// (then it returns nil) or the session is lost: it returns a *Error
// (errors.Is ErrRefused, ErrUnverified, ErrUnreachable or ErrLost). A
// migration requested by the relay happens inside Run. Run may be called
// again after it returned, never concurrently.
func (c *Client) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("tunnel client is already running")
	}
	defer c.running.Store(false)
	c.mu.Lock()
	c.runCtx = ctx
	c.mu.Unlock()
	c.setStatus(StatusConnecting, nil)
	s, err := c.connect(ctx)
	if err != nil {
		if ctx.Err() != nil {
			c.setStatus(StatusDisconnected, nil)
			return nil
		}
		c.setStatus(StatusDisconnected, err)
		return err
	}
	c.opMu.Lock()
	c.mu.Lock()
	c.cur = s
	c.sessions[s] = struct{}{}
	bind := slices.Clone(c.want)
	c.mu.Unlock()
	c.bind(ctx, s, bind)
	c.opMu.Unlock()
	c.setStatus(StatusConnected, nil)
	c.log.Info("tunnel session connected", "server", c.cfg.ServerURL, "remotes", len(bind))
	for {
		c.mu.Lock()
		cur, ch := c.cur, c.changed
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			c.closeAll()
			c.setStatus(StatusDisconnected, nil)
			return nil
		case <-cur.done:
			c.mu.Lock()
			if c.cur != cur {
				c.mu.Unlock()
				continue // replaced by a migration meanwhile
			}
			c.cur = nil
			delete(c.sessions, cur)
			for _, st := range c.remotes {
				if st.Status == RemoteBound {
					*st = RemoteState{Remote: st.Remote, Status: RemotePending, Since: time.Now()}
				}
			}
			c.mu.Unlock()
			err := cur.err
			if ctx.Err() != nil {
				c.closeAll()
				c.setStatus(StatusDisconnected, nil)
				return nil
			}
			c.setStatus(StatusDisconnected, err)
			return err
		case <-ch:
		}
	}
}

func (c *Client) closeAll() {
	c.mu.Lock()
	ss := make([]*csession, 0, len(c.sessions))
	for s := range c.sessions {
		ss = append(ss, s)
	}
	c.sessions = map[*csession]struct{}{}
	c.cur = nil
	for _, st := range c.remotes {
		if st.Status == RemoteBound {
			*st = RemoteState{Remote: st.Remote, Status: RemotePending, Since: time.Now()}
		}
	}
	c.mu.Unlock()
	for _, s := range ss {
		s.close()
		<-s.done
	}
}

// allowed reports whether target is the target of a bound remote: the
// relay may only make the agent connect where the agent's tunnels point.
func (c *Client) allowed(target string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.remotes {
		if st.Status == RemoteBound && st.Remote.Target == target {
			return true
		}
	}
	return false
}

// onUnbound records that the relay dropped a binding of s.
func (c *Client) onUnbound(s *csession, m unboundMsg) {
	r, err := ParseRemote(m.Remote)
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.remotes[r.RelayPort]
	if st == nil || st.Status != RemoteBound || st.sessionID != s.id {
		return // already bound elsewhere (a migration), or not ours any more
	}
	if m.Code == CodeMoved && c.cur != s {
		return // our own migration: the new session is taking it over
	}
	*st = RemoteState{Remote: st.Remote, Status: RemoteRefused, Code: m.Code, Reason: m.Error, Since: time.Now()}
	c.log.Warn("tunnel closed by the relay", "relayPort", r.RelayPort, "code", m.Code, "reason", m.Error)
	c.signalLocked()
}

// migrate replaces s by a new session: connect, bind every remote there
// (the relay hands the ports over without closing them), then let s
// finish its open connections and close it.
func (c *Client) migrate(old *csession) {
	c.opMu.Lock()
	c.mu.Lock()
	ctx := c.runCtx
	if c.cur != old || ctx == nil {
		c.mu.Unlock()
		c.opMu.Unlock()
		return
	}
	c.mu.Unlock()
	ns, err := c.connect(ctx)
	if err != nil {
		c.opMu.Unlock()
		c.log.Warn("could not open a new tunnel session for the relay's migration; keeping the current one", "err", err)
		return
	}
	c.mu.Lock()
	if c.cur != old {
		c.mu.Unlock()
		c.opMu.Unlock()
		ns.close()
		return
	}
	c.cur = ns
	c.sessions[ns] = struct{}{}
	bind := slices.Clone(c.want)
	c.mu.Unlock()
	c.bind(ctx, ns, bind)
	c.mu.Lock()
	c.migrations++
	c.signalLocked()
	c.mu.Unlock()
	c.opMu.Unlock()
	c.log.Info("tunnel session migrated; the previous one closes when its connections end", "remotes", len(bind))
	old.drain(ctx, c.cfg.DrainTimeout)
	c.mu.Lock()
	delete(c.sessions, old)
	c.mu.Unlock()
}
