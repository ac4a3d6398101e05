package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/demo"
	"github.com/portlama/portlama/internal/relaytest"
	"github.com/portlama/portlama/internal/testutil"
)

// TestDemoCommand runs `portlama demo` as the README does, checks that
// demo.json describes a working stack, then stops it with SIGTERM and
// checks that nothing it started is left running.
func TestDemoCommand(t *testing.T) {
	testutil.NeedBinary(t, "nginx")
	testutil.NeedBinary(t, "pebble")
	relayBin, _ := relaytest.Binaries(t)
	dir := t.TempDir()
	var out syncBuffer
	cmd := exec.Command(relayBin, "demo", "--dir", dir,
		"--https-port", strconv.Itoa(testutil.FreePort(t)),
		"--panel-port", strconv.Itoa(testutil.FreePort(t)),
		"--http-port", strconv.Itoa(testutil.FreePort(t)))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })

	var info demo.Info
	deadline := time.Now().Add(90 * time.Second)
	for {
		data, err := os.ReadFile(filepath.Join(dir, "demo.json"))
		if err == nil && json.Unmarshal(data, &info) == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("portlama demo exited early (%v):\n%s", err, out.String())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no demo.json after 90 s:\n%s", out.String())
		}
	}
	for _, key := range []string{info.PanelURL, info.CACert, info.AdminCert, info.AdminKey, info.AdminP12, info.AdminP12Password, info.Domain, info.AgentLabel, info.AuthURL, info.AuthResolve} {
		if key == "" {
			t.Fatalf("demo.json lacks a field: %+v", info)
		}
	}
	if info.User == nil || info.User.TOTPSecret == "" || len(info.Apps) != 2 || info.HTTPSPort == 0 {
		t.Fatalf("demo.json incomplete: %+v", info)
	}
	// The printed curl line for the public app works, verbatim.
	curl := testutil.NeedBinary(t, "curl")
	var public demo.App
	for _, a := range info.Apps {
		if a.Access == "public" {
			public = a
		}
	}
	body, err := exec.Command(curl, "-sf", "--cacert", info.CACert, "--resolve", public.Resolve, public.URL).Output()
	if err != nil || !strings.Contains(string(body), "Portlama demo app") {
		t.Fatalf("curl %s: %v %s", public.URL, err, body)
	}
	if !strings.Contains(out.String(), "curl --cacert "+info.CACert+" --resolve "+public.Resolve+" "+public.URL) {
		t.Fatalf("the printout lacks the app's curl line:\n%s", out.String())
	}
	// And the sample static site's.
	if len(info.Sites) != 1 || !strings.Contains(out.String(), "curl --cacert "+info.CACert+" --resolve "+info.Sites[0].Resolve+" "+info.Sites[0].URL) {
		t.Fatalf("demo.json sites %+v, or the printout lacks the site's curl line:\n%s", info.Sites, out.String())
	}
	if body, err := exec.Command(curl, "-sf", "--cacert", info.CACert, "--resolve", info.Sites[0].Resolve, info.Sites[0].URL).Output(); err != nil || !strings.Contains(string(body), "A static site") {
		t.Fatalf("curl %s: %v %s", info.Sites[0].URL, err, body)
	}
	// The printout shows the onboarding a user walks through, and the
	// certificates are Pebble's.
	for _, step := range []string{"Onboarding 1/3 - domain", "Onboarding 2/3 - DNS check", "[1/6] Starting tunnel server", "[3/6] Issuing TLS certificates", "[6/6] Finalizing setup", "Provisioning complete"} {
		if !strings.Contains(out.String(), step) {
			t.Fatalf("the printout lacks %q:\n%s", step, out.String())
		}
	}
	if info.Issuer != "pebble" || info.PortalAdmin == nil || info.PortalAdmin.Password == "" {
		t.Fatalf("demo.json: issuer %q, portal admin %+v", info.Issuer, info.PortalAdmin)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("portlama demo exited with %v after SIGTERM:\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("portlama demo did not stop within 30 s of SIGTERM")
	}
	// Nothing it started survives: no process has the demo directory on its
	// command line.
	eventually(t, 5*time.Second, "demo children gone", func() error {
		procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, p := range procs {
			b, _ := os.ReadFile(p)
			if bytes.Contains(b, []byte(dir)) {
				return &leftover{string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))}
			}
		}
		return nil
	})
}

type leftover struct{ cmd string }

func (l *leftover) Error() string { return "still running: " + l.cmd }

// syncBuffer collects a child's output while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
