package manage

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// daemon serves ReloadHandler(apply) on a socket in a fresh directory.
func daemon(t *testing.T, apply func(context.Context) (map[string]string, error)) (dir, socket string) {
	t.Helper()
	dir = t.TempDir()
	socket = filepath.Join(dir, "manage.sock")
	ln, err := Listen(socket)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	mux := http.NewServeMux()
	mux.Handle("POST "+ReloadPath, ReloadHandler(apply))
	go func() { done <- Serve(ctx, ln, mux, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return dir, socket
}

func TestNotify(t *testing.T) {
	var state string // what the "daemon" applied
	dir, socket := daemon(t, func(context.Context) (map[string]string, error) {
		g, err := FileGeneration(state)
		if err != nil {
			return nil, err
		}
		if data, _ := os.ReadFile(state); string(data) == "bad\n" {
			return nil, errors.New("acl.json: invalid label")
		}
		return map[string]string{"acl.json": g}, nil
	})
	state = filepath.Join(dir, "acl.json")
	c := NewClient("tunnel server", socket)
	ctx := context.Background()

	if err := c.Health(ctx); err != nil {
		t.Fatalf("health: %v", err)
	}
	if fi, err := os.Stat(socket); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}

	// A missing file and a written file are both confirmed when the daemon
	// serves exactly that content.
	if err := c.Notify(ctx, state); err != nil {
		t.Fatalf("notify (no file): %v", err)
	}
	os.WriteFile(state, []byte(`{"agents":[]}`), 0o600)
	if err := c.Notify(ctx, state); err != nil {
		t.Fatalf("notify: %v", err)
	}

	// A refusal is a *RejectedError carrying the daemon's message.
	os.WriteFile(state, []byte("bad\n"), 0o600)
	var rej *RejectedError
	if err := c.Notify(ctx, state); !errors.As(err, &rej) || rej.Message != "acl.json: invalid label" || rej.Status != http.StatusConflict {
		t.Fatalf("notify with refused content: %v, want RejectedError", err)
	}

	// The daemon serving another file's content (another state directory)
	// is not a confirmation.
	other := filepath.Join(t.TempDir(), "acl.json")
	os.WriteFile(other, []byte(`{"agents":[{}]}`), 0o600)
	os.WriteFile(state, []byte(`{"agents":[]}`), 0o600)
	if err := c.Notify(ctx, other); !errors.Is(err, ErrNotConfirmed) {
		t.Fatalf("notify with another file: %v, want ErrNotConfirmed", err)
	}
}

func TestNotifyUnreachable(t *testing.T) {
	dir := t.TempDir()
	c := NewClient("auth server", filepath.Join(dir, "manage.sock"))
	err := c.Notify(context.Background())
	if !errors.Is(err, ErrNotConfirmed) {
		t.Fatalf("notify without daemon: %v, want ErrNotConfirmed", err)
	}
}

func TestNotifySilentDaemonTimesOut(t *testing.T) {
	release := make(chan struct{})
	_, socket := daemon(t, func(ctx context.Context) (map[string]string, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil, ctx.Err()
	})
	defer close(release)
	c := NewClient("auth server", socket).WithTimeout(50 * time.Millisecond)
	if err := c.Notify(context.Background()); !errors.Is(err, ErrNotConfirmed) {
		t.Fatalf("notify to a silent daemon: %v, want ErrNotConfirmed", err)
	}
}

func TestListen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "manage.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(interface{ SetUnlinkOnClose(bool) }).SetUnlinkOnClose(false)
	ln.Close()
	// A stale socket (its daemon died) is replaced.
	ln, err = Listen(path)
	if err != nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	ln.Close()

	// Anything else in the way is refused, never deleted.
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, []byte("keep"), 0o600)
	if _, err := Listen(plain); err == nil {
		t.Fatal("listen over a regular file succeeded")
	}
	if data, _ := os.ReadFile(plain); string(data) != "keep" {
		t.Fatal("regular file was touched")
	}
}
