package panel

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/pki"
)

// Panel 2FA session cookie (docs/api.md, "Panel 2FA session").
const (
	SessionCookieName  = api.TwoFACookieName
	SessionLifetime    = 12 * time.Hour
	SessionIdleTimeout = 2 * time.Hour
	sessionRefreshAge  = 60 // seconds of lastActivity age before a sliding refresh
	maxSessionCookie   = 1024
)

// Session is the payload of the 2FA session cookie; times are Unix seconds.
type Session struct {
	IssuedAt     int64  `json:"iat"`
	ExpiresAt    int64  `json:"exp"`
	LastActivity int64  `json:"lastActivity"`
	CertSerial   string `json:"certSerial"`
}

// NewSession starts a session for the certificate serial at now.
func NewSession(serial string, now time.Time) Session {
	t := now.Unix()
	return Session{IssuedAt: t, ExpiresAt: t + int64(SessionLifetime/time.Second), LastActivity: t, CertSerial: serial}
}

// Errors of DecodeSession and Session.Check.
var (
	ErrSessionFormat    = errors.New("malformed 2FA session cookie")
	ErrSessionSignature = errors.New("2FA session cookie signature does not match")
	ErrSessionSecret    = errors.New("2FA session secret is missing or not hex")
	ErrSessionExpired   = errors.New("2FA session expired")
	ErrSessionIdle      = errors.New("2FA session idle for too long")
	ErrSessionSerial    = errors.New("2FA session belongs to another certificate")
)

func sessionKey(secretHex string) ([]byte, error) {
	key, err := hex.DecodeString(secretHex)
	if err != nil || len(key) == 0 {
		return nil, ErrSessionSecret
	}
	return key, nil
}

func sign(key []byte, payload string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// EncodeSession returns the cookie value "<payload>.<signature>": the
// base64url JSON payload and the base64url HMAC-SHA256 of that payload
// string keyed with the hex-decoded secret.
func EncodeSession(s Session, secretHex string) (string, error) {
	key, err := sessionKey(secretHex)
	if err != nil {
		return "", err
	}
	data, err := json.Marshal(s)
	if err != nil {
		return "", err
	}
	payload := base64.RawURLEncoding.EncodeToString(data)
	return payload + "." + sign(key, payload), nil
}

// DecodeSession checks the format and the signature (constant time) of a
// cookie value and returns its payload. It does not check the times or the
// serial; see Session.Check.
func DecodeSession(value, secretHex string) (Session, error) {
	key, err := sessionKey(secretHex)
	if err != nil {
		return Session{}, err
	}
	if len(value) > maxSessionCookie {
		return Session{}, ErrSessionFormat
	}
	payload, sig, ok := strings.Cut(value, ".")
	if !ok || payload == "" || sig == "" || strings.Contains(sig, ".") {
		return Session{}, ErrSessionFormat
	}
	// The signature is compared as its canonical base64url text, so no
	// second encoding of the same bytes is accepted.
	if !hmac.Equal([]byte(sig), []byte(sign(key, payload))) {
		return Session{}, ErrSessionSignature
	}
	data, err := base64.RawURLEncoding.Strict().DecodeString(payload)
	if err != nil {
		return Session{}, ErrSessionFormat
	}
	var s Session
	if err := json.Unmarshal(data, &s); err != nil {
		return Session{}, ErrSessionFormat
	}
	return s, nil
}

// Check reports whether the session is valid at now for the certificate
// serial (both serials are compared normalised).
func (s Session) Check(serial string, now time.Time) error {
	t := now.Unix()
	if t > s.ExpiresAt {
		return ErrSessionExpired
	}
	if t-s.LastActivity > int64(SessionIdleTimeout/time.Second) {
		return ErrSessionIdle
	}
	if !pki.SerialsEqual(s.CertSerial, serial) {
		return ErrSessionSerial
	}
	return nil
}

// SessionCookie returns the cookie carrying value with the contract's
// attributes (HttpOnly; Secure; SameSite=Strict; Path=/). maxAge is in
// seconds; a new session uses 43200.
func SessionCookie(value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name: SessionCookieName, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode,
	}
}

// ClearSessionCookie returns a cookie that deletes the session cookie.
func ClearSessionCookie() *http.Cookie {
	return &http.Cookie{
		Name: SessionCookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode,
	}
}

// checkTwoFA enforces the panel 2FA session for an admin request. It
// returns the 401 to answer or nil, and sets a refreshed cookie on w when
// lastActivity is at least 60 s old.
func checkTwoFA(w http.ResponseWriter, r *http.Request, secretHex, serial string, now time.Time) *api.Error {
	if secretHex == "" {
		return errTwoFARequired
	}
	c, err := r.Cookie(SessionCookieName)
	if err != nil {
		return errTwoFARequired
	}
	sess, err := DecodeSession(c.Value, secretHex)
	if err != nil {
		return errTwoFARequired
	}
	if err := sess.Check(serial, now); err != nil {
		return errTwoFARequired
	}
	if now.Unix()-sess.LastActivity >= sessionRefreshAge {
		sess.LastActivity = now.Unix()
		if v, err := EncodeSession(sess, secretHex); err == nil {
			http.SetCookie(w, SessionCookie(v, int(sess.ExpiresAt-now.Unix())))
		}
	}
	return nil
}
