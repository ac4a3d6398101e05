package tunnel

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	chserver "github.com/jpillora/chisel/server"
	"github.com/jpillora/chisel/share/ccrypto"
	"github.com/jpillora/chisel/share/settings"
)

// DefaultServerAddr is where the tunnel server listens (nginx proxies
// wss://tunnel.<d> to it).
const DefaultServerAddr = "127.0.0.1:9090"

// DefaultReloadInterval is how often acl.json is checked for changes.
const DefaultReloadInterval = 250 * time.Millisecond

// File names inside the tunnel directory (contract §17.8).
const (
	KeyFileName         = "server.key"
	FingerprintFileName = "fingerprint"
	ACLFileName         = "acl.json"
)

// DirConfig returns a ServerConfig with the default address and the
// contract's file names inside tunnelDir (config.Layout.TunnelDir()).
func DirConfig(tunnelDir string) ServerConfig {
	return ServerConfig{
		Addr:            DefaultServerAddr,
		KeyFile:         filepath.Join(tunnelDir, KeyFileName),
		FingerprintFile: filepath.Join(tunnelDir, FingerprintFileName),
		ACLFile:         filepath.Join(tunnelDir, ACLFileName),
	}
}

// noneUser is an always-present user that can be matched by nothing
// useful: chisel treats an empty user list as "no authentication". Its name
// is not a valid label and its password is random and never stored.
const noneUser = "!none"

// ServerConfig configures the tunnel server.
type ServerConfig struct {
	// Addr is the listen address; it must be a loopback IP and port.
	// Empty means DefaultServerAddr.
	Addr string
	// KeyFile is the server key (created if missing, chisel key format, 0600).
	KeyFile string
	// FingerprintFile receives the key fingerprint (0644).
	FingerprintFile string
	// ACLFile is acl.json (contract §17.8); watched for changes.
	ACLFile string
	// ReloadInterval is the acl.json polling interval; zero means
	// DefaultReloadInterval.
	ReloadInterval time.Duration
	// KeepAlive is the SSH keep-alive interval; zero means DefaultKeepAlive.
	KeepAlive time.Duration
	// Logger receives the server's messages; nil discards them.
	Logger *slog.Logger
	// ChiselVerbose lets chisel's own per-session messages through; chisel
	// writes those to the process's stderr.
	ChiselVerbose bool
}

// Server is the relay's tunnel server.
type Server struct {
	cfg         ServerConfig
	log         *slog.Logger
	ch          *chserver.Server
	fingerprint string
	tracker     *sessionTracker
	nonePass    string

	mu     sync.Mutex
	agents map[string]ACLAgent // applied ACL by label
	// last content of acl.json looked at (applied or rejected)
	seen       bool
	seenExists bool
	seenData   []byte
	started    bool
	watchWG    sync.WaitGroup
}

// RunServer creates the server and runs it until ctx is done.
func RunServer(ctx context.Context, cfg ServerConfig) error {
	s, err := NewServer(cfg)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

// NewServer prepares the key, fingerprint and ACL and builds the chisel
// server (reverse only, no SOCKS, no proxy). It does not listen yet.
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
	if cfg.KeyFile == "" || cfg.ACLFile == "" {
		return nil, errors.New("tunnel server: key file and acl file are required")
	}
	if cfg.ReloadInterval <= 0 {
		cfg.ReloadInterval = DefaultReloadInterval
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = DefaultKeepAlive
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
	key, err := os.ReadFile(cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("read tunnel server key: %w", err)
	}
	keyArg := cfg.KeyFile
	if ccrypto.IsChiselKey(key) {
		keyArg = strings.TrimSpace(string(key)) // chisel accepts the key inline
	}
	ch, err := chserver.NewServer(&chserver.Config{
		KeyFile:   keyArg,
		Reverse:   true,
		Socks5:    false,
		KeepAlive: cfg.KeepAlive,
	})
	if err != nil {
		return nil, fmt.Errorf("create tunnel server: %w", err)
	}
	if ch.GetFingerprint() != fp {
		return nil, fmt.Errorf("tunnel server key fingerprint mismatch (%s != %s)", ch.GetFingerprint(), fp)
	}
	ch.Info = cfg.ChiselVerbose
	ch.Logger.SetOutput(&serverLogWriter{log: log})
	nonePass, err := newPassword()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:         cfg,
		log:         log,
		ch:          ch,
		fingerprint: fp,
		tracker:     newSessionTracker(),
		nonePass:    nonePass,
		agents:      map[string]ACLAgent{},
	}
	// Users must be in place before anything listens: an empty user index
	// means "no authentication" to chisel.
	s.ch.ResetUsers(s.users(nil))
	if err := s.tracker.install(ch, s.onLogin); err != nil {
		return nil, err
	}
	if _, err := s.reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Fingerprint returns the server key fingerprint (what clients pin).
func (s *Server) Fingerprint() string { return s.fingerprint }

// Run serves until ctx is done, then closes every session.
func (s *Server) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		return err
	}
	return s.Wait()
}

// Start listens and serves in the background until ctx is done; the
// listener is bound when Start returns.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("tunnel server already started")
	}
	s.started = true
	s.mu.Unlock()
	host, port, _ := net.SplitHostPort(s.cfg.Addr)
	if err := s.ch.StartContext(ctx, host, port); err != nil {
		return fmt.Errorf("tunnel server listen on %s: %w", s.cfg.Addr, err)
	}
	s.log.Info("tunnel server listening", "addr", s.cfg.Addr, "fingerprint", s.fingerprint)
	s.watchWG.Add(1)
	go func() {
		defer s.watchWG.Done()
		s.watch(ctx)
	}()
	return nil
}

// Wait blocks until the server has stopped.
func (s *Server) Wait() error {
	err := s.ch.Wait()
	s.watchWG.Wait()
	s.tracker.closeAll()
	if err != nil {
		return fmt.Errorf("tunnel server: %w", err)
	}
	return nil
}

// Sessions returns the number of live sessions authenticated as label.
func (s *Server) Sessions(label string) int { return s.tracker.sessionsOf(label) }

func (s *Server) watch(ctx context.Context) {
	tick := time.NewTicker(s.cfg.ReloadInterval)
	defer tick.Stop()
	sweep := time.NewTicker(10 * time.Second)
	defer sweep.Stop()
	lastErr := ""
	for {
		select {
		case <-ctx.Done():
			s.tracker.closeAll()
			return
		case <-sweep.C:
			s.tracker.sweep()
		case <-tick.C:
			_, err := s.reload()
			switch {
			case err != nil && err.Error() != lastErr:
				s.log.Error("tunnel acl not applied; keeping the previous one", "err", err)
				lastErr = err.Error()
			case err == nil:
				lastErr = ""
			}
		}
	}
}

// reload applies acl.json if its content changed since the last look (the
// file is small: comparing bytes is robust to renames, coarse mtimes and
// inode reuse); it reports whether it applied a new version. A file that
// does not parse leaves the applied ACL in place.
func (s *Server) reload() (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	data, err := os.ReadFile(s.cfg.ACLFile)
	exists := true
	if errors.Is(err, os.ErrNotExist) {
		data, exists, err = nil, false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read tunnel acl: %w", err)
	}
	if s.seen && exists == s.seenExists && bytes.Equal(data, s.seenData) {
		return false, nil
	}
	s.seen, s.seenExists, s.seenData = true, exists, data
	f, err := ParseACL(data)
	if err != nil {
		return false, err
	}
	next := make(map[string]ACLAgent, len(f.Agents))
	for _, a := range f.Agents {
		next[a.Label] = a
	}
	s.ch.ResetUsers(s.users(f.Agents))
	// Close the sessions of agents that were removed, changed password or
	// lost a port; sessions of every other agent stay up.
	for label, old := range s.agents {
		nw, ok := next[label]
		reason := ""
		switch {
		case !ok:
			reason = "agent removed"
		case nw.Password != old.Password:
			reason = "credential changed"
		case lostPort(old.RelayPorts, nw.RelayPorts):
			reason = "relay port removed"
		}
		if reason != "" {
			if n := s.tracker.closeUser(label); n > 0 {
				s.log.Info("tunnel sessions closed", "agent", label, "reason", reason, "sessions", n)
			}
		}
	}
	s.agents = next
	s.log.Info("tunnel acl applied", "agents", len(next))
	return true, nil
}

func lostPort(old, nw []int) bool {
	for _, p := range old {
		if !slices.Contains(nw, p) {
			return true
		}
	}
	return false
}

// users turns ACL entries into chisel users, plus the placeholder user
// that keeps authentication on when there are no agents.
func (s *Server) users(agents []ACLAgent) []*settings.User {
	us := make([]*settings.User, 0, len(agents)+1)
	us = append(us, &settings.User{Name: noneUser, Pass: s.nonePass, Addrs: []*regexp.Regexp{regexp.MustCompile(`^$`)}})
	for _, a := range agents {
		us = append(us, &settings.User{
			Name:  a.Label,
			Pass:  a.Password,
			Addrs: []*regexp.Regexp{regexp.MustCompile(a.Pattern())},
		})
	}
	return us
}

func (s *Server) onLogin(user, addr string, ok bool) {
	if ok {
		s.log.Info("tunnel agent authenticated", "agent", user, "remote", addr)
	} else {
		s.log.Warn("tunnel login failed", "user", user, "remote", addr)
	}
}

// serverLogWriter forwards chisel's server log lines to slog.
type serverLogWriter struct{ log *slog.Logger }

func (w *serverLogWriter) Write(p []byte) (int, error) {
	sc := bufio.NewScanner(bytes.NewReader(p))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, "server: "); i >= 0 {
			line = line[i+len("server: "):]
		}
		w.log.Debug("chisel", "msg", line)
	}
	return len(p), nil
}
