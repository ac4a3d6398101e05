package agents

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/pki"
)

// Token is an enrollment token (docs/architecture.md, "Enrollment tokens").
type Token struct {
	Token        string   `json:"token"`
	Label        string   `json:"label"`
	Capabilities []string `json:"capabilities"`
	AllowedSites []string `json:"allowedSites"`
	CreatedAt    string   `json:"createdAt"`
	ExpiresAt    string   `json:"expiresAt"`
	Used         bool     `json:"used"`
	UsedAt       string   `json:"usedAt,omitempty"`
}

// TokenList is the content of enrollment-tokens.json.
type TokenList struct {
	Tokens []Token `json:"tokens"`
}

func parseTime(s string) (time.Time, bool) {
	t, err := api.ParseTime(s)
	return t, err == nil
}

// CreateToken issues a one-time enrollment token for label, valid 10
// minutes, carrying capabilities (normalised) and allowed sites. An unused
// token for the same label is replaced. A non-revoked agent with the label is
// a *LabelError (ErrExists).
func (m *Manager) CreateToken(label string, caps, sites []string) (Token, error) {
	if !ValidLabel(label) {
		return Token{}, labelErr(label, ErrInvalidLabel)
	}
	norm, err := NormalizeCapabilities(caps)
	if err != nil {
		return Token{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()

	r, err := m.loadRegistry()
	if err != nil {
		return Token{}, err
	}
	if r.active(label) >= 0 {
		return Token{}, labelErr(label, ErrExists)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return Token{}, fmt.Errorf("generate enrollment token: %w", err)
	}
	now := m.now()
	tok := Token{
		Token:        hex.EncodeToString(raw),
		Label:        label,
		Capabilities: norm,
		AllowedSites: cloneSites(sites),
		CreatedAt:    pki.Timestamp(now),
		ExpiresAt:    pki.Timestamp(now.Add(TokenTTL)),
	}
	if _, err := m.tokens.Update(func(l *TokenList) error {
		kept := l.Tokens[:0]
		for _, t := range l.Tokens {
			if t.Label == label && !t.Used {
				continue // replaced
			}
			kept = append(kept, t)
		}
		l.Tokens = append(kept, tok)
		return nil
	}); err != nil {
		return Token{}, wrap("save enrollment token", err)
	}
	m.log.Info("enrollment token created", "label", label, "expiresAt", tok.ExpiresAt)
	return tok, nil
}

// RevokeToken removes the unused tokens of label and reports whether one of
// them was still valid (unused and unexpired).
func (m *Manager) RevokeToken(label string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	revoked := false
	if _, err := m.tokens.Update(func(l *TokenList) error {
		kept := l.Tokens[:0]
		for _, t := range l.Tokens {
			if t.Label == label && !t.Used {
				if exp, ok := parseTime(t.ExpiresAt); ok && !now.After(exp) {
					revoked = true
				}
				continue
			}
			kept = append(kept, t)
		}
		l.Tokens = kept
		if l.Tokens == nil {
			l.Tokens = []Token{}
		}
		return nil
	}); err != nil {
		return false, wrap("revoke enrollment token", err)
	}
	return revoked, nil
}

// Tokens returns the stored enrollment tokens (for inspection and tests).
func (m *Manager) Tokens() ([]Token, error) {
	l, err := m.tokens.Load()
	if err != nil {
		return nil, fmt.Errorf("load enrollment tokens: %w", err)
	}
	if l.Tokens == nil {
		return []Token{}, nil
	}
	return l.Tokens, nil
}

// claimToken purges tokens created more than an hour ago, then finds token
// by constant-time comparison and checks that it is unused and unexpired.
// It does not mark the token used.
func (m *Manager) claimToken(token string) (Token, error) {
	now := m.now()
	var found *Token
	if _, err := m.tokens.Update(func(l *TokenList) error {
		kept := []Token{}
		for _, t := range l.Tokens {
			if created, ok := parseTime(t.CreatedAt); !ok || now.Sub(created) > TokenPurgeAge {
				continue
			}
			kept = append(kept, t)
		}
		l.Tokens = kept
		for i := range l.Tokens {
			if subtle.ConstantTimeCompare([]byte(l.Tokens[i].Token), []byte(token)) == 1 {
				t := l.Tokens[i]
				found = &t
			}
		}
		return nil
	}); err != nil {
		return Token{}, wrap("load enrollment tokens", err)
	}
	switch {
	case found == nil:
		return Token{}, ErrInvalidToken
	case found.Used:
		return Token{}, ErrTokenUsed
	}
	if exp, ok := parseTime(found.ExpiresAt); !ok || now.After(exp) {
		return Token{}, ErrTokenExpired
	}
	return *found, nil
}

// markTokenUsed sets used/usedAt on token; it fails if the token is gone or
// already used.
func (m *Manager) markTokenUsed(token string) error {
	_, err := m.tokens.Update(func(l *TokenList) error {
		for i := range l.Tokens {
			if subtle.ConstantTimeCompare([]byte(l.Tokens[i].Token), []byte(token)) == 1 {
				if l.Tokens[i].Used {
					return ErrTokenUsed
				}
				l.Tokens[i].Used = true
				l.Tokens[i].UsedAt = m.timestamp()
				return nil
			}
		}
		return ErrInvalidToken
	})
	return err
}
