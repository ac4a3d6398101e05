// Package testutil has the small helpers the tests share: finding required
// binaries (a missing one fails the run under CI=true, never skips it) and
// free loopback ports.
package testutil

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/ports"
)

// NeedBinary returns the path of name. When it is missing the test fails if
// CI=true (CI must install every dependency) and is skipped otherwise.
func NeedBinary(t testing.TB, name string) string {
	t.Helper()
	for _, p := range []string{name, "/usr/sbin/" + name, "/sbin/" + name} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required but not installed (run scripts/deps.sh)", name)
	}
	t.Skipf("%s not installed; run scripts/deps.sh to install test dependencies", name)
	return ""
}

// NeedRoot skips a test that needs root (ownership, peer credentials) when
// not run as root, and fails it under CI=true, which runs as root.
func NeedRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s: run the tests as root (CI does)", why)
	}
	t.Skipf("%s: not root", why)
}

// Eventually calls probe until it returns nil or within has passed, and
// returns the last error then: a bounded wait on a readiness signal.
func Eventually(within time.Duration, probe func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := probe()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v: %w", within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// NeedTool returns the path of a tool that scripts/deps.sh --test builds
// into the repository's bin/ directory (or that is on $PATH), with the same
// CI rule as NeedBinary.
func NeedTool(t testing.TB, name string) string {
	t.Helper()
	if root, ok := repoRoot(); ok {
		p := filepath.Join(root, "bin", name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	if path, err := exec.LookPath(name); err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required but not built (run scripts/deps.sh --test)", name)
	}
	t.Skipf("%s not built; run scripts/deps.sh --test", name)
	return ""
}

// repoRoot finds the directory of the main module's go.mod above the
// working directory (tests run in their package directory).
func repoRoot() (string, bool) {
	dir, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			strings.HasPrefix(string(data), "module github.com/portlama/portlama\n") {
			return dir, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	return FreePorts(t, 1)[0]
}

// FreePorts returns n distinct TCP ports on 127.0.0.1 that were free a
// moment ago, from below the kernel's ephemeral range (see package ports):
// a port taken from a ":0" listener and released can be reused by any
// outgoing connection before nginx or a daemon binds it.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	p, err := ports.Free(n)
	if err != nil {
		t.Fatalf("find %d free ports: %v", n, err)
	}
	return p
}

// FreeAddr returns "127.0.0.1:<free port>".
func FreeAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
}

// Clock is a settable clock for tests of time rules (expiry, idle
// timeouts, bans): pass its Now where the code takes a clock, then Add.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock showing t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock forward by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
