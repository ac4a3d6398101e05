// Package invitations keeps the relay's user invitations in
// invitations.json (docs/api.md, "Invitations"; docs/architecture.md, "tunnels.json, sites.json, invitations.json"): an admin creates an invitation
// for a username, the invitee opens https://auth.<d>/invite/<token>, picks a
// password and becomes a user of the auth server.
//
// The package is plain Go: it stores invitations, answers their status and
// finds one by token (constant-time comparison). Creating the user account
// is the caller's job (the panel, through auth.UserStore); the caller then
// marks the invitation used with MarkUsed.
//
//	st := invitations.New(layout.InvitationsFile(), time.Now)
//	inv, err := st.Create(invitations.NewInvitation{Username: "bob", Email: "bob@example.com", ExpiresIn: 7 * 24 * time.Hour})
//	// hand out inv.Token once
//	inv, err = st.Lookup(token) // ErrNotFound, ErrUsed, ErrExpired
//	err = st.MarkUsed(inv.ID)
package invitations

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/errkind"
	"github.com/portlama/portlama/internal/store"
	"github.com/portlama/portlama/internal/validate"
)

// FileMode is the mode of invitations.json (it holds tokens).
const FileMode = 0o600

// TimeFormat is the timestamp format of the file: ISO 8601 UTC with
// milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z"

// Statuses of an invitation.
const (
	StatusPending  = "pending"
	StatusAccepted = "accepted"
	StatusExpired  = "expired"
)

// Errors of the store.
var (
	ErrNotFound = errkind.Sentinel(errkind.NotFound, "Invitation not found")
	ErrUsed     = errkind.Sentinel(errkind.Gone, "This invitation has already been used")
	ErrExpired  = errkind.Sentinel(errkind.Gone, "This invitation has expired")
	// ErrPending: an unused, unexpired invitation exists for the username.
	ErrPending = errkind.Sentinel(errkind.Conflict, "A pending invitation already exists for this username")
)

// Invitation is one entry of invitations.json.
type Invitation struct {
	ID         string   `json:"id"`
	Token      string   `json:"token"`
	Username   string   `json:"username"`
	Email      string   `json:"email"`
	Groups     []string `json:"groups"`
	CreatedAt  string   `json:"createdAt"`
	ExpiresAt  string   `json:"expiresAt"`
	Used       bool     `json:"used"`
	AcceptedAt *string  `json:"acceptedAt"`
}

// Status returns accepted once used, expired after ExpiresAt (an
// unparsable ExpiresAt counts as expired), otherwise pending.
func (inv Invitation) Status(now time.Time) string {
	switch {
	case inv.Used:
		return StatusAccepted
	case inv.expired(now):
		return StatusExpired
	}
	return StatusPending
}

func (inv Invitation) expired(now time.Time) bool {
	exp, err := time.Parse(time.RFC3339Nano, inv.ExpiresAt)
	return err != nil || now.After(exp)
}

// Listed is an invitation as the admin list shows it: without the token,
// with its status.
type Listed = api.Invitation

// Store reads and writes invitations.json. It is safe for concurrent use;
// every change is a locked read-modify-write of the file.
type Store struct {
	doc *store.Doc[[]Invitation]
	now func() time.Time
}

// New returns the store for the file at path. now is the clock (nil →
// time.Now).
func New(path string, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{doc: store.NewDoc[[]Invitation](path, FileMode), now: now}
}

// Path returns the file's path.
func (s *Store) Path() string { return s.doc.Path() }

func (s *Store) load() ([]Invitation, error) {
	list, err := s.doc.Load()
	if err != nil {
		return nil, fmt.Errorf("load invitations: %w", err)
	}
	return list, nil
}

// List returns every invitation without its token, with its status, in
// creation order.
func (s *Store) List() ([]Listed, error) {
	list, err := s.load()
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := make([]Listed, 0, len(list))
	for _, inv := range list {
		g := inv.Groups
		if g == nil {
			g = []string{}
		}
		out = append(out, Listed{
			ID: inv.ID, Username: inv.Username, Email: inv.Email, Groups: g,
			CreatedAt: inv.CreatedAt, ExpiresAt: inv.ExpiresAt, Used: inv.Used, AcceptedAt: inv.AcceptedAt,
			Status: inv.Status(now),
		})
	}
	return out, nil
}

// NewInvitation is what an admin supplies to invite a user.
type NewInvitation struct {
	Username  string
	Email     string
	Groups    []string
	ExpiresIn time.Duration
}

// Create stores a new invitation with a random token (32 bytes, hex) and
// returns it, token included (the only time the token leaves the store).
// It fails with ErrPending when an unused, unexpired invitation exists for
// the username.
func (s *Store) Create(n NewInvitation) (Invitation, error) {
	if err := validate.Username(n.Username); err != nil {
		return Invitation{}, err
	}
	if err := validate.Email(n.Email); err != nil {
		return Invitation{}, err
	}
	for _, g := range n.Groups {
		if err := validate.GroupName(g); err != nil {
			return Invitation{}, err
		}
	}
	if n.ExpiresIn <= 0 {
		return Invitation{}, errors.New("invitation lifetime must be positive")
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return Invitation{}, fmt.Errorf("generate invitation token: %w", err)
	}
	now := s.now().UTC()
	groups := slices.Clone(n.Groups)
	if groups == nil {
		groups = []string{}
	}
	inv := Invitation{
		ID: uuid.NewString(), Token: hex.EncodeToString(buf),
		Username: n.Username, Email: n.Email, Groups: groups,
		CreatedAt: now.Format(TimeFormat), ExpiresAt: now.Add(n.ExpiresIn).Format(TimeFormat),
	}
	_, err := s.doc.Update(func(list *[]Invitation) error {
		for _, old := range *list {
			if old.Username == n.Username && old.Status(now) == StatusPending {
				return ErrPending
			}
		}
		*list = append(*list, inv)
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrPending) {
			return Invitation{}, err
		}
		return Invitation{}, fmt.Errorf("save invitation: %w", err)
	}
	return inv, nil
}

// Revoke deletes the invitation with id, whatever its status (ErrNotFound
// when there is none).
func (s *Store) Revoke(id string) error {
	_, err := s.doc.Update(func(list *[]Invitation) error {
		i := slices.IndexFunc(*list, func(inv Invitation) bool { return inv.ID == id })
		if i < 0 {
			return ErrNotFound
		}
		*list = slices.Delete(*list, i, i+1)
		return nil
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("revoke invitation: %w", err)
	}
	return err
}

// Lookup returns the invitation holding token if it can still be accepted;
// otherwise ErrNotFound, ErrUsed or ErrExpired. The token is compared in
// constant time against every stored token.
func (s *Store) Lookup(token string) (Invitation, error) {
	list, err := s.load()
	if err != nil {
		return Invitation{}, err
	}
	inv, ok := find(list, token)
	if !ok {
		return Invitation{}, ErrNotFound
	}
	return inv, checkUsable(inv, s.now())
}

func checkUsable(inv Invitation, now time.Time) error {
	switch inv.Status(now) {
	case StatusAccepted:
		return ErrUsed
	case StatusExpired:
		return ErrExpired
	}
	return nil
}

// find returns the invitation whose token equals token. Every stored token
// is compared in constant time, so timing reveals neither which invitation
// matched nor how much of a token did. A token that is not 64 lower-case
// hex characters never matches.
func find(list []Invitation, token string) (Invitation, bool) {
	if validate.Token(token) != nil {
		return Invitation{}, false
	}
	found := -1
	for i := range list {
		t := list[i].Token
		if len(t) != len(token) {
			continue
		}
		if subtle.ConstantTimeCompare([]byte(t), []byte(token)) == 1 && found < 0 {
			found = i
		}
	}
	if found < 0 {
		return Invitation{}, false
	}
	return list[found], true
}

// MarkUsed marks the invitation with id used, acceptedAt now. It fails with
// ErrNotFound when it no longer exists and ErrUsed when it was already
// used (a concurrent acceptance).
func (s *Store) MarkUsed(id string) error {
	now := s.now().UTC().Format(TimeFormat)
	_, err := s.doc.Update(func(list *[]Invitation) error {
		i := slices.IndexFunc(*list, func(inv Invitation) bool { return inv.ID == id })
		if i < 0 {
			return ErrNotFound
		}
		if (*list)[i].Used {
			return ErrUsed
		}
		(*list)[i].Used = true
		(*list)[i].AcceptedAt = &now
		return nil
	})
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrUsed) {
		return fmt.Errorf("mark invitation used: %w", err)
	}
	return err
}
