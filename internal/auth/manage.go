package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"time"

	"github.com/portlama/portlama/internal/manage"
	"github.com/portlama/portlama/internal/validate"
)

// Management interface: HTTP over the Unix socket <Dir>/manage.sock (0600;
// never reachable through nginx), served by package manage. Every answer is
// JSON; errors are {"error":"..."}.
//
//	GET    /v1/health                   → {"ok":true}
//	POST   /v1/reload                   → read users.yml and access-rules.json now and serve them
//	                                      → {"ok":true,"generations":{"users.yml":"sha256:…","access-rules.json":"sha256:…"}}
//	                                      (manage.Ack; "none" for a missing file); content that does
//	                                      not parse → 409 {"error":...}, nothing applied
//	GET    /v1/users/{user}/totp        → {"configured":bool}
//	POST   /v1/users/{user}/totp        → new secret (user must exist in users.yml, else 404
//	                                      {"error":"User not found"}); ends the user's sessions;
//	                                      → {"secret","totpUri","totpQr"}
//	DELETE /v1/users/{user}/totp        → remove the secret and end the sessions
//	                                      → {"ok":true,"sessionsEnded":n}
//	DELETE /v1/users/{user}/sessions    → end the sessions → {"ok":true,"sessionsEnded":n}
//
// {user} must match the username rule, else 400.

// ManageHandler returns the management interface's routes (manage.Serve
// adds /v1/health).
func (s *Server) ManageHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST "+manage.ReloadPath, manage.ReloadHandler(s.applyState))
	mux.HandleFunc("GET /v1/users/{user}/totp", s.userRoute(func(w http.ResponseWriter, user string) {
		manage.WriteJSON(w, http.StatusOK, map[string]bool{"configured": s.totp.has(user)})
	}))
	mux.HandleFunc("POST /v1/users/{user}/totp", s.userRoute(func(w http.ResponseWriter, user string) {
		s.reload(false)
		if _, ok := s.user(user); !ok {
			manage.WriteError(w, http.StatusNotFound, "User not found")
			return
		}
		enr, err := s.ResetTOTP(user)
		if err != nil {
			s.log.Error("reset TOTP", "user", user, "err", err)
			manage.WriteError(w, http.StatusInternalServerError, "Failed to write TOTP configuration")
			return
		}
		manage.WriteJSON(w, http.StatusOK, enr)
	}))
	mux.HandleFunc("DELETE /v1/users/{user}/totp", s.userRoute(func(w http.ResponseWriter, user string) {
		if _, err := s.totp.remove(user); err != nil {
			s.log.Error("delete TOTP", "user", user, "err", err)
			manage.WriteError(w, http.StatusInternalServerError, "Failed to write TOTP configuration")
			return
		}
		n, err := s.sessions.removeUser(user)
		if err != nil {
			s.log.Error("end sessions", "user", user, "err", err)
		}
		s.log.Info("TOTP removed", "user", user, "sessionsEnded", n)
		manage.WriteJSON(w, http.StatusOK, map[string]any{"ok": true, "sessionsEnded": n})
	}))
	mux.HandleFunc("DELETE /v1/users/{user}/sessions", s.userRoute(func(w http.ResponseWriter, user string) {
		n, err := s.sessions.removeUser(user)
		if err != nil {
			s.log.Error("end sessions", "user", user, "err", err)
			manage.WriteError(w, http.StatusInternalServerError, "Failed to end sessions")
			return
		}
		s.log.Info("sessions ended", "user", user, "count", n)
		manage.WriteJSON(w, http.StatusOK, map[string]any{"ok": true, "sessionsEnded": n})
	}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		manage.WriteError(w, http.StatusNotFound, "Not found")
	})
	return mux
}

// ResetTOTP gives user a new TOTP secret (the old one stops working at once)
// and ends the user's sessions. It does not check that the user exists.
func (s *Server) ResetTOTP(user string) (TOTPEnrollment, error) {
	secret, err := NewTOTPSecret()
	if err != nil {
		return TOTPEnrollment{}, err
	}
	enr, err := NewTOTPEnrollment(totpIssuer, user, secret)
	if err != nil {
		return TOTPEnrollment{}, err
	}
	if err := s.totp.set(user, secret, s.cfg.Clock()); err != nil {
		return TOTPEnrollment{}, err
	}
	if n, err := s.sessions.removeUser(user); err != nil {
		s.log.Error("end sessions", "user", user, "err", err)
	} else {
		s.log.Info("TOTP reset", "user", user, "sessionsEnded", n)
	}
	return enr, nil
}

func (s *Server) userRoute(fn func(http.ResponseWriter, string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		user := r.PathValue("user")
		if err := validate.Username(user); err != nil {
			manage.WriteError(w, http.StatusBadRequest, err.Error())
			return
		}
		fn(w, user)
	}
}

// ManageClient talks to the auth server's management socket. The panel uses
// it to apply users and access rules, hand out TOTP secrets and end
// sessions.
type ManageClient struct {
	mc  *manage.Client
	dir string
}

// manageTimeout bounds the TOTP and session calls (Reload uses
// manage.DefaultTimeout).
const manageTimeout = 15 * time.Second

// NewManageClient returns a client for the socket at path
// (ManageSocketPath(Layout.AuthDir())); the state files are the ones in the
// socket's directory.
func NewManageClient(path string) *ManageClient {
	return &ManageClient{mc: manage.NewClient("auth server", path).WithTimeout(manageTimeout), dir: filepath.Dir(path)}
}

// ManageError is an error answer from the management interface.
type ManageError = manage.Error

// Health checks that the auth server answers.
func (c *ManageClient) Health(ctx context.Context) error {
	return c.mc.Health(ctx)
}

// Reload makes the auth server apply users.yml and access-rules.json now
// and returns once it serves exactly their current content: a request the
// auth server answers after Reload returns is decided by them. An error
// wraps manage.ErrNotConfirmed (not running, no answer in
// manage.DefaultTimeout, other content) or is a *manage.RejectedError
// (content refused; the previous state stays in force). Either way the
// files are saved; the server also checks them every 30 s.
func (c *ManageClient) Reload(ctx context.Context) error {
	return c.mc.WithTimeout(manage.DefaultTimeout).Notify(ctx, UsersFilePath(c.dir), RulesFilePath(c.dir))
}

// HasTOTP reports whether user has a TOTP secret.
func (c *ManageClient) HasTOTP(ctx context.Context, user string) (bool, error) {
	var out struct {
		Configured bool `json:"configured"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/users/"+url.PathEscape(user)+"/totp", &out)
	return out.Configured, err
}

// ResetTOTP creates or replaces user's TOTP secret and returns it with its
// otpauth URI and QR code. The user must already be in users.yml, else the
// error wraps ErrUserNotFound.
func (c *ManageClient) ResetTOTP(ctx context.Context, user string) (TOTPEnrollment, error) {
	var out TOTPEnrollment
	err := c.do(ctx, http.MethodPost, "/v1/users/"+url.PathEscape(user)+"/totp", &out)
	return out, err
}

// DeleteTOTP removes user's TOTP secret and ends their sessions (for a
// deleted user). It returns the number of sessions ended.
func (c *ManageClient) DeleteTOTP(ctx context.Context, user string) (int, error) {
	var out struct {
		N int `json:"sessionsEnded"`
	}
	err := c.do(ctx, http.MethodDelete, "/v1/users/"+url.PathEscape(user)+"/totp", &out)
	return out.N, err
}

// EndSessions ends every session of user (after a password change) and
// returns how many there were.
func (c *ManageClient) EndSessions(ctx context.Context, user string) (int, error) {
	var out struct {
		N int `json:"sessionsEnded"`
	}
	err := c.do(ctx, http.MethodDelete, "/v1/users/"+url.PathEscape(user)+"/sessions", &out)
	return out.N, err
}

func (c *ManageClient) do(ctx context.Context, method, path string, out any) error {
	err := c.mc.Do(ctx, method, path, nil, out)
	var me *manage.Error
	if errors.As(err, &me) && me.Status == http.StatusNotFound && me.Message == "User not found" {
		return fmt.Errorf("%w: %w", ErrUserNotFound, me)
	}
	return err
}
