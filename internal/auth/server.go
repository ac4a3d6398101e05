// Package auth is portlama-auth, the relay's forward-auth service: a login
// portal with password + TOTP, Authelia-compatible JSON login API, the nginx
// auth-request endpoint, sessions, regulation (ban after repeated failures)
// and per-host access rules. The panel manages users through the users file
// (UserStore) and TOTP secrets and sessions through a management interface
// on a Unix socket (ManageClient, on package manage): after writing users.yml
// or access-rules.json it calls ManageClient.Reload, which returns once the
// server serves exactly those files.
//
// Files in Config.Dir (docs/architecture.md, "Auth server files"), all 0600: users.yml (written by the
// panel), access-rules.json (panel), totp.json and sessions.json (this
// server), secrets.json (provisioning, created here when missing), and the
// socket manage.sock.
package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/portlama/portlama/internal/manage"
)

// File names inside Config.Dir.
const (
	UsersFileName    = "users.yml"
	TOTPFileName     = "totp.json"
	RulesFileName    = "access-rules.json"
	SecretsFileName  = "secrets.json"
	SessionsFileName = "sessions.json"
	ManageSocketName = "manage.sock"
)

// DefaultAddr is where portlama-auth listens on an installed relay.
const DefaultAddr = "127.0.0.1:9091"

// DefaultReloadInterval is the fallback check of the state files.
const DefaultReloadInterval = 30 * time.Second

func secretsPath(dir string) string { return filepath.Join(dir, SecretsFileName) }

// UsersFilePath returns the users file's path in dir.
func UsersFilePath(dir string) string { return filepath.Join(dir, UsersFileName) }

// RulesFilePath returns access-rules.json's path in dir.
func RulesFilePath(dir string) string { return filepath.Join(dir, RulesFileName) }

// ManageSocketPath returns the management socket's path in dir.
func ManageSocketPath(dir string) string { return filepath.Join(dir, ManageSocketName) }

// Config configures the auth server.
type Config struct {
	// Dir holds the auth files (Layout.AuthDir()). Created 0700 if missing.
	Dir string
	// Domain is the base domain; cookies are set on it and only hosts at
	// or below it are served and accepted as redirect targets.
	Domain string
	// PortalURL is the login portal's origin, default "https://auth.<Domain>"
	// (the demo adds a port). No trailing slash.
	PortalURL string
	// Addr is the TCP listen address, default DefaultAddr.
	Addr string
	// ManageSocket is the management socket path, default <Dir>/manage.sock.
	ManageSocket string
	// Clock returns the current time; default time.Now. Tests inject one.
	Clock func() time.Time
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// BcryptCost is the cost of the dummy hash compared for unknown users
	// (so their timing matches real ones); default DefaultBcryptCost.
	BcryptCost int
	// ReloadInterval is how often users.yml and access-rules.json are
	// checked for changes, a fallback for a change nobody announced on the
	// management socket (POST /v1/reload); default 30 s.
	ReloadInterval time.Duration
	// FlushInterval is how often session activity is saved; default 30 s.
	FlushInterval time.Duration
}

func (c *Config) setDefaults() error {
	if c.Dir == "" {
		return errors.New("auth config: Dir is required")
	}
	c.Domain = strings.ToLower(strings.TrimSuffix(c.Domain, "."))
	if c.Domain == "" || !HostUnderDomain(c.Domain, c.Domain) {
		return fmt.Errorf("auth config: invalid domain %q", c.Domain)
	}
	if c.PortalURL == "" {
		c.PortalURL = "https://auth." + c.Domain
	}
	c.PortalURL = strings.TrimSuffix(c.PortalURL, "/")
	pu, err := url.Parse(c.PortalURL)
	if err != nil || pu.Scheme != "https" || !HostUnderDomain(pu.Hostname(), c.Domain) {
		return fmt.Errorf("auth config: portal URL %q must be https on a host under %s", c.PortalURL, c.Domain)
	}
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.ManageSocket == "" {
		c.ManageSocket = ManageSocketPath(c.Dir)
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.BcryptCost == 0 {
		c.BcryptCost = DefaultBcryptCost
	}
	if c.ReloadInterval <= 0 {
		c.ReloadInterval = DefaultReloadInterval
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = 30 * time.Second
	}
	return nil
}

// userRec is a loaded user with its precomputed session binding.
type userRec struct {
	User
	pwTag string
}

// Server is the auth server. Create it with NewServer, run it with Run.
type Server struct {
	cfg      Config
	log      *slog.Logger
	key      []byte
	sessions *sessionStore
	totp     *totpStore
	reg      *regulator
	dummy    []byte        // bcrypt hash compared for unknown users
	bcryptCh chan struct{} // bounds concurrent bcrypt work (CPU, memory)

	// attempts counts credential checks (password or TOTP) actually made;
	// attemptHook, when set (tests), runs at each one.
	attempts    atomic.Int64
	attemptHook atomic.Pointer[func()]

	mu     sync.RWMutex
	users  map[string]userRec
	policy policy

	// reloadMu serialises reading and applying the state files; the stamps
	// are of the versions applied.
	reloadMu sync.Mutex
	usersSt  fileStamp
	rulesSt  fileStamp
}

// NewServer loads (or creates) the server's files in cfg.Dir and returns a
// server ready to Run. It fails on unreadable state rather than serving
// half-configured: in particular an access-rules file that exists but
// cannot be read or parsed (a missing one means no rules). A users file
// that does not parse is logged and treated as empty (nobody can sign in)
// until it is fixed; later reloads keep the last good copy of either file.
func NewServer(cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create auth directory: %w", err)
	}
	key, err := loadOrCreateSessionSecret(secretsPath(cfg.Dir))
	if err != nil {
		return nil, err
	}
	now := cfg.Clock()
	sess, err := openSessionStore(filepath.Join(cfg.Dir, SessionsFileName), key, now)
	if err != nil {
		cfg.Logger.Error("saved sessions unreadable; starting without them", "err", err)
	}
	ts, err := openTOTPStore(filepath.Join(cfg.Dir, TOTPFileName))
	if err != nil {
		return nil, err
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("portlama-dummy-password"), cfg.BcryptCost)
	if err != nil {
		return nil, fmt.Errorf("prepare dummy hash: %w", err)
	}
	s := &Server{
		cfg: cfg, log: cfg.Logger, key: key, sessions: sess, totp: ts, reg: newRegulator(),
		dummy: dummy, bcryptCh: make(chan struct{}, max(1, runtime.NumCPU()/2)),
		users: map[string]userRec{}, policy: policy{rules: ruleSet{}, hosts: map[string]bool{}},
	}
	if err := s.reload(true); err != nil {
		// A missing rules file means "no rules" (a fresh relay); one that
		// cannot be read or parsed must not mean "admit every user".
		return nil, fmt.Errorf("access rules in %s cannot be used (fix or remove the file): %w", RulesFilePath(cfg.Dir), err)
	}
	return s, nil
}

// Run serves the portal, login API and auth-request endpoint on cfg.Addr and
// the management interface on the Unix socket until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	// The management socket first: once the TCP port answers, the panel can
	// rely on the socket too.
	mln, err := manage.Listen(s.cfg.ManageSocket)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		mln.Close()
		return fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ctx, ln, mln)
}

// ListenManageSocket listens on the management socket at path (0600,
// replacing a stale socket); it is manage.Listen.
func ListenManageSocket(path string) (net.Listener, error) { return manage.Listen(path) }

// maxHeaderBytes admits what nginx admits on auth.<d> (1 MiB lines), so the
// portal can answer a browser that holds too many cookies and remove them.
const maxHeaderBytes = 2 << 20

// Serve is Run on listeners the caller opened (mln may be nil to serve no
// management interface). It returns after ctx ends and both servers have
// shut down, with session activity saved.
func (s *Server) Serve(ctx context.Context, ln, mln net.Listener) error {
	pub := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second,
		MaxHeaderBytes: maxHeaderBytes, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- pub.Serve(ln) }()
	mctx, mcancel := context.WithCancel(ctx)
	defer mcancel()
	mgmtDone := make(chan error, 1)
	if mln != nil {
		go func() { mgmtDone <- manage.Serve(mctx, mln, s.ManageHandler(), s.log) }()
	}
	s.log.Info("auth server listening", "addr", ln.Addr().String(), "domain", s.cfg.Domain)

	reloadT := time.NewTicker(s.cfg.ReloadInterval)
	flushT := time.NewTicker(s.cfg.FlushInterval)
	defer reloadT.Stop()
	defer flushT.Stop()
	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-errc:
			runErr = fmt.Errorf("serve: %w", err)
			break loop
		case err := <-mgmtDone:
			mln = nil // done
			if ctx.Err() == nil {
				runErr = err
				break loop
			}
		case <-reloadT.C:
			s.reload(false)
		case <-flushT.C:
			if err := s.sessions.flush(s.cfg.Clock()); err != nil {
				s.log.Error("save sessions", "err", err)
			}
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pub.Shutdown(sctx)
	mcancel()
	if mln != nil {
		<-mgmtDone
	}
	if err := s.sessions.flush(s.cfg.Clock()); err != nil {
		s.log.Error("save sessions", "err", err)
		if runErr == nil {
			runErr = err
		}
	}
	return runErr
}

// fileStamp identifies a file version cheaply.
type fileStamp struct {
	mod  time.Time
	size int64
	ino  uint64
	ok   bool
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	st := fileStamp{mod: fi.ModTime(), size: fi.Size(), ok: true}
	st.ino = inode(fi)
	return st
}

// stateFile is one state file as read at one moment.
type stateFile struct {
	stamp  fileStamp
	gen    string // manage.Generation of data, manage.NoFile when missing
	data   []byte
	exists bool
}

func readState(path string) (stateFile, error) {
	st := stampOf(path)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return stateFile{gen: manage.NoFile}, nil
	}
	if err != nil {
		return stateFile{}, fmt.Errorf("read %s: %w", filepath.Base(path), err)
	}
	return stateFile{stamp: st, gen: manage.Generation(data), data: data, exists: true}, nil
}

// applyState is POST /v1/reload: it reads users.yml and access-rules.json
// now and serves exactly them from the next request on, answering with
// their generations; if either does not read or parse, neither is applied
// and the error names the file.
func (s *Server) applyState(context.Context) (map[string]string, error) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	upath, rpath := UsersFilePath(s.cfg.Dir), RulesFilePath(s.cfg.Dir)
	uf, err := readState(upath)
	if err != nil {
		return nil, err
	}
	rf, err := readState(rpath)
	if err != nil {
		return nil, err
	}
	users, err := s.parseUsers(uf)
	if err != nil {
		return nil, fmt.Errorf("%s not applied: %w", UsersFileName, err)
	}
	pol, err := parsePolicy(rf)
	if err != nil {
		return nil, fmt.Errorf("%s not applied: %w", RulesFileName, err)
	}
	s.mu.Lock()
	s.users, s.policy = users, pol
	s.mu.Unlock()
	s.usersSt, s.rulesSt = uf.stamp, rf.stamp
	s.log.Info("state applied", "users", len(users), "rules", len(pol.rules), "hosts", len(pol.hosts))
	return map[string]string{UsersFileName: uf.gen, RulesFileName: rf.gen}, nil
}

// Reload reads users.yml and access-rules.json now (SIGHUP, the unit's
// reload); a file that does not parse keeps the last good state.
func (s *Server) Reload(ctx context.Context) error {
	_, err := s.applyState(ctx)
	return err
}

// reload re-reads users.yml and access-rules.json if they changed (or
// always, with force): the start-up load and the periodic fallback. A file
// that does not parse keeps the last good copy; the access rules' error is
// returned (NewServer refuses to start on it).
func (s *Server) reload(force bool) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	upath, rpath := UsersFilePath(s.cfg.Dir), RulesFilePath(s.cfg.Dir)

	if st := stampOf(upath); force || st != s.usersSt {
		uf, err := readState(upath)
		var users map[string]userRec
		if err == nil {
			users, err = s.parseUsers(uf)
		}
		if err != nil {
			s.log.Error("users file not reloaded; keeping the previous users", "path", upath, "err", err)
		} else {
			s.mu.Lock()
			s.users = users
			s.mu.Unlock()
			s.log.Info("users loaded", "count", len(users))
		}
		s.usersSt = st
	}
	var rulesErr error
	if st := stampOf(rpath); force || st != s.rulesSt {
		rf, err := readState(rpath)
		var pol policy
		if err == nil {
			pol, err = parsePolicy(rf)
		}
		if err != nil {
			rulesErr = err
			s.log.Error("access rules not reloaded; keeping the previous rules", "path", rpath, "err", err)
		} else {
			s.mu.Lock()
			s.policy = pol
			s.mu.Unlock()
			s.log.Info("access rules loaded", "count", len(pol.rules), "hosts", len(pol.hosts))
		}
		s.rulesSt = st
	}
	return rulesErr
}

// parseUsers parses a users file; a missing one means no users.
func (s *Server) parseUsers(f stateFile) (map[string]userRec, error) {
	out := map[string]userRec{}
	if !f.exists {
		return out, nil
	}
	uf, err := ParseUsersFile(f.data)
	if err != nil {
		return nil, err
	}
	for name, u := range uf.Users {
		if err := ValidateUser(name, u); err != nil {
			s.log.Warn("skipping invalid user entry", "user", name, "err", err)
			continue
		}
		if u.Disabled {
			continue
		}
		out[name] = userRec{User: u, pwTag: pwTag(s.key, u.Password)}
	}
	return out, nil
}

// parsePolicy parses access-rules.json; only a file that does not exist
// means "no rules" (and no hosts).
func parsePolicy(f stateFile) (policy, error) {
	if !f.exists {
		return newPolicy(AccessRules{})
	}
	if len(bytes.TrimSpace(f.data)) == 0 {
		// WriteAccessRules always writes a JSON document: an empty file is
		// a damaged one, not "no rules".
		return policy{}, errors.New("access rules file is empty")
	}
	ar, err := ParseAccessRules(f.data)
	if err != nil {
		return policy{}, err
	}
	return newPolicy(ar)
}

func (s *Server) user(name string) (userRec, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	u, ok := s.users[name]
	return u, ok
}

// checkPassword compares pw with the user's bcrypt hash, or with a dummy
// hash for unknown users so both take the same time.
func (s *Server) checkPassword(ctx context.Context, name, pw string) (userRec, bool) {
	s.attempted()
	select {
	case s.bcryptCh <- struct{}{}:
	case <-ctx.Done():
		return userRec{}, false
	}
	defer func() { <-s.bcryptCh }()
	u, ok := s.user(name)
	hash := s.dummy
	if ok {
		hash = []byte(u.Password)
	}
	err := bcrypt.CompareHashAndPassword(hash, []byte(pw))
	return u, ok && err == nil
}

// attempted counts one credential check and runs the test hook.
func (s *Server) attempted() {
	s.attempts.Add(1)
	if h := s.attemptHook.Load(); h != nil {
		(*h)()
	}
}

// validSession returns the two-factor (or, with minLevel 1, any) session
// for the request's cookie, checked against the current users file.
func (s *Server) validSession(r *http.Request, minLevel int, touch bool) (session, userRec, string, bool) {
	cookie, ok := sessionCookie(r)
	if !ok {
		return session{}, userRec{}, "", false
	}
	sess, ok := s.sessions.lookup(cookie, s.cfg.Clock(), touch)
	if !ok || sess.Level < minLevel {
		return session{}, userRec{}, "", false
	}
	u, ok := s.user(sess.User)
	if !ok || !hmacEqual(u.pwTag, sess.PwTag) {
		return session{}, userRec{}, "", false
	}
	return sess, u, cookie, true
}
