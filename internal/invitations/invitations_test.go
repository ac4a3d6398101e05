package invitations

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/testutil"
	"github.com/portlama/portlama/internal/validate"
)

func newStore(t *testing.T) (*Store, *testutil.Clock) {
	t.Helper()
	c := testutil.NewClock(time.Date(2026, 1, 31, 9, 15, 0, 0, time.UTC))
	return New(filepath.Join(t.TempDir(), "invitations.json"), c.Now), c
}

const day = 24 * time.Hour

func mustCreate(t *testing.T, s *Store, user string) Invitation {
	t.Helper()
	inv, err := s.Create(NewInvitation{Username: user, Email: user + "@example.com", Groups: []string{"family"}, ExpiresIn: 7 * day})
	if err != nil {
		t.Fatalf("create %s: %v", user, err)
	}
	return inv
}

func TestCreateAndList(t *testing.T) {
	s, _ := newStore(t)
	inv := mustCreate(t, s, "bob")
	if err := validate.Token(inv.Token); err != nil {
		t.Errorf("token %q: %v", inv.Token, err)
	}
	if err := validate.UUID(inv.ID); err != nil {
		t.Errorf("id %q: %v", inv.ID, err)
	}
	if inv.CreatedAt != "2026-01-31T09:15:00.000Z" || inv.ExpiresAt != "2026-02-07T09:15:00.000Z" {
		t.Errorf("times %s %s", inv.CreatedAt, inv.ExpiresAt)
	}
	fi, err := os.Stat(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(s.Path())
	if !strings.Contains(string(data), `"acceptedAt": null`) || !strings.HasPrefix(string(data), "[\n  {") {
		t.Errorf("file format:\n%s", data)
	}
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != inv.ID || list[0].Status != StatusPending || list[0].Groups[0] != "family" {
		t.Fatalf("list %+v", list)
	}
}

func TestListEmptyAndBroken(t *testing.T) {
	s, _ := newStore(t)
	list, err := s.List()
	if err != nil || list == nil || len(list) != 0 {
		t.Fatalf("missing file: %v %v", list, err)
	}
	if err := os.WriteFile(s.Path(), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.List(); err == nil {
		t.Fatal("broken file listed without error")
	}
	if _, err := s.Create(NewInvitation{Username: "bob", Email: "b@example.com", ExpiresIn: day}); err == nil {
		t.Fatal("broken file overwritten by Create")
	}
	data, _ := os.ReadFile(s.Path())
	if string(data) != "{not json" {
		t.Fatal("broken file was rewritten")
	}
}

func TestPendingConflict(t *testing.T) {
	s, c := newStore(t)
	mustCreate(t, s, "bob")
	if _, err := s.Create(NewInvitation{Username: "bob", Email: "b@example.com", ExpiresIn: day}); !errors.Is(err, ErrPending) {
		t.Fatalf("second pending invitation: %v, want ErrPending", err)
	}
	mustCreate(t, s, "alice") // other users are unaffected
	c.Add(7*day + time.Millisecond)
	// expired: a new invitation for bob is allowed
	mustCreate(t, s, "bob")
}

func TestCreateRefusesBadInput(t *testing.T) {
	s, _ := newStore(t)
	for _, n := range []NewInvitation{
		{Username: "B", Email: "b@example.com", ExpiresIn: day},
		{Username: "bob", Email: "nope", ExpiresIn: day},
		{Username: "bob", Email: "b@example.com", Groups: []string{"a,b"}, ExpiresIn: day},
		{Username: "bob", Email: "b@example.com", ExpiresIn: 0},
	} {
		if _, err := s.Create(n); err == nil {
			t.Errorf("Create(%+v) accepted", n)
		}
	}
}

func TestLookup(t *testing.T) {
	s, c := newStore(t)
	bob := mustCreate(t, s, "bob")
	alice := mustCreate(t, s, "alice")
	got, err := s.Lookup(bob.Token)
	if err != nil || got.ID != bob.ID {
		t.Fatalf("lookup bob: %+v %v", got, err)
	}
	if got, err := s.Lookup(alice.Token); err != nil || got.Username != "alice" {
		t.Fatalf("lookup alice: %+v %v", got, err)
	}
	other := strings.Repeat("ab", 32)
	for _, tok := range []string{other, "", strings.ToUpper(bob.Token), bob.Token + "0", bob.Token[:63]} {
		if _, err := s.Lookup(tok); !errors.Is(err, ErrNotFound) {
			t.Errorf("lookup %q: %v, want ErrNotFound", tok, err)
		}
	}
	if err := s.MarkUsed(bob.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lookup(bob.Token); !errors.Is(err, ErrUsed) {
		t.Fatalf("used: %v", err)
	}
	if err := s.MarkUsed(bob.ID); !errors.Is(err, ErrUsed) {
		t.Fatalf("mark twice: %v", err)
	}
	c.Add(7 * day)
	if _, err := s.Lookup(alice.Token); err != nil {
		t.Fatalf("at expiry instant: %v", err)
	}
	c.Add(time.Millisecond)
	if _, err := s.Lookup(alice.Token); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired: %v", err)
	}
	list, _ := s.List()
	st := map[string]string{}
	for _, l := range list {
		st[l.Username] = l.Status
		if l.Username == "bob" && (l.AcceptedAt == nil || *l.AcceptedAt != "2026-01-31T09:15:00.000Z" || !l.Used) {
			t.Errorf("bob accepted: %+v", l)
		}
	}
	if st["bob"] != StatusAccepted || st["alice"] != StatusExpired {
		t.Fatalf("statuses %v", st)
	}
}

func TestRevoke(t *testing.T) {
	s, _ := newStore(t)
	bob := mustCreate(t, s, "bob")
	alice := mustCreate(t, s, "alice")
	if err := s.MarkUsed(alice.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke(alice.ID); err != nil {
		t.Fatalf("revoke accepted invitation: %v", err)
	}
	if err := s.Revoke(alice.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoke twice: %v", err)
	}
	if err := s.Revoke(bob.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lookup(bob.Token); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoked token still found: %v", err)
	}
	if err := s.MarkUsed(bob.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("mark revoked: %v", err)
	}
	list, _ := s.List()
	if len(list) != 0 {
		t.Fatalf("list after revoke: %+v", list)
	}
}

func TestConcurrentCreate(t *testing.T) {
	s, _ := newStore(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Create(NewInvitation{Username: "bob", Email: "b@example.com", ExpiresIn: day})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrPending):
			t.Error(err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d concurrent creates succeeded, want 1", ok)
	}
}

// FuzzFind checks that the token lookup matches exactly the stored token
// and nothing else, whatever the input.
func FuzzFind(f *testing.F) {
	stored := []Invitation{
		{ID: "1", Token: strings.Repeat("a", 64)},
		{ID: "2", Token: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
		{ID: "3", Token: ""}, // a broken entry never matches
	}
	f.Add(strings.Repeat("a", 64))
	f.Add("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	f.Add("")
	f.Add(strings.Repeat("A", 64))
	f.Add(strings.Repeat("a", 63) + "\x00")
	f.Add("../../etc/passwd")
	f.Fuzz(func(t *testing.T, tok string) {
		inv, ok := find(stored, tok)
		want := ""
		for _, s := range stored {
			if s.Token != "" && s.Token == tok {
				want = s.ID
			}
		}
		if ok != (want != "") || (ok && inv.ID != want) {
			t.Fatalf("find(%q) = %v %q, want %q", tok, ok, inv.ID, want)
		}
	})
}
