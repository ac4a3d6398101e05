package panel

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/onboarding"
	"github.com/portlama/portlama/internal/regulation"
	"github.com/portlama/portlama/internal/system"
	"github.com/portlama/portlama/internal/webui"
)

// StatsSource provides GET /api/system/stats; *system.Collector is one.
type StatsSource interface {
	Stats(ctx context.Context) (system.Stats, error)
}

// Config is everything the panel server needs. The services (Revocations,
// Agents, Resolver, Stats, PanelStore, Relay, Auth, Provisioning) are
// required: New refuses a half-wired panel. FromRelay fills them from a
// relay opened by relay.Open, the one composition root.
type Config struct {
	Layout config.Layout
	Addrs  config.Addrs // Panel is the listen address; PanelIPPort and HTTPSPort shape the allowed origins

	// ProxySecret is the 64-hex secret nginx sends in X-Portlama-Proxy-Secret
	// (see ReadProxySecret). Without it no request is trusted: every
	// protected route answers 403.
	ProxySecret string

	Version string       // relay version for /api/health; "" → "0.0.0"
	Logger  *slog.Logger // nil → discard
	Now     func() time.Time

	Revocations Revocations         // revocation list (*pki.PKI)
	Agents      AgentDirectory      // agents registry (RegistryDirectory)
	Resolver    onboarding.Resolver // DNS for verify-dns
	Stats       StatsSource         // system stats (*system.Collector)
	// Services controls and reports the relay's services and streams
	// their logs (systemd through the root helper on a relay, the
	// supervisor in the demo and tests).
	Services system.ServiceManager

	// RateLimit is the number of requests per minute per client address;
	// 0 → 100.
	RateLimit int

	// PanelStore is panel.json.
	PanelStore *config.PanelStore

	// Relay are the services of the tunnel, certificate and enrollment
	// routes (routes_tunnels.go).
	Relay RelayDeps

	// Auth are the services of the users, invitations, panel 2FA and
	// identity routes (routes_users.go).
	Auth AuthDeps

	// Provisioning is the onboarding provisioning job
	// (routes_onboarding.go).
	Provisioning Provisioning
}

// missing lists the required dependencies cfg lacks.
func (cfg Config) missing() []string {
	var m []string
	for name, isNil := range map[string]bool{
		"Revocations": cfg.Revocations == nil, "Agents": cfg.Agents == nil, "Resolver": cfg.Resolver == nil,
		"Stats": cfg.Stats == nil, "Services": cfg.Services == nil, "PanelStore": cfg.PanelStore == nil, "Provisioning": cfg.Provisioning == nil,
	} {
		if isNil {
			m = append(m, name)
		}
	}
	m = append(m, cfg.Relay.missing()...)
	return append(m, cfg.Auth.missing()...)
}

// Server is the panel's HTTP API. It implements http.Handler.
type Server struct {
	cfg        Config
	log        *slog.Logger
	now        func() time.Time
	panel      *config.PanelStore
	onboarding *onboarding.Service
	stats      StatsSource
	limiter    *rateLimiter
	// agentChanges bounds each agent certificate's changes
	// (panel.json agentLimits).
	agentChanges *regulation.Buckets

	mux     *http.ServeMux
	routes  map[string]map[string]*Route // path pattern → method → route
	handler http.Handler
}

// New checks the configuration and panel.json (the panel refuses to start
// on an invalid document), gives panel.json a serverId if it has none, and
// returns the server with every route registered.
func New(cfg Config) (*Server, error) {
	if m := cfg.missing(); len(m) > 0 {
		slices.Sort(m)
		return nil, fmt.Errorf("panel: missing dependencies: %s", strings.Join(m, ", "))
	}
	if cfg.ProxySecret != "" {
		if err := checkProxySecret(cfg.ProxySecret); err != nil {
			return nil, fmt.Errorf("panel: proxy secret %w", err)
		}
	}
	if cfg.Version == "" {
		cfg.Version = "0.0.0"
	}
	if cfg.Addrs.PanelIPPort == 0 {
		cfg.Addrs.PanelIPPort = 9292
	}
	if cfg.Addrs.HTTPSPort == 0 {
		cfg.Addrs.HTTPSPort = 443
	}
	s := &Server{
		cfg:    cfg,
		log:    cfg.Logger,
		now:    cfg.Now,
		panel:  cfg.PanelStore,
		stats:  cfg.Stats,
		mux:    http.NewServeMux(),
		routes: map[string]map[string]*Route{},
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.onboarding = &onboarding.Service{Store: s.panel, Resolver: cfg.Resolver}
	limit := cfg.RateLimit
	if limit == 0 {
		limit = 100
	}
	s.limiter = newRateLimiter(limit, time.Minute, s.now)
	s.agentChanges = regulation.NewBuckets(0)

	if _, err := s.panel.Update(func(c *config.PanelConfig) error {
		if c.ServerID == "" {
			c.ServerID = uuid.NewString()
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("panel: %w", err)
	}
	if cfg.ProxySecret == "" {
		s.log.Warn("no proxy secret configured: identity headers are never trusted, protected routes answer 403")
	}

	s.registerRoutes()
	s.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) { writeError(w, errNotFound) })
	s.mux.Handle("/", webui.New())
	s.handler = s.outer(s.mux)
	return s, nil
}

// registerRoutes lists every route group. Add a line per new area here.
func (s *Server) registerRoutes() {
	s.registerHealth()
	s.registerOnboarding()
	s.registerSystem()
	s.registerServices()
	s.registerUsers()
	s.registerInvitations()
	s.registerSettings()
	s.registerIdentity()
	s.registerTunnels()
	s.registerSites()
	s.registerCerts()
	s.registerEnroll()
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Serve answers requests on ln until ctx is done, then shuts down
// gracefully (in-flight requests get up to 10 s).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("panel: serve: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutCtx); err != nil {
		hs.Close()
		return fmt.Errorf("panel: shutdown: %w", err)
	}
	<-errc
	return nil
}

// ListenAndServe listens on Config.Addrs.Panel (default 127.0.0.1:3100)
// and serves until ctx is done.
func (s *Server) ListenAndServe(ctx context.Context) error {
	addr := s.cfg.Addrs.Panel
	if addr == "" {
		addr = "127.0.0.1:3100"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("panel: listen on %s: %w", addr, err)
	}
	s.log.Info("panel listening", "addr", ln.Addr().String())
	return s.Serve(ctx, ln)
}
