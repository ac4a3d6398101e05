package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/portlama/portlama/internal/testutil"
)

// Chromium presents a client certificate headlessly only when the managed
// policy AutoSelectCertificateForUrls picks it; policies live in
// /etc/chromium/policies/managed. The test binary re-executes itself as a
// wrapper that bind-mounts a private copy of /etc/chromium (with that
// policy) in its own mount namespace and then becomes Chromium, so the
// machine's /etc is never changed.
const wrapEnv = "PORTLAMA_TEST_CHROMIUM_ETC"

const chromiumPath = "/usr/bin/chromium"

// execChromium runs in the re-executed test binary; it never returns.
func execChromium(etc string) {
	runtime.LockOSThread()
	fail := func(what string, err error) {
		fmt.Fprintf(os.Stderr, "chromium wrapper: %s: %v\n", what, err)
		os.Exit(111)
	}
	if err := syscall.Unshare(syscall.CLONE_NEWNS); err != nil {
		fail("unshare the mount namespace (needs root)", err)
	}
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		fail("make mounts private", err)
	}
	if err := syscall.Mount(etc, "/etc/chromium", "", syscall.MS_BIND, ""); err != nil {
		fail("bind-mount the policy directory", err)
	}
	env := []string{}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, wrapEnv+"=") {
			env = append(env, e)
		}
	}
	err := syscall.Exec(chromiumPath, append([]string{chromiumPath}, os.Args[1:]...), env)
	fail("exec "+chromiumPath, err)
}

// Browser is one headless Chromium with its own profile, NSS database
// (holding the client certificate and trusting the relay CA) and policy.
type Browser struct {
	t        *testing.T
	ctx      context.Context
	cancel   context.CancelFunc
	home     string
	Download string

	mu       sync.Mutex
	problems []string // CSP violations and uncaught exceptions
}

// NSS tools Chromium needs for the client certificate.
func needTools(t *testing.T) {
	testutil.NeedBinary(t, "chromium")
	testutil.NeedBinary(t, "certutil")
	testutil.NeedBinary(t, "pk12util")
}

func run(t *testing.T, argv ...string) {
	t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
}

// ClientCert is a P12 the browser presents, and the CA files it trusts.
type ClientCert struct {
	P12, Password string
	Trust         []string // PEM certificates trusted for TLS servers
}

// NewBrowser starts Chromium presenting cc.
func NewBrowser(t *testing.T, cc ClientCert) *Browser {
	t.Helper()
	needTools(t)
	home := t.TempDir()
	db := filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(db, 0o700); err != nil {
		t.Fatal(err)
	}
	run(t, "certutil", "-N", "-d", "sql:"+db, "--empty-password")
	// No certificate for pages that need none (the home UI alone).
	if cc.P12 != "" {
		run(t, "pk12util", "-i", cc.P12, "-d", "sql:"+db, "-W", cc.Password)
	}
	for i, ca := range cc.Trust {
		run(t, "certutil", "-A", "-d", "sql:"+db, "-n", fmt.Sprintf("portlama-trust-%d", i), "-t", "CP,,", "-i", ca)
	}
	etc := filepath.Join(home, "etc-chromium")
	if err := os.MkdirAll(filepath.Join(etc, "policies", "managed"), 0o755); err != nil {
		t.Fatal(err)
	}
	if prefs, err := os.ReadFile("/etc/chromium/master_preferences"); err == nil {
		os.WriteFile(filepath.Join(etc, "master_preferences"), prefs, 0o644)
	}
	policy, _ := json.Marshal(map[string]any{
		"AutoSelectCertificateForUrls": []string{`{"pattern":"*","filter":{}}`},
	})
	if err := os.WriteFile(filepath.Join(etc, "policies", "managed", "portlama-test.json"), policy, 0o644); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b := &Browser{t: t, home: home, Download: filepath.Join(home, "downloads")}
	os.MkdirAll(b.Download, 0o755)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(self),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(filepath.Join(home, "profile")),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		chromedp.WindowSize(1280, 860),
		chromedp.Env("HOME="+home, wrapEnv+"="+etc),
	}
	if nl := os.Getenv("PORTLAMA_CHROMIUM_NETLOG"); nl != "" {
		opts = append(opts, chromedp.Flag("log-net-log", nl), chromedp.Flag("net-log-capture-mode", "Everything"))
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	b.ctx = ctx
	b.cancel = func() { cancel(); acancel() }
	// The first call starts the browser: no deadline on it (a deadline
	// would end the browser with it).
	err = chromedp.Listen(ctx, func(ev any) {
		switch e := ev.(type) {
		case *cdplog.EventEntryAdded:
			if strings.Contains(e.Entry.Text, "Content Security Policy") || strings.Contains(e.Entry.Text, "Content-Security-Policy") {
				b.problem("CSP: " + e.Entry.Text)
			}
		case *cdpruntime.EventExceptionThrown:
			msg := e.ExceptionDetails.Text
			if e.ExceptionDetails.Exception != nil && e.ExceptionDetails.Exception.Description != "" {
				msg += " " + e.ExceptionDetails.Exception.Description
			}
			b.problem("uncaught exception: " + msg)
		}
	})
	if err == nil {
		_, err = chromedp.Call(ctx, cdplog.Enable, cdp.Empty{})
	}
	if err == nil {
		_, err = chromedp.Call(ctx, cdpruntime.Enable, cdp.Empty{})
	}
	if err == nil {
		_, err = chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: b.Download})
	}
	if err != nil {
		b.cancel()
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

// Use makes b report to t (a subtest) from now on.
func (b *Browser) Use(t *testing.T) { b.t = t }

func (b *Browser) problem(s string) {
	b.mu.Lock()
	b.problems = append(b.problems, s)
	b.mu.Unlock()
}

// Problems returns and clears the CSP violations and exceptions seen.
func (b *Browser) Problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.problems
	b.problems = nil
	return p
}

// Close stops Chromium.
func (b *Browser) Close() {
	if b.cancel != nil {
		b.cancel()
		b.cancel = nil
	}
}

// Action is one step of a browser test.
type Action = chromedp.Action[chromedp.Void]

// Run runs steps with a deadline.
func (b *Browser) Run(within time.Duration, steps ...Action) error {
	ctx, cancel := context.WithTimeout(b.ctx, within)
	defer cancel()
	return chromedp.Do(ctx, steps...)
}

// Get runs one action that returns a value, with a deadline; it fails the
// test on error.
func Get[T any](b *Browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 45*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.fail(what, err)
	}
	return v
}

// Must runs steps and fails the test on error, with the page's text and a
// screenshot.
func (b *Browser) Must(what string, steps ...Action) {
	b.t.Helper()
	if err := b.Run(45*time.Second, steps...); err != nil {
		b.fail(what, err)
	}
}

func (b *Browser) fail(what string, err error) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	url, _ := chromedp.Run(ctx, chromedp.Location())
	body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText.slice(0, 3000) : ""`))
	if buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(90)); err == nil {
		os.WriteFile(filepath.Join(b.home, "failure.png"), buf, 0o644)
		keepFailureShot(b.t, buf)
	}
	b.t.Fatalf("%s: %v\nat %s\npage text:\n%s", what, err, url, body)
}

// keepFailureShot saves the failure screenshot where CI keeps it.
func keepFailureShot(t *testing.T, png []byte) {
	dir := os.Getenv("PORTLAMA_BROWSER_ARTIFACTS")
	if dir == "" {
		return
	}
	os.MkdirAll(dir, 0o755)
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()) + "-failure.png"
	os.WriteFile(filepath.Join(dir, name), png, 0o644)
}
