package panel

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/auth"
	"github.com/portlama/portlama/internal/auth/qr"
	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/regulation"
)

// Panel 2FA parameters (docs/api.md, "Panel 2FA").
const (
	panelTOTPIssuer  = "Portlama Panel"
	panelTOTPAccount = "admin"

	totpMaxFailures   = 5               // failures within totpFailureWindow …
	totpFailureWindow = 2 * time.Minute // … make the next attempt start a ban
	totpBanDuration   = 5 * time.Minute
	totpMaxTracked    = 1000 // client addresses the limiter remembers
	totpReplayWindow  = 90 * time.Second
)

var (
	errCodeFormat      = NewError(http.StatusBadRequest, "Code must be exactly 6 digits")
	errInvalidCode     = NewError(http.StatusUnauthorized, "Invalid TOTP code")
	errTwoFAEnabled    = NewError(http.StatusConflict, "2FA is already enabled")
	errTwoFANotEnabled = NewError(http.StatusBadRequest, "2FA is not enabled")
	errNoSetup         = NewError(http.StatusBadRequest, "No 2FA setup in progress. Call POST /settings/2fa/setup first.")
	errDomainFor2FA    = NewError(http.StatusBadRequest, "Domain must be configured before enabling 2FA").WithDetails(api.HintDetails{
		Hint: "Enabling 2FA turns off access to the panel by IP address, so https://panel.<domain> must work first. Complete onboarding with a domain, then try again.",
	})
)

// anyJSON accepts any JSON value unchanged. The 2FA code body uses it so
// that the code's format is checked by the handler, after the limiter.
type anyJSON struct{}

func (anyJSON) check(v any, _ []any, _ *[]Issue) any { return v }

// codeBody is the body of the 2FA routes that take a code.
var codeBody = Object(Optional("code", anyJSON{}))

// panelCode returns the 6-digit code of a validated code body; ok is false
// unless "code" is a string of exactly six ASCII digits.
func panelCode(body any) (code string, ok bool) {
	m, _ := body.(map[string]any)
	code, _ = m["code"].(string)
	if len(code) != auth.TOTPDigits {
		return "", false
	}
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			return "", false
		}
	}
	return code, true
}

// newCodeLimiter returns the panel 2FA limiter (docs/api.md, "Panel 2FA"): failures are
// counted per client address (at most totpMaxTracked addresses); once an
// address has totpMaxFailures failures within totpFailureWindow, its next
// attempt starts a ban of totpBanDuration. A correct code does not reset
// the count. It is the auth server's regulator (internal/regulation), so
// parallel attempts are counted while in flight.
func newCodeLimiter() *regulation.Regulator {
	return regulation.New(regulation.Config{
		MaxFailures:      totpMaxFailures,
		FindTime:         totpFailureWindow,
		BanTime:          totpBanDuration,
		MaxKeys:          totpMaxTracked,
		BanOnNextAttempt: true,
	})
}

func ceilSeconds(d time.Duration) int { return int((d + time.Second - 1) / time.Second) }

// replayGuard remembers accepted (secret, step) pairs for totpReplayWindow
// so a code is never accepted twice.
type replayGuard struct {
	mu   sync.Mutex
	used map[replayKey]time.Time
}

type replayKey struct {
	secret string
	step   int64
}

// accept records (secret, step) and reports whether it was not already
// accepted within the replay window.
func (g *replayGuard) accept(secret string, step int64, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.used == nil {
		g.used = map[replayKey]time.Time{}
	}
	for k, t := range g.used {
		if now.Sub(t) >= totpReplayWindow {
			delete(g.used, k)
		}
	}
	k := replayKey{secret: secret, step: step}
	if _, seen := g.used[k]; seen {
		return false
	}
	g.used[k] = now
	return true
}

// panel2FA is the state shared by the 2FA routes.
type panel2FA struct {
	s       *Server
	limiter *regulation.Regulator
	replay  replayGuard
}

// checkCode runs the limiter (429), the code format check (400) and the
// TOTP verification (401) for a request carrying a code body.
func (p *panel2FA) checkCode(c *Ctx, secret *string) error {
	now := p.s.now()
	addr := clientAddr(c.R, isProven(c.R))
	wait, ok := p.limiter.Begin(now, addr)
	if !ok {
		retry := ceilSeconds(wait)
		c.Log.Warn("panel 2FA attempts refused", "addr", addr, "retryAfter", retry)
		e := NewError(http.StatusTooManyRequests, "Too many attempts. Try again later.")
		e.RetryAfter = retry
		return e
	}
	failed := false
	defer func() { p.limiter.End(now, failed, addr) }()
	code, ok := panelCode(c.body)
	if !ok {
		return errCodeFormat
	}
	if secret == nil || *secret == "" {
		failed = true
		return errInvalidCode
	}
	step, ok := auth.CheckTOTP(*secret, code, now)
	if !ok || !p.replay.accept(*secret, step, now) {
		failed = true
		c.Log.Warn("wrong panel 2FA code", "addr", addr)
		return errInvalidCode
	}
	return nil
}

// setCookie issues a new 2FA session bound to the caller's certificate.
func (p *panel2FA) setCookie(c *Ctx, sessionSecret string) error {
	v, err := EncodeSession(NewSession(c.Identity.Serial, p.s.now()), sessionSecret)
	if err != nil {
		return fmt.Errorf("sign 2FA session: %w", err)
	}
	http.SetCookie(c.W, SessionCookie(v, int(SessionLifetime/time.Second)))
	return nil
}

// ensureSessionSecret creates sessionSecret (32 random bytes, hex) if
// absent and returns it.
func ensureSessionSecret(cfg *config.PanelConfig) error {
	if cfg.SessionSecret != nil && *cfg.SessionSecret != "" {
		return nil
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return fmt.Errorf("generate session secret: %w", err)
	}
	s := hex.EncodeToString(buf)
	cfg.SessionSecret = &s
	return nil
}

func sameSecret(a, b *string) bool { return a != nil && b != nil && *a == *b }

// registerSettings: the panel 2FA routes of docs/api.md, "Panel 2FA".
func (s *Server) registerSettings() {
	d := s.authDeps()
	p := &panel2FA{s: s, limiter: newCodeLimiter()}

	s.Handle(Route{
		Method: http.MethodGet, Path: "/api/settings/2fa",
		Access: AdminOnly, Gate: GateManagement, TwoFAExempt: true,
		Handler: func(c *Ctx) error {
			return c.OK(api.TwoFAStatus{Enabled: c.Panel.Panel2FA.Enabled, SetupComplete: c.Panel.Panel2FA.SetupComplete})
		},
	})

	s.Handle(Route{
		Method: http.MethodPost, Path: "/api/settings/2fa/setup",
		Access: AdminOnly, Gate: GateManagement,
		Handler: func(c *Ctx) error {
			if c.Panel.DomainOrEmpty() == "" {
				return errDomainFor2FA
			}
			if c.Panel.Panel2FA.Enabled {
				return errTwoFAEnabled
			}
			secret, err := auth.NewTOTPSecret()
			if err != nil {
				return err
			}
			uri := auth.TOTPURI(panelTOTPIssuer, panelTOTPAccount, secret)
			png, err := qr.PNGDataURL(uri)
			if err != nil {
				return fmt.Errorf("render 2FA QR code: %w", err)
			}
			_, err = s.panel.Update(func(cfg *config.PanelConfig) error {
				if cfg.Panel2FA.Enabled {
					return errTwoFAEnabled
				}
				cfg.Panel2FA.Enabled = false
				cfg.Panel2FA.Secret = &secret
				cfg.Panel2FA.SetupComplete = false
				return nil
			})
			if err != nil {
				return err
			}
			c.Log.Info("panel 2FA setup started")
			return c.OK(api.TwoFASetup{URI: uri, ManualKey: secret, TOTPQR: png})
		},
	})

	s.Handle(Route{
		Method: http.MethodPost, Path: "/api/settings/2fa/confirm",
		Access: AdminOnly, Gate: GateManagement,
		Body: codeBody,
		Handler: func(c *Ctx) error {
			tfa := c.Panel.Panel2FA
			if tfa.Enabled {
				return errTwoFAEnabled
			}
			if tfa.Secret == nil || *tfa.Secret == "" {
				return errNoSetup
			}
			if err := p.checkCode(c, tfa.Secret); err != nil {
				return err
			}
			cfg, err := s.panel.Update(func(cfg *config.PanelConfig) error {
				switch {
				case cfg.Panel2FA.Enabled:
					return errTwoFAEnabled
				case !sameSecret(cfg.Panel2FA.Secret, tfa.Secret):
					return errNoSetup // setup restarted meanwhile: the code was for the old secret
				}
				if err := ensureSessionSecret(cfg); err != nil {
					return err
				}
				cfg.Panel2FA.Enabled = true
				cfg.Panel2FA.SetupComplete = true
				return nil
			})
			if err != nil {
				return err
			}
			if err := d.IPVhost.Disable(c.R.Context()); err != nil {
				c.Log.Error("disable IP vhost for panel 2FA", "err", err)
				if _, rerr := s.panel.Update(func(cfg *config.PanelConfig) error {
					cfg.Panel2FA.Enabled = false
					cfg.Panel2FA.Secret = nil
					cfg.Panel2FA.SetupComplete = false
					return nil
				}); rerr != nil {
					c.Log.Error("reset panel 2FA after IP vhost failure", "err", rerr)
				}
				return Failed("Failed to disable IP vhost. 2FA was not enabled.", err)
			}
			if err := p.setCookie(c, cfg.SessionSecretOrEmpty()); err != nil {
				return err
			}
			c.Log.Info("panel 2FA enabled; IP vhost disabled")
			return c.OK(api.TwoFAEnabled{Enabled: true})
		},
	})

	s.Handle(Route{
		Method: http.MethodPost, Path: "/api/settings/2fa/verify",
		Access: AdminOnly, Gate: GateManagement, TwoFAExempt: true,
		Body: codeBody,
		Handler: func(c *Ctx) error {
			tfa := c.Panel.Panel2FA
			if !tfa.Enabled {
				return errTwoFANotEnabled
			}
			if err := p.checkCode(c, tfa.Secret); err != nil {
				return err
			}
			secret := c.Panel.SessionSecretOrEmpty()
			if secret == "" {
				cfg, err := s.panel.Update(ensureSessionSecret)
				if err != nil {
					return err
				}
				secret = cfg.SessionSecretOrEmpty()
			}
			if err := p.setCookie(c, secret); err != nil {
				return err
			}
			return c.OK(api.TwoFAVerified{Verified: true})
		},
	})

	s.Handle(Route{
		Method: http.MethodPost, Path: "/api/settings/2fa/disable",
		Access: AdminOnly, Gate: GateManagement,
		Body: codeBody,
		Handler: func(c *Ctx) error {
			tfa := c.Panel.Panel2FA
			if !tfa.Enabled {
				return errTwoFANotEnabled
			}
			if err := p.checkCode(c, tfa.Secret); err != nil {
				return err
			}
			_, err := s.panel.Update(func(cfg *config.PanelConfig) error {
				cfg.Panel2FA.Enabled = false
				cfg.Panel2FA.Secret = nil
				cfg.Panel2FA.SetupComplete = false
				cfg.SessionSecret = nil
				return nil
			})
			if err != nil {
				return err
			}
			if err := d.IPVhost.Enable(c.R.Context()); err != nil {
				c.Log.Error("re-enable IP vhost after disabling panel 2FA", "err", err)
			}
			// Drop a sliding refresh the 2FA check may have set, then clear.
			h := c.W.Header()
			kept := h.Values("Set-Cookie")[:0:0]
			for _, v := range h.Values("Set-Cookie") {
				if !strings.HasPrefix(v, SessionCookieName+"=") {
					kept = append(kept, v)
				}
			}
			h.Del("Set-Cookie")
			for _, v := range kept {
				h.Add("Set-Cookie", v)
			}
			http.SetCookie(c.W, ClearSessionCookie())
			c.Log.Info("panel 2FA disabled")
			return c.OK(api.TwoFAEnabled{Enabled: false})
		},
	})
}

// PanelIPVhostName is the nginx vhost that serves the panel by IP
// (https://<ip>:9292); panel 2FA turns it off.
const PanelIPVhostName = "portlama-panel-ip"

// VhostSwitch links and unlinks nginx vhosts (with nginx -t and a reload);
// *nginx.Manager is one.
type VhostSwitch interface {
	EnableVhost(ctx context.Context, name string) error
	DisableVhost(ctx context.Context, name string) error
}

// NamedVhost is an IPVhost for one vhost of a VhostSwitch, e.g.
// NamedVhost{Nginx: mgr, Name: PanelIPVhostName}.
type NamedVhost struct {
	Nginx VhostSwitch
	Name  string
}

// Enable links the vhost.
func (v NamedVhost) Enable(ctx context.Context) error { return v.Nginx.EnableVhost(ctx, v.Name) }

// Disable unlinks the vhost.
func (v NamedVhost) Disable(ctx context.Context) error { return v.Nginx.DisableVhost(ctx, v.Name) }
