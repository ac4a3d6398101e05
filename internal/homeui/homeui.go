// Package homeui is the home app's local control UI: a JSON API under
// /api/home/ and the web UI built from web/home.html, served by
// `portlama-agent ui` on 127.0.0.1 only. A per-install random token guards
// it (cookie from a one-time login link, or a header), and Host and Origin
// are checked so that neither another web page (CSRF) nor a DNS rebinding
// attack can drive it (see guard). The handlers only translate HTTP: the
// work is done by internal/servers, internal/discover, internal/agent and
// the panel client.
package homeui

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/portlama/portlama/internal/agent"
	"github.com/portlama/portlama/internal/cloud/launch"
	"github.com/portlama/portlama/internal/keychain"
	"github.com/portlama/portlama/internal/servers"
	"github.com/portlama/portlama/internal/store"
	"github.com/portlama/portlama/internal/webui"
)

//go:embed all:dist
var dist embed.FS

// Config configures the control UI.
type Config struct {
	Home     agent.Home
	Registry *servers.Registry
	// KeychainBackend and KeychainError describe the keychain in use (for
	// the status page).
	KeychainBackend string
	KeychainError   string
	Version         string
	// Token is the per-install token (LoadToken).
	Token string
	// Log receives the server's and the runner's logs (the UI shows the
	// newest lines too).
	Log *slog.Logger
	// PollInterval is the runner's agent-config poll (default 3 s: a
	// tunnel created in the UI comes up within it).
	PollInterval time.Duration
	// Cloud provisions relays on DigitalOcean (nil: the cloud routes
	// answer 503).
	Cloud *launch.Service
	// Assets is the built UI (nil: the embedded one).
	Assets fs.FS
}

// Server is a running control UI.
type Server struct {
	cfg    Config
	guard  *guard
	engine *engine
	logs   *logBuffer
	log    *slog.Logger
	ln     net.Listener
	http   *http.Server
	static http.Handler
}

// LoadToken returns the per-install token kept in dir/ui-token (0600),
// creating it on first use.
func LoadToken(dir string) (string, error) {
	path := filepath.Join(dir, "ui-token")
	if b, err := os.ReadFile(path); err == nil {
		if t := strings.TrimSpace(string(b)); len(t) >= 32 {
			return t, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read the UI token: %w", err)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	t := hex.EncodeToString(b)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	if err := store.WriteFileAtomic(path, []byte(t+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("save the UI token: %w", err)
	}
	return t, nil
}

// Listen binds addr (127.0.0.1:port; port 0 picks one). Only loopback
// addresses are accepted.
func Listen(addr string, cfg Config) (*Server, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("the control UI listens on loopback only (127.0.0.1 or ::1), not %q", host)
	}
	if len(cfg.Token) < 32 {
		return nil, errors.New("the control UI needs a token of at least 32 characters")
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 3 * time.Second
	}
	base := cfg.Log
	if base == nil {
		base = slog.New(slog.DiscardHandler)
	}
	logs := newLogBuffer(200)
	log := slog.New(teeHandler{slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}), base.Handler()})
	assets := cfg.Assets
	if assets == nil {
		sub, err := fs.Sub(dist, "dist")
		if err != nil {
			return nil, err
		}
		assets = sub
	}
	static, err := webui.FromFS(assets)
	if err != nil {
		return nil, fmt.Errorf("load the UI's files: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	s := &Server{
		cfg: cfg, guard: newGuard(cfg.Token), logs: logs, log: log, ln: ln, static: static,
		engine: &engine{home: cfg.Home, version: cfg.Version, log: log, poll: cfg.PollInterval},
	}
	s.guard.port = ln.Addr().(*net.TCPAddr).Port
	s.http = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	return s, nil
}

// Port is the port the UI listens on.
func (s *Server) Port() int { return s.guard.port }

// LoginURL returns a one-time link that logs the browser in.
func (s *Server) LoginURL() string {
	return "http://127.0.0.1:" + strconv.Itoa(s.Port()) + "/login?code=" + s.guard.LoginCode()
}

// Serve serves until ctx ends, then stops the runner.
func (s *Server) Serve(ctx context.Context) error {
	if cur, err := s.cfg.Registry.Current(); err == nil && cur.Kind == servers.KindAgent {
		if err := s.engine.ensure(ctx, cur.ID); err != nil {
			s.log.Error("could not start the tunnels", "server", cur.ID, "err", err)
		}
	}
	if err := s.writeRunning(); err != nil {
		s.log.Warn("could not record the running UI", "err", err)
	}
	defer s.removeRunning()
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(s.ln) }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		s.engine.Stop()
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.http.Shutdown(sctx)
	s.engine.Stop()
	return err
}

// Handler is the whole UI behind the guard.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	s.routes(mux)
	mux.Handle("/", s.static)
	return s.guard.wrap(mux, func(r *http.Request) bool {
		// The app's files carry nothing secret; every API call needs the token.
		return !strings.HasPrefix(r.URL.Path, "/api/")
	})
}

// writeJSON answers v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers the panel's error envelope {"error": msg}.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// KeychainStatus describes keychain.Open's result for Config.
func KeychainStatus(k keychain.Keychain, err error) (backend, problem string) {
	if err != nil {
		return "", err.Error()
	}
	return k.Backend(), ""
}

// Built reports whether the UI is embedded in this binary (make ui).
func Built() bool {
	_, err := fs.Stat(dist, "dist/index.html")
	return err == nil
}
