package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/portlama/portlama/internal/store"
)

// Session lifetimes (Authelia's defaults, docs/architecture.md, "Forward authentication").
const (
	SessionLifetime   = 12 * time.Hour
	SessionInactivity = 2 * time.Hour
	// HalfSessionLifetime bounds how long a password-only session may wait
	// for its TOTP step.
	HalfSessionLifetime = 5 * time.Minute
)

// Authentication levels, as Authelia reports them in /api/state.
const (
	LevelNone      = 0
	LevelOneFactor = 1
	LevelTwoFactor = 2
)

// SessionCookieName is the name of the login session cookie.
const SessionCookieName = "portlama_session"

const sessionIDBytes = 32

// session is the server-side state of one login. The cookie carries a random
// id; the store keys sessions by HMAC-SHA256(sessionSecret, id), so the file
// on disk holds nothing a cookie could be made from.
type session struct {
	User     string `json:"user"`
	Level    int    `json:"level"`
	Created  int64  `json:"created"`  // Unix milliseconds
	LastSeen int64  `json:"lastSeen"` // Unix milliseconds
	// PwTag binds the session to the password hash it was made with: a
	// password change ends every older session.
	PwTag    string `json:"pwTag"`
	Remember bool   `json:"remember,omitempty"`
}

func (s *session) valid(now time.Time) bool {
	n := now.UnixMilli()
	if s.Level == LevelOneFactor && n-s.Created > HalfSessionLifetime.Milliseconds() {
		return false
	}
	return n-s.Created <= SessionLifetime.Milliseconds() &&
		n-s.LastSeen <= SessionInactivity.Milliseconds() && n >= s.Created-60_000
}

type sessionDoc struct {
	Sessions map[string]session `json:"sessions"`
}

// sessionStore holds sessions in memory and persists them to a 0600 file:
// creations and deletions at once, activity updates by flush.
type sessionStore struct {
	path string
	key  []byte

	mu    sync.Mutex
	m     map[string]*session
	dirty bool
}

// openSessionStore loads the saved sessions. A file that does not parse
// costs the users their logins, not the service: it is reported through
// errLoad and replaced at the next save.
func openSessionStore(path string, key []byte, now time.Time) (s *sessionStore, errLoad error) {
	s = &sessionStore{path: path, key: key, m: map[string]*session{}}
	d, err := store.NewDoc[sessionDoc](path, 0o600).Load()
	if err != nil {
		return s, fmt.Errorf("load sessions: %w", err)
	}
	for k, v := range d.Sessions {
		if v.valid(now) {
			s.m[k] = &v
		}
	}
	return s, nil
}

// keyFor maps a cookie value to its store key, or "" if the value cannot be
// a session id (wrong length or alphabet).
func (s *sessionStore) keyFor(cookie string) string {
	if !validSessionID(cookie) {
		return ""
	}
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(cookie))
	return hex.EncodeToString(mac.Sum(nil))
}

// validSessionID reports whether v has the shape of a session id: the
// unpadded base64url encoding of 32 bytes.
func validSessionID(v string) bool {
	if len(v) != base64.RawURLEncoding.EncodedLen(sessionIDBytes) {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(v)
	return err == nil && len(b) == sessionIDBytes
}

// create stores a new session and returns its cookie value. It saves at once
// so a restart keeps the login.
func (s *sessionStore) create(sess session) (string, error) {
	buf := make([]byte, sessionIDBytes)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("generate session id: %w", err)
	}
	id := base64.RawURLEncoding.EncodeToString(buf)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[s.keyFor(id)] = &sess
	if err := s.saveLocked(); err != nil {
		delete(s.m, s.keyFor(id))
		return "", err
	}
	return id, nil
}

// lookup returns a copy of the live session for cookie and records the
// activity (touch). Expired sessions are removed.
func (s *sessionStore) lookup(cookie string, now time.Time, touch bool) (session, bool) {
	k := s.keyFor(cookie)
	if k == "" {
		return session{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.m[k]
	if !ok {
		return session{}, false
	}
	if !sess.valid(now) {
		delete(s.m, k)
		s.dirty = true
		return session{}, false
	}
	if touch && now.UnixMilli() > sess.LastSeen {
		sess.LastSeen = now.UnixMilli()
		s.dirty = true
	}
	return *sess, true
}

// remove ends the session for cookie, if any.
func (s *sessionStore) remove(cookie string) error {
	k := s.keyFor(cookie)
	if k == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[k]; !ok {
		return nil
	}
	delete(s.m, k)
	return s.saveLocked()
}

// removeUser ends every session of user and returns how many there were.
func (s *sessionStore) removeUser(user string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, v := range s.m {
		if v.User == user {
			delete(s.m, k)
			n++
		}
	}
	if n == 0 {
		return 0, nil
	}
	return n, s.saveLocked()
}

// flush drops expired sessions and saves if anything changed since the last save.
func (s *sessionStore) flush(now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.m {
		if !v.valid(now) {
			delete(s.m, k)
			s.dirty = true
		}
	}
	if !s.dirty {
		return nil
	}
	return s.saveLocked()
}

func (s *sessionStore) saveLocked() error {
	d := sessionDoc{Sessions: make(map[string]session, len(s.m))}
	for k, v := range s.m {
		d.Sessions[k] = *v
	}
	data, err := store.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode sessions: %w", err)
	}
	if err := store.WriteFileAtomic(s.path, data, 0o600); err != nil {
		return fmt.Errorf("save sessions: %w", err)
	}
	s.dirty = false
	return nil
}

// pwTag binds a session to a password hash without storing the hash.
func pwTag(key []byte, hash string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("pw\x00" + hash))
	return hex.EncodeToString(mac.Sum(nil)[:16])
}

// secretsDoc is secrets.json (docs/architecture.md, "Auth server files").
type secretsDoc struct {
	SessionSecret string `json:"sessionSecret"`
}

// loadOrCreateSessionSecret reads sessionSecret from secrets.json, creating
// the file (0600) with a new 32-byte secret when it is missing or empty.
func loadOrCreateSessionSecret(path string) ([]byte, error) {
	var key []byte
	_, err := store.NewDoc[map[string]any](path, 0o600).Update(func(m *map[string]any) error {
		if *m == nil {
			*m = map[string]any{}
		}
		if v, ok := (*m)["sessionSecret"].(string); ok && v != "" {
			k, err := hex.DecodeString(v)
			if err != nil || len(k) < 32 {
				return errors.New("sessionSecret in secrets.json must be at least 64 hex characters")
			}
			key = k
			return nil
		}
		buf := make([]byte, 32)
		if _, err := rand.Read(buf); err != nil {
			return fmt.Errorf("generate session secret: %w", err)
		}
		(*m)["sessionSecret"] = hex.EncodeToString(buf)
		key = buf
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("session secret: %w", err)
	}
	return key, nil
}

// EnsureSecrets creates secrets.json (0600) in dir with a new session secret
// if it has none; provisioning calls it so the secret exists before the
// auth server first starts.
func EnsureSecrets(dir string) error {
	_, err := loadOrCreateSessionSecret(secretsPath(dir))
	return err
}
