package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/portlama/portlama/internal/validate"
)

// Management interface (HTTP over the Unix socket <Dir>/manage.sock, 0600;
// never reachable through nginx). Every answer is JSON; errors are
// {"error":"..."}.
//
//	GET    /v1/health                   → {"ok":true}
//	POST   /v1/reload                   → re-read users.yml and access-rules.json now → {"ok":true}
//	GET    /v1/users/{user}/totp        → {"configured":bool}
//	POST   /v1/users/{user}/totp        → new secret (user must exist in users.yml, else 404
//	                                      {"error":"User not found"}); ends the user's sessions;
//	                                      → {"secret","totpUri","totpQr"}
//	DELETE /v1/users/{user}/totp        → remove the secret and end the sessions
//	                                      → {"ok":true,"sessionsEnded":n}
//	DELETE /v1/users/{user}/sessions    → end the sessions → {"ok":true,"sessionsEnded":n}
//
// {user} must match the username rule, else 400.

// ManageHandler returns the management interface's handler.
func (s *Server) ManageHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	})
	mux.HandleFunc("POST /v1/reload", func(w http.ResponseWriter, r *http.Request) {
		s.reload(true)
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	})
	mux.HandleFunc("GET /v1/users/{user}/totp", s.userRoute(func(w http.ResponseWriter, user string) {
		writeJSON(w, http.StatusOK, map[string]bool{"configured": s.totp.has(user)})
	}))
	mux.HandleFunc("POST /v1/users/{user}/totp", s.userRoute(func(w http.ResponseWriter, user string) {
		s.reload(false)
		if _, ok := s.user(user); !ok {
			manageError(w, http.StatusNotFound, "User not found")
			return
		}
		enr, err := s.ResetTOTP(user)
		if err != nil {
			s.log.Error("reset TOTP", "user", user, "err", err)
			manageError(w, http.StatusInternalServerError, "Failed to write TOTP configuration")
			return
		}
		writeJSON(w, http.StatusOK, enr)
	}))
	mux.HandleFunc("DELETE /v1/users/{user}/totp", s.userRoute(func(w http.ResponseWriter, user string) {
		if _, err := s.totp.remove(user); err != nil {
			s.log.Error("delete TOTP", "user", user, "err", err)
			manageError(w, http.StatusInternalServerError, "Failed to write TOTP configuration")
			return
		}
		n, err := s.sessions.removeUser(user)
		if err != nil {
			s.log.Error("end sessions", "user", user, "err", err)
		}
		s.log.Info("TOTP removed", "user", user, "sessionsEnded", n)
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "sessionsEnded": n})
	}))
	mux.HandleFunc("DELETE /v1/users/{user}/sessions", s.userRoute(func(w http.ResponseWriter, user string) {
		n, err := s.sessions.removeUser(user)
		if err != nil {
			s.log.Error("end sessions", "user", user, "err", err)
			manageError(w, http.StatusInternalServerError, "Failed to end sessions")
			return
		}
		s.log.Info("sessions ended", "user", user, "count", n)
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "sessionsEnded": n})
	}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		manageError(w, http.StatusNotFound, "Not found")
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
			manageError(w, http.StatusBadRequest, err.Error())
			return
		}
		fn(w, user)
	}
}

func manageError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// ManageClient talks to the auth server's management socket. The panel uses
// it to hand out TOTP secrets and end sessions.
type ManageClient struct {
	socket string
	hc     *http.Client
}

// NewManageClient returns a client for the socket at path
// (ManageSocketPath(Layout.AuthDir())).
func NewManageClient(path string) *ManageClient {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		MaxIdleConns:    2,
		IdleConnTimeout: 30 * time.Second,
	}
	return &ManageClient{socket: path, hc: &http.Client{Transport: tr, Timeout: 15 * time.Second}}
}

// ManageError is an error answer from the management interface.
type ManageError struct {
	Status  int
	Message string
}

func (e *ManageError) Error() string {
	return fmt.Sprintf("auth server: %s (HTTP %d)", e.Message, e.Status)
}

// Health checks that the auth server answers.
func (c *ManageClient) Health(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/v1/health", nil)
}

// Reload makes the auth server re-read users.yml and access-rules.json now
// (it also notices changes on its own within a second).
func (c *ManageClient) Reload(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/reload", nil)
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
	req, err := http.NewRequestWithContext(ctx, method, "http://portlama-auth"+path, nil)
	if err != nil {
		return fmt.Errorf("auth server %s %s: %w", method, path, err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("auth server %s %s (socket %s): %w", method, path, c.socket, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("auth server %s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		json.Unmarshal(body, &e)
		me := &ManageError{Status: resp.StatusCode, Message: e.Error}
		if resp.StatusCode == http.StatusNotFound && e.Error == "User not found" {
			return fmt.Errorf("%w: %w", ErrUserNotFound, me)
		}
		return me
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return fmt.Errorf("auth server %s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}
