package keychain

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/testutil"
)

// busConfig is a session bus without service directories: the packaged
// org.freedesktop.secrets activation file would otherwise start a locked
// gnome-keyring on the first call.
const busConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`

// startBus starts a private D-Bus session bus and returns its address.
func startBus(t *testing.T) string {
	t.Helper()
	bin := testutil.NeedBinary(t, "dbus-daemon")
	dir := t.TempDir()
	conf := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(busConfig, filepath.Join(dir, "bus"))), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config-file="+conf, "--nofork", "--print-address=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dbus-daemon: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// The daemon prints its address once it listens.
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("read the bus address: %v", err)
	}
	return strings.TrimSpace(addr)
}

// startKeyring starts gnome-keyring-daemon's Secret Service on the bus in
// the environment, with a new login keyring unlocked by a password on its
// standard input.
func startKeyring(t *testing.T) {
	t.Helper()
	bin := testutil.NeedBinary(t, "gnome-keyring-daemon")
	cmd := exec.Command(bin, "--unlock", "--components=secrets", "--foreground")
	cmd.Stdin = strings.NewReader("test-password")
	cmd.Env = os.Environ()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start gnome-keyring-daemon: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
}

// TestOSKeychain runs in order: no session bus at all, a bus without a
// Secret Service (headless Linux), then gnome-keyring on that bus.
func TestOSKeychain(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_DATA_HOME", filepath.Join(home, "data"))
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path="+filepath.Join(home, "no-bus"))

	assertUnavailable := func(what string) {
		t.Helper()
		_, err := Open(Options{Service: "portlama-test"})
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("%s: Open = %v, want ErrUnavailable", what, err)
		}
		if !strings.Contains(err.Error(), EnvBackend+"="+BackendFile) {
			t.Fatalf("%s: the error does not name the fallback: %v", what, err)
		}
	}
	assertUnavailable("no session bus")

	t.Setenv("DBUS_SESSION_BUS_ADDRESS", startBus(t))
	assertUnavailable("no Secret Service")

	startKeyring(t)
	// Readiness: the Secret Service answers the probe (bounded).
	var k Keychain
	if err := testutil.Eventually(15*time.Second, func() error {
		var err error
		k, err = Open(Options{Service: "portlama-test"})
		return err
	}); err != nil {
		t.Fatalf("gnome-keyring did not answer: %v", err)
	}
	if k.Backend() != BackendOS {
		t.Fatalf("backend %q", k.Backend())
	}
	exercise(t, k)
}

func TestFileKeychain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secrets.json")
	k, err := Open(Options{Backend: BackendFile, File: path})
	if err != nil {
		t.Fatal(err)
	}
	exercise(t, k)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("secrets file mode %v", fi.Mode().Perm())
	}
	if _, err := Open(Options{Backend: "plain"}); err == nil {
		t.Fatal("an unknown backend was accepted")
	}
}

func exercise(t *testing.T, k Keychain) {
	t.Helper()
	if _, err := k.Get("p12-password/one"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get before Set = %v, want ErrNotFound", err)
	}
	if err := k.Set("p12-password/one", "s3cret"); err != nil {
		t.Fatal(err)
	}
	if err := k.Set("cloud-token/digitalocean", "dop_v1_x"); err != nil {
		t.Fatal(err)
	}
	if got, err := k.Get("p12-password/one"); err != nil || got != "s3cret" {
		t.Fatalf("Get = %q, %v", got, err)
	}
	if err := k.Set("p12-password/one", "changed"); err != nil {
		t.Fatal(err)
	}
	if got, _ := k.Get("p12-password/one"); got != "changed" {
		t.Fatalf("after replace Get = %q", got)
	}
	if err := k.Delete("p12-password/one"); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Get("p12-password/one"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete = %v", err)
	}
	if got, _ := k.Get("cloud-token/digitalocean"); got != "dop_v1_x" {
		t.Fatalf("the other secret = %q", got)
	}
	if err := k.Delete("p12-password/one"); err != nil {
		t.Fatalf("deleting a missing secret: %v", err)
	}
	for _, bad := range []string{"", "../x", "A", "a b", strings.Repeat("a", 200)} {
		if err := k.Set(bad, "x"); err == nil {
			t.Fatalf("key %q accepted", bad)
		}
	}
}

func FuzzValidateKey(f *testing.F) {
	for _, s := range []string{"p12-password/a", "", "../x", "a\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidateKey(s) == nil && (strings.Contains(s, "..") && strings.HasPrefix(s, "..") || strings.ContainsAny(s, " \x00\n")) {
			t.Fatalf("accepted %q", s)
		}
	})
}
