package panel

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/portlama/portlama/internal/config"
)

type ctxKey int

const provenKey ctxKey = 1

// isProven reports whether the request carried the proxy secret.
func isProven(r *http.Request) bool {
	v, _ := r.Context().Value(provenKey).(bool)
	return v
}

// outer wraps the router with what applies to every request, outermost
// first: panic recovery (500), proof of origin (untrusted headers dropped
// without it), rate limiting (429), CORS and cross-origin protection (403).
func (s *Server) outer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic in handler", "method", r.Method, "path", r.URL.Path, "panic", v)
				writeError(w, errInternal)
			}
		}()

		w.Header().Set("X-Content-Type-Options", "nosniff")
		if strings.HasPrefix(r.URL.Path, "/api/") {
			w.Header().Set("Cache-Control", "no-store")
		}

		ok := proven(r, s.cfg.ProxySecret)
		r.Header.Del(HeaderProxySecret) // never visible to handlers
		if !ok {
			for _, h := range untrustedHeaders {
				r.Header.Del(h)
			}
		}
		r = r.WithContext(context.WithValue(r.Context(), provenKey, ok))

		if !s.limiter.allow(clientAddr(r, ok)) {
			writeError(w, errRateLimited)
			return
		}

		if origin := r.Header.Get("Origin"); origin != "" {
			allowed, err := s.originAllowed(origin, r.URL.Path)
			if err != nil {
				s.log.Error("check origin", "err", err)
				writeError(w, errInternal)
				return
			}
			if allowed {
				h := w.Header()
				h.Set("Access-Control-Allow-Origin", origin)
				h.Set("Access-Control-Allow-Credentials", "true")
				h.Add("Vary", "Origin")
				if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
					h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, OPTIONS")
					h.Set("Access-Control-Allow-Headers", "Content-Type")
					h.Set("Access-Control-Max-Age", "600")
					w.WriteHeader(http.StatusNoContent)
					return
				}
			} else if stateChanging(r) {
				writeError(w, errCrossOrigin)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func stateChanging(r *http.Request) bool {
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// AllowedOrigins returns the browser origins the panel accepts for path
// (docs/api.md, "Placement and transport" and "Cross-origin protection"): https://<ip>:9292, https://panel.<d> once a domain
// is set, and https://auth.<d> for /api/invite/*. Non-default ports (the
// demo) are appended.
func AllowedOrigins(cfg config.PanelConfig, addrs config.Addrs, path string) []string {
	ipPort := addrs.PanelIPPort
	if ipPort == 0 {
		ipPort = 9292
	}
	out := []string{"https://" + net.JoinHostPort(cfg.IP, strconv.Itoa(ipPort))}
	if d := cfg.DomainOrEmpty(); d != "" {
		out = append(out, addrs.HostURL("panel", d))
		if strings.HasPrefix(path, "/api/invite/") {
			out = append(out, addrs.HostURL("auth", d))
		}
	}
	return out
}

func (s *Server) originAllowed(origin, path string) (bool, error) {
	cfg, err := s.panel.Load()
	if err != nil {
		return false, err
	}
	for _, o := range AllowedOrigins(cfg, s.cfg.Addrs, path) {
		if origin == o {
			return true, nil
		}
	}
	return false, nil
}

// clientAddr is the rate-limit key: nginx's X-Real-IP on proven requests,
// else the connection's address.
func clientAddr(r *http.Request, isProven bool) string {
	if isProven {
		if a, err := netip.ParseAddr(strings.TrimSpace(r.Header.Get(HeaderRealIP))); err == nil {
			return a.Unmap().String()
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return host
}

// rateLimiter counts requests per address in fixed one-minute windows.
// Loopback addresses are exempt.
type rateLimiter struct {
	limit  int
	window time.Duration
	now    func() time.Time

	mu      sync.Mutex
	clients map[string]*window
}

type window struct {
	start time.Time
	count int
}

const maxTrackedClients = 10000

func newRateLimiter(limit int, w time.Duration, now func() time.Time) *rateLimiter {
	return &rateLimiter{limit: limit, window: w, now: now, clients: map[string]*window{}}
}

func (l *rateLimiter) allow(addr string) bool {
	if a, err := netip.ParseAddr(addr); err == nil && a.Unmap().IsLoopback() {
		return true
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.clients[addr]
	if !ok || now.Sub(c.start) >= l.window || now.Before(c.start) {
		if !ok && len(l.clients) >= maxTrackedClients {
			l.prune(now)
		}
		c = &window{start: now}
		l.clients[addr] = c
	}
	c.count++
	return c.count <= l.limit
}

// prune drops expired windows; when none has expired it drops all, so the
// map stays bounded under an address-spraying attack.
func (l *rateLimiter) prune(now time.Time) {
	for k, c := range l.clients {
		if now.Sub(c.start) >= l.window {
			delete(l.clients, k)
		}
	}
	if len(l.clients) >= maxTrackedClients {
		clear(l.clients)
	}
}
