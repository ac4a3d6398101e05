package acme

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/go-acme/lego/v5/providers/http/webroot"
)

// Under the panel's UMask=0077 the challenge must still be readable by
// nginx's workers (another user).
func TestWebrootChallengeReadableUnderStrictUmask(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "acme")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := webroot.NewHTTPProvider(dir)
	if err != nil {
		t.Fatal(err)
	}
	w := readableWebroot{p, dir}
	if err := w.Present(context.Background(), "a.example.com", "tok", "key-auth"); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{
		dir: 0o755, filepath.Join(dir, ".well-known"): 0o755, filepath.Join(dir, ".well-known", "acme-challenge"): 0o755,
		filepath.Join(dir, ".well-known", "acme-challenge", "tok"): 0o644,
	} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s: %o, want %o", path, st.Mode().Perm(), want)
		}
	}
	if err := w.CleanUp(context.Background(), "a.example.com", "tok", "key-auth"); err != nil {
		t.Fatal(err)
	}
}
