package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"sync"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"

	"github.com/portlama/portlama/internal/auth/qr"
	"github.com/portlama/portlama/internal/store"
)

// TOTP parameters (docs/api.md, "Users and identity" and "Panel 2FA"): SHA-1, 6 digits, 30-second steps,
// the previous, current and next step accepted.
const (
	TOTPPeriod     = 30
	TOTPDigits     = 6
	TOTPSkew       = 1
	totpSecretSize = 20
	totpIssuer     = "Portlama"
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewTOTPSecret returns a new random 20-byte secret, base32 without padding
// (32 characters).
func NewTOTPSecret() (string, error) {
	buf := make([]byte, totpSecretSize)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("generate TOTP secret: %w", err)
	}
	return b32.EncodeToString(buf), nil
}

// TOTPURI returns the otpauth URI for a secret:
// otpauth://totp/<issuer>:<account>?secret=<B32>&issuer=<issuer>&algorithm=SHA1&digits=6&period=30.
// Issuer and account are percent-encoded (a space becomes %20).
func TOTPURI(issuer, account, secret string) string {
	esc := func(s string) string { return url.PathEscape(s) }
	return "otpauth://totp/" + esc(issuer) + ":" + esc(account) +
		"?secret=" + secret + "&issuer=" + esc(issuer) +
		"&algorithm=SHA1&digits=6&period=30"
}

// TOTPEnrollment is what a new TOTP secret is handed out as.
type TOTPEnrollment struct {
	Secret string `json:"secret"`
	URI    string `json:"totpUri"`
	QR     string `json:"totpQr"` // data:image/png;base64,...
}

// NewTOTPEnrollment renders the URI and QR code for secret.
func NewTOTPEnrollment(issuer, account, secret string) (TOTPEnrollment, error) {
	uri := TOTPURI(issuer, account, secret)
	png, err := qr.PNGDataURL(uri)
	if err != nil {
		return TOTPEnrollment{}, err
	}
	return TOTPEnrollment{Secret: secret, URI: uri, QR: png}, nil
}

// CheckTOTP reports whether code is valid for secret at time now, accepting
// the previous, current and next 30-second step, and returns the matching
// step (Unix time / 30). Comparisons are constant-time. Callers refuse a
// step they already accepted for the same secret (replay).
func CheckTOTP(secret, code string, now time.Time) (step int64, ok bool) {
	if len(code) != TOTPDigits {
		return 0, false
	}
	for i := 0; i < TOTPDigits; i++ {
		if code[i] < '0' || code[i] > '9' {
			return 0, false
		}
	}
	cur := now.Unix() / TOTPPeriod
	found := int64(-1)
	for d := int64(-TOTPSkew); d <= TOTPSkew; d++ {
		s := cur + d
		if s < 0 {
			continue
		}
		want, err := hotp.GenerateCodeCustom(secret, uint64(s), hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			return 0, false
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && found < 0 {
			found = s
		}
	}
	if found < 0 {
		return 0, false
	}
	return found, true
}

// totpEntry is one user's record in totp.json (docs/architecture.md, "Auth server files"). LastStep is
// the last accepted step, kept so a code is never accepted twice.
type totpEntry struct {
	Secret    string `json:"secret"`
	Algorithm string `json:"algorithm"`
	Digits    int    `json:"digits"`
	Period    int    `json:"period"`
	CreatedAt string `json:"createdAt"`
	LastStep  int64  `json:"lastStep,omitempty"`
}

type totpDoc struct {
	Users map[string]totpEntry `json:"users"`
}

// totpStore keeps TOTP secrets; only the auth server writes totp.json.
type totpStore struct {
	path string
	mu   sync.Mutex
	doc  totpDoc
}

func openTOTPStore(path string) (*totpStore, error) {
	s := &totpStore{path: path, doc: totpDoc{Users: map[string]totpEntry{}}}
	d, err := store.NewDoc[totpDoc](path, 0o600).Load()
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("load TOTP secrets: %w", err)
	}
	if d.Users != nil {
		s.doc = d
	}
	return s, nil
}

func (s *totpStore) saveLocked() error {
	data, err := store.Marshal(s.doc)
	if err != nil {
		return fmt.Errorf("encode TOTP secrets: %w", err)
	}
	if err := store.WriteFileAtomic(s.path, data, 0o600); err != nil {
		return fmt.Errorf("write TOTP secrets: %w", err)
	}
	return nil
}

func (s *totpStore) has(user string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.doc.Users[user]
	return ok
}

// set stores a new secret for user, replacing any old one.
func (s *totpStore) set(user, secret string, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, had := s.doc.Users[user]
	s.doc.Users[user] = totpEntry{Secret: secret, Algorithm: "SHA1", Digits: TOTPDigits, Period: TOTPPeriod,
		CreatedAt: now.UTC().Format(timeFormat)}
	if err := s.saveLocked(); err != nil {
		if had {
			s.doc.Users[user] = old
		} else {
			delete(s.doc.Users, user)
		}
		return err
	}
	return nil
}

func (s *totpStore) remove(user string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.doc.Users[user]
	if !ok {
		return false, nil
	}
	delete(s.doc.Users, user)
	if err := s.saveLocked(); err != nil {
		s.doc.Users[user] = old
		return false, err
	}
	return true, nil
}

// verify checks code for user and, when valid and not replayed, records
// its step. It returns false for unknown users, wrong and replayed codes.
func (s *totpStore) verify(user, code string, now time.Time) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.doc.Users[user]
	if !ok {
		// Same work as a real check, so timing does not tell.
		CheckTOTP(dummyTOTPSecret, code, now)
		return false, nil
	}
	step, ok := CheckTOTP(e.Secret, code, now)
	if !ok || step <= e.LastStep {
		return false, nil
	}
	prev := e.LastStep
	e.LastStep = step
	s.doc.Users[user] = e
	if err := s.saveLocked(); err != nil {
		e.LastStep = prev
		s.doc.Users[user] = e
		return false, err
	}
	return true, nil
}

const dummyTOTPSecret = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

// timeFormat is the relay's timestamp format (ISO 8601 UTC, milliseconds).
const timeFormat = "2006-01-02T15:04:05.000Z"
