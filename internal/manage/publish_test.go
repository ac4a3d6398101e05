package manage

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestPublisher(t *testing.T) {
	var mu sync.Mutex
	applied := NoFile // the generation the "daemon" serves
	var file string
	dir, socket := daemon(t, func(context.Context) (map[string]string, error) {
		mu.Lock()
		defer mu.Unlock()
		data, err := os.ReadFile(file)
		if err == nil && string(data) == "bad\n" {
			return nil, errors.New("acl.json: invalid label")
		}
		if applied, err = FileGeneration(file); err != nil {
			return nil, err
		}
		return map[string]string{"acl.json": applied}, nil
	})
	file = filepath.Join(dir, "acl.json")
	c := NewClient("tunnel server", socket)
	p := NewPublisher("tunnel server", "portlama-tunnel", func(ctx context.Context) error { return c.Notify(ctx, file) }, file)
	ctx := context.Background()
	write := func(content string) func() error {
		return func() error { return os.WriteFile(file, []byte(content), 0o600) }
	}
	serving := func() string {
		mu.Lock()
		defer mu.Unlock()
		return applied
	}

	// Confirmed: the daemon serves what was written when Apply returns.
	if err := p.Apply(ctx, write("one\n")); err != nil {
		t.Fatalf("confirmed change: %v", err)
	}
	if serving() != Generation([]byte("one\n")) {
		t.Fatal("daemon does not serve the change Apply confirmed")
	}

	// Refused: the error says so and the previous content is back.
	err := p.Apply(ctx, write("bad\n"))
	var re *RejectedError
	if !errors.As(err, &re) || !strings.Contains(re.Message, "invalid label") {
		t.Fatalf("refused change: %v, want a RejectedError", err)
	}
	if data, _ := os.ReadFile(file); string(data) != "one\n" {
		t.Fatalf("file after a refused change = %q, want the previous content", data)
	}
	if w, rest := Warning(err); w != "" || rest == nil {
		t.Fatalf("a refusal is no warning: %q %v", w, rest)
	}

	// The write's own error is returned as it is, and nothing is notified.
	boom := errors.New("disk full")
	if err := p.Apply(ctx, func() error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("write error: %v", err)
	}

	// Not confirmed (daemon gone): saved, and a warning naming the unit.
	gone := NewClient("tunnel server", filepath.Join(dir, "gone.sock"))
	down := NewPublisher("tunnel server", "portlama-tunnel", func(ctx context.Context) error { return gone.Notify(ctx, file) }, file)
	err = down.Apply(ctx, write("two\n"))
	var nc *NotConfirmedError
	if !errors.As(err, &nc) || !errors.Is(err, ErrNotConfirmed) {
		t.Fatalf("daemon down: %v, want a NotConfirmedError", err)
	}
	if data, _ := os.ReadFile(file); string(data) != "two\n" {
		t.Fatalf("an unconfirmed change must stay saved, file = %q", data)
	}
	w, rest := Warning(err)
	if rest != nil || !strings.Contains(w, "portlama-tunnel") || !strings.Contains(w, "Saved") {
		t.Fatalf("warning %q, %v", w, rest)
	}
	// An unchanged file needs no acknowledgement.
	if err := down.Apply(ctx, write("two\n")); err != nil {
		t.Fatalf("unchanged file: %v", err)
	}
}

func TestWarning(t *testing.T) {
	tun := &NotConfirmedError{Daemon: "tunnel server", Unit: "portlama-tunnel", Err: ErrNotConfirmed}
	au := &NotConfirmedError{Daemon: "auth server", Unit: "portlama-auth", Err: ErrNotConfirmed}
	other := errors.New("nginx -t failed")
	for _, c := range []struct {
		name     string
		err      error
		want     []string // substrings of the warning
		wantRest bool
	}{
		{"nil", nil, nil, false},
		{"one", tun, []string{"portlama-tunnel"}, false},
		{"wrapped", errors.Join(nil, tun), []string{"portlama-tunnel"}, false},
		{"two daemons", errors.Join(tun, au), []string{"portlama-tunnel", "portlama-auth"}, false},
		{"same twice", errors.Join(tun, tun), []string{"portlama-tunnel"}, false},
		{"plain ErrNotConfirmed", ErrNotConfirmed, []string{"did not confirm"}, false},
		{"failure", other, nil, true},
		{"failure among warnings", errors.Join(tun, other), nil, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			w, rest := Warning(c.err)
			if (rest != nil) != c.wantRest {
				t.Fatalf("rest = %v", rest)
			}
			if len(c.want) == 0 && w != "" {
				t.Fatalf("warning %q, want none", w)
			}
			for _, sub := range c.want {
				if !strings.Contains(w, sub) {
					t.Errorf("warning %q lacks %q", w, sub)
				}
			}
			if c.name == "same twice" && strings.Count(w, "Saved") != 1 {
				t.Errorf("repeated warning %q", w)
			}
		})
	}
}
