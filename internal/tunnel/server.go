package tunnel

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jpillora/chisel/share/ccrypto"
	"golang.org/x/crypto/ssh"

	"github.com/portlama/portlama/internal/manage"
)

// DefaultServerAddr is where the tunnel server listens (nginx proxies
// wss://tunnel.<d> to it).
const DefaultServerAddr = "127.0.0.1:9090"

// DefaultReloadInterval is how often acl.json is checked without a
// notification: a fallback only, the panel notifies through the
// management socket.
const DefaultReloadInterval = 30 * time.Second

// DefaultKeepAlive is the SSH keep-alive interval of both ends (chisel's
// default); a peer that does not answer a ping within it is dropped.
const DefaultKeepAlive = 25 * time.Second

// DefaultHandshakeTimeout bounds the SSH handshake and the config request
// of a new session.
const DefaultHandshakeTimeout = 30 * time.Second

// File names inside the tunnel directory (docs/architecture.md, "Tunnel server files").
const (
	KeyFileName         = "server.key"
	FingerprintFileName = "fingerprint"
	ACLFileName         = "acl.json"
	ManageSocketName    = "manage.sock"
)

// DirConfig returns a ServerConfig with the default address and the
// contract's file names inside tunnelDir (config.Layout.TunnelDir()).
func DirConfig(tunnelDir string) ServerConfig {
	return ServerConfig{
		Addr:            DefaultServerAddr,
		KeyFile:         filepath.Join(tunnelDir, KeyFileName),
		FingerprintFile: filepath.Join(tunnelDir, FingerprintFileName),
		ACLFile:         filepath.Join(tunnelDir, ACLFileName),
		SecretFile:      filepath.Join(tunnelDir, ProxySecretFileName),
		ManageSocket:    filepath.Join(tunnelDir, ManageSocketName),
	}
}

// ServerConfig configures the tunnel server.
type ServerConfig struct {
	// Addr is the listen address; it must be a loopback IP and port.
	// Empty means DefaultServerAddr.
	Addr string
	// KeyFile is the server key (created if missing, chisel key format, 0600).
	KeyFile string
	// FingerprintFile receives the key fingerprint (0644).
	FingerprintFile string
	// ACLFile is acl.json (docs/architecture.md, "Tunnel server files").
	ACLFile string
	// SecretFile holds the secret nginx proves itself with (HeaderSecret);
	// created if missing (EnsureProxySecret).
	SecretFile string
	// ManageSocket is the management socket (POST /v1/reload, GET
	// /v1/status, POST /v1/migrate); empty means none.
	ManageSocket string
	// ReloadInterval is the acl.json polling interval (the fallback when
	// no notification comes); zero means DefaultReloadInterval.
	ReloadInterval time.Duration
	// KeepAlive is the SSH keep-alive interval; zero means DefaultKeepAlive.
	KeepAlive time.Duration
	// HandshakeTimeout bounds a new session's handshake; zero means
	// DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// Logger receives the server's messages; nil discards them.
	Logger *slog.Logger
}

// Server is the relay's tunnel server: chisel's protocol, Portlama's
// sessions. Build it with NewServer, then Start and Wait (or Run).
type Server struct {
	cfg         ServerConfig
	log         *slog.Logger
	fingerprint string
	sshConf     ssh.ServerConfig // template; PasswordCallback is set per connection
	upgrader    websocket.Upgrader
	dummyPass   string

	reloadMu sync.Mutex // one reload at a time (file read + apply)

	mu       sync.Mutex
	secret   string
	agents   map[string]ACLAgent // applied ACL by label
	aclGen   string              // generation of the applied acl.json
	badGen   string              // generation of the last refused acl.json
	sessions map[*session]struct{}
	bindings map[bindKey]*binding
	changed  chan struct{} // closed and replaced on every session or binding change
	nextID   uint64
	closed   bool

	startOnce sync.Once
	started   bool
	httpSrv   *http.Server
	wg        sync.WaitGroup
	errc      chan error
}

// NewServer checks cfg, prepares the key, fingerprint and proxy secret and
// applies acl.json (it must be valid at start). It does not listen yet.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = DefaultServerAddr
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("tunnel server address %q: %w", cfg.Addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("tunnel server address %q: must be a loopback IP (nginx fronts it)", cfg.Addr)
	}
	if cfg.KeyFile == "" || cfg.ACLFile == "" || cfg.SecretFile == "" {
		return nil, errors.New("tunnel server: key file, acl file and secret file are required")
	}
	if cfg.ReloadInterval <= 0 {
		cfg.ReloadInterval = DefaultReloadInterval
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(cfg.KeyFile), 0o700); err != nil {
		return nil, fmt.Errorf("create tunnel directory: %w", err)
	}
	fp, err := EnsureKey(cfg.KeyFile, cfg.FingerprintFile)
	if err != nil {
		return nil, err
	}
	signer, err := loadSigner(cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	if got := ccrypto.FingerprintKey(signer.PublicKey()); got != fp {
		return nil, fmt.Errorf("tunnel server key fingerprint mismatch (%s != %s)", got, fp)
	}
	secret, err := EnsureProxySecret(cfg.SecretFile)
	if err != nil {
		return nil, err
	}
	dummy, err := newPassword()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:         cfg,
		log:         log,
		fingerprint: fp,
		dummyPass:   dummy,
		secret:      secret,
		agents:      map[string]ACLAgent{},
		sessions:    map[*session]struct{}{},
		bindings:    map[bindKey]*binding{},
		changed:     make(chan struct{}),
		errc:        make(chan error, 2),
	}
	s.sshConf = ssh.ServerConfig{ServerVersion: sshServerVersion}
	s.sshConf.AddHostKey(signer)
	s.upgrader = websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		Subprotocols:     []string{chiselProtocol},
		ReadBufferSize:   wsReadBuffer,
		WriteBufferPool:  &sync.Pool{},
		// Not a browser endpoint: the proof secret decides.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	if _, err := s.Reload(context.Background()); err != nil {
		return nil, err
	}
	return s, nil
}

func loadSigner(keyFile string) (ssh.Signer, error) {
	key, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("read tunnel server key: %w", err)
	}
	pemBytes, err := keyPEM(key)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.ParsePrivateKey(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("parse tunnel server key: %w", err)
	}
	return signer, nil
}

// Fingerprint returns the server key fingerprint (what clients pin).
func (s *Server) Fingerprint() string { return s.fingerprint }

// Run serves until ctx is done, then closes every session.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	return s.Wait()
}

// Start listens (management socket first, then the tunnel address) and
// serves in the background until ctx is done; both are bound when Start
// returns.
func (s *Server) Start(ctx context.Context) error {
	err := errors.New("tunnel server already started")
	s.startOnce.Do(func() { err = s.start(ctx) })
	return err
}

func (s *Server) start(ctx context.Context) error {
	var mln net.Listener
	if s.cfg.ManageSocket != "" {
		var err error
		if mln, err = manage.Listen(s.cfg.ManageSocket); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		if mln != nil {
			mln.Close()
		}
		return fmt.Errorf("tunnel server listen on %s: %w", s.cfg.Addr, err)
	}
	s.started = true
	s.httpSrv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	s.log.Info("tunnel server listening", "addr", s.cfg.Addr, "fingerprint", s.fingerprint)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.errc <- fmt.Errorf("tunnel server: %w", err)
		}
	}()
	if mln != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := manage.Serve(ctx, mln, s.manageHandler(), s.log); err != nil {
				s.errc <- err
			}
		}()
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.watch(ctx)
		s.shutdown()
	}()
	return nil
}

// Wait blocks until the server has stopped (its context ended, or serving
// failed).
func (s *Server) Wait() error {
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case err := <-s.errc:
		s.shutdown()
		<-done
		return err
	}
}

// shutdown stops accepting and closes every session and binding.
func (s *Server) shutdown() {
	if s.httpSrv != nil {
		s.httpSrv.Close()
	}
	s.mu.Lock()
	s.closed = true
	for sess := range s.sessions {
		s.closeSessionLocked(sess, "tunnel server stopping")
	}
	s.mu.Unlock()
}

func (s *Server) watch(ctx context.Context) {
	tick := time.NewTicker(s.cfg.ReloadInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			// Errors are logged by Reload, once per content.
			s.Reload(ctx)
		}
	}
}

// Reload re-reads acl.json (and the proxy secret) and applies it now,
// closing exactly what lost its access (see applyLocked). It returns the
// generation of the acl.json content the server now serves from. Content
// that does not parse is refused with an error and the previous ACL stays.
// It is the management socket's POST /v1/reload.
func (s *Server) Reload(ctx context.Context) (map[string]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	data, err := os.ReadFile(s.cfg.ACLFile)
	gen := manage.NoFile
	switch {
	case errors.Is(err, fs.ErrNotExist):
		data = nil
	case err != nil:
		return nil, fmt.Errorf("read tunnel acl: %w", err)
	default:
		gen = manage.Generation(data)
	}
	if secret, err := ReadProxySecret(s.cfg.SecretFile); err != nil {
		s.log.Error("tunnel proxy secret unreadable; keeping the previous one", "err", err)
	} else {
		s.mu.Lock()
		s.secret = secret
		s.mu.Unlock()
	}
	f, perr := ParseACL(data)
	s.mu.Lock()
	if perr != nil {
		if gen != s.badGen {
			s.log.Error("tunnel acl not applied; keeping the previous one", "err", perr)
			s.badGen = gen
		}
		s.mu.Unlock()
		return nil, fmt.Errorf("%s: %w", ACLFileName, perr)
	}
	s.badGen = ""
	var notes []notice
	if gen != s.aclGen {
		notes = s.applyLocked(f)
		s.aclGen = gen
		s.log.Info("tunnel acl applied", "agents", len(f.Agents), "generation", gen)
	}
	s.mu.Unlock()
	sendNotices(notes)
	return map[string]string{ACLFileName: gen}, nil
}

// applyLocked makes the live state match the ACL f: sessions of agents
// that were removed or whose password changed are closed; bindings whose
// port left their agent's list are closed (their listener and every
// connection through them); nothing else is touched. It returns the
// notices to send once s.mu is released.
func (s *Server) applyLocked(f ACLFile) []notice {
	next := make(map[string]ACLAgent, len(f.Agents))
	for _, a := range f.Agents {
		next[a.Label] = a
	}
	for sess := range s.sessions {
		a, ok := next[sess.label]
		switch {
		case !ok:
			s.closeSessionLocked(sess, "agent removed")
		case a.Password != sess.password:
			s.closeSessionLocked(sess, "credential changed")
		}
	}
	var notes []notice
	for key, b := range s.bindings {
		if a, ok := next[key.label]; ok && slices.Contains(a.RelayPorts, key.port) {
			continue
		}
		owner, r := b.current()
		s.dropBindingLocked(b)
		s.log.Info("tunnel binding closed", "agent", key.label, "relayPort", key.port, "reason", "relay port no longer allowed")
		notes = append(notes, notice{owner, unboundMsg{Remote: r.String(), Code: CodeRemoved,
			Error: fmt.Sprintf("the relay no longer allows relay port %d for this agent (tunnel disabled, deleted or moved)", key.port)}})
	}
	s.agents = next
	s.signalLocked()
	return notes
}

// signalLocked wakes everyone waiting for a change of sessions or bindings.
func (s *Server) signalLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// checkPassword is the SSH password check of a connection whose client
// certificate names certLabel: the user must be that label, and the
// password that agent's (compared in constant time). It returns the
// password that matched.
func (s *Server) checkPassword(certLabel, user string, pw []byte, addr string) (string, error) {
	s.mu.Lock()
	a, ok := s.agents[user]
	s.mu.Unlock()
	want := s.dummyPass
	if ok {
		want = a.Password
	}
	match := subtle.ConstantTimeCompare(pw, []byte(want)) == 1
	// The user name is the client's text: log a bounded prefix.
	const maxLogged = 63
	if len(user) > maxLogged {
		user = user[:maxLogged] + "…"
	}
	switch {
	case !ok || !match:
		s.log.Warn("tunnel login refused: unknown agent or wrong password", "user", user, "certificate", certLabel, "remote", addr)
	case user != certLabel:
		s.log.Warn("tunnel login refused: the credential belongs to another agent than the client certificate", "user", user, "certificate", certLabel, "remote", addr)
	default:
		return want, nil
	}
	return "", errors.New("access denied")
}

// Sessions returns the number of live sessions authenticated as label.
func (s *Server) Sessions(label string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for sess := range s.sessions {
		if sess.label == label {
			n++
		}
	}
	return n
}

// Status is the tunnel server's state (GET /v1/status).
type Status struct {
	// ACLGeneration is the generation of the acl.json content in force.
	ACLGeneration string        `json:"aclGeneration"`
	Agents        []AgentStatus `json:"agents"`
}

// AgentStatus is one agent of the ACL.
type AgentStatus struct {
	Label string `json:"label"`
	// Sessions is the number of live sessions (normally 0 or 1; 2 while
	// one migrates).
	Sessions     int             `json:"sessions"`
	AllowedPorts []int           `json:"allowedPorts"`
	BoundPorts   []int           `json:"boundPorts"`
	Clients      []SessionStatus `json:"clients"`
}

// SessionStatus is one live session.
type SessionStatus struct {
	ID uint64 `json:"id"`
	// Client is "portlama" (per-tunnel control) or "chisel" (stock client).
	Client   string    `json:"client"`
	Version  string    `json:"version,omitempty"`
	Since    time.Time `json:"since"`
	Ports    []int     `json:"ports"`
	Channels int64     `json:"channels"`
}

// Status returns the agents of the ACL with their sessions and bound
// ports, sorted by label.
func (s *Server) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{ACLGeneration: s.aclGen, Agents: []AgentStatus{}}
	byLabel := map[string]*AgentStatus{}
	for label, a := range s.agents {
		as := &AgentStatus{Label: label, AllowedPorts: slices.Clone(a.RelayPorts), BoundPorts: []int{}, Clients: []SessionStatus{}}
		slices.Sort(as.AllowedPorts)
		byLabel[label] = as
	}
	for sess := range s.sessions {
		as := byLabel[sess.label]
		if as == nil {
			continue // being closed
		}
		ss := SessionStatus{ID: sess.id, Client: sess.clientKind(), Version: sess.version, Since: sess.since, Ports: []int{}, Channels: sess.active.Load()}
		for key := range sess.bindings {
			ss.Ports = append(ss.Ports, key.port)
			as.BoundPorts = append(as.BoundPorts, key.port)
		}
		slices.Sort(ss.Ports)
		as.Sessions++
		as.Clients = append(as.Clients, ss)
	}
	for _, as := range byLabel {
		slices.Sort(as.BoundPorts)
		sort.Slice(as.Clients, func(i, j int) bool { return as.Clients[i].ID < as.Clients[j].ID })
		st.Agents = append(st.Agents, *as)
	}
	sort.Slice(st.Agents, func(i, j int) bool { return st.Agents[i].Label < st.Agents[j].Label })
	return st
}

// MigrateResult is the outcome of MigrateAll (POST /v1/migrate).
type MigrateResult struct {
	// Asked is the number of Portlama sessions asked to reconnect.
	Asked int `json:"asked"`
	// Migrated is how many of them were replaced: all their bindings are
	// held by a new session (the old one closes once its connections end).
	Migrated int `json:"migrated"`
	// Pending is how many had not finished when the wait ended.
	Pending int `json:"pending"`
	// Failed is how many refused or did not take the request.
	Failed int `json:"failed"`
	// Stock is the number of stock chisel sessions, which cannot migrate.
	Stock int `json:"stock"`
}

// MigrateAll asks every Portlama session that holds bindings to reconnect
// make-before-break (after an nginx reload, so the WebSockets held by old
// nginx workers end and the workers exit). It returns once every asked
// session has ended or handed all its bindings to a new session, or when
// ctx ends (then with ctx's error and Pending > 0).
func (s *Server) MigrateAll(ctx context.Context) (MigrateResult, error) {
	s.mu.Lock()
	var res MigrateResult
	var asked []*session
	for sess := range s.sessions {
		switch {
		case !sess.ext:
			res.Stock++
		case len(sess.bindings) > 0:
			asked = append(asked, sess)
		}
	}
	s.mu.Unlock()
	res.Asked = len(asked)
	refused := make(chan *session, len(asked))
	for _, sess := range asked {
		go func() {
			ok, _, err := sess.conn.SendRequest(reqMigrate, true, nil)
			if err != nil || !ok {
				refused <- sess
			}
		}()
	}
	gaveUp := map[*session]bool{}
	for {
		s.mu.Lock()
		pending := 0
		for _, sess := range asked {
			if _, live := s.sessions[sess]; live && len(sess.bindings) > 0 && !gaveUp[sess] {
				pending++
			}
		}
		ch := s.changed
		s.mu.Unlock()
		res.Pending = pending
		res.Migrated = res.Asked - pending - len(gaveUp)
		if pending == 0 {
			return res, nil
		}
		select {
		case <-ch:
		case sess := <-refused:
			gaveUp[sess] = true
			res.Failed = len(gaveUp)
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
}
