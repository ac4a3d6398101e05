package nginx

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/testutil"
)

// countingCtl counts the tests and reloads it passes on to ctl.
type countingCtl struct {
	ctl            Controller
	tests, reloads atomic.Int64
}

func (c *countingCtl) Test(ctx context.Context) (string, error) {
	c.tests.Add(1)
	return c.ctl.Test(ctx)
}

func (c *countingCtl) Reload(ctx context.Context) error {
	c.reloads.Add(1)
	return c.ctl.Reload(ctx)
}

// TestConcurrentWritesShareReloads: 20 vhost writes at once cost a few
// nginx tests and reloads, not 20, and each app answers as soon as its own
// call returns.
func TestConcurrentWritesShareReloads(t *testing.T) { appModes(t, testConcurrentWritesShareReloads) }

func testConcurrentWritesShareReloads(t *testing.T, wildcard bool) {
	rl := startRelay(t, nil)
	rl.wildcard = wildcard
	cc := &countingCtl{ctl: rl.inst}
	m := NewManager(rl.layout, cc, nil)
	const n = 20
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		sub := fmt.Sprintf("app-%d", i)
		app := startEcho(t, sub)
		vs := rl.renderApp(t, sub, app.port, true)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if err := m.Apply(ctxT(t), vs...); err != nil {
				t.Errorf("%s: %v", sub, err)
				return
			}
			// Live when the call returns: no waiting, no retry.
			resp, err := rl.client(rl.addrs.HTTPSPort, nil).Get(rl.appURL(sub, "/"))
			if err != nil {
				t.Errorf("%s right after Apply: %v", sub, err)
				return
			}
			var sb strings.Builder
			_, _ = fmt.Fprint(&sb, resp.Status)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("%s right after Apply: %s", sub, sb.String())
			}
		}()
	}
	close(start)
	wg.Wait()
	if r := cc.reloads.Load(); r > 4 {
		t.Errorf("%d concurrent writes caused %d reloads, want a few", n, r)
	}
	t.Logf("%d concurrent vhost writes: %d nginx tests, %d reloads", n, cc.tests.Load(), cc.reloads.Load())
}

// TestBadVhostFailsOnlyItsCaller: among concurrent good changes, the one
// that breaks the configuration fails alone and is rolled back; the others
// are live.
func TestBadVhostFailsOnlyItsCaller(t *testing.T) { appModes(t, testBadVhostFailsOnlyItsCaller) }

func testBadVhostFailsOnlyItsCaller(t *testing.T, wildcard bool) {
	rl := startRelay(t, nil)
	rl.wildcard = wildcard
	cc := &countingCtl{ctl: rl.inst}
	m := NewManager(rl.layout, cc, nil)
	const good = 8
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make([]error, good+1)
	for i := 0; i <= good; i++ {
		sub := fmt.Sprintf("good-%d", i)
		var vs []Vhost
		switch {
		case i == good && wildcard:
			// The group also writes the shared server for the first time:
			// it must stay for the good ones when the bad one is undone.
			sub = "bad"
			vs = rl.renderApp(t, sub, 1, true)
			vs[1].Route = []byte(sub + "." + testDomain + " public:portlama_app_bad nonsense;\n")
		case i == good:
			sub = "bad"
			vs = []Vhost{{Name: AppVhostName(sub), FQDN: sub + "." + testDomain, Content: []byte("server { listen nonsense; }\n")}}
		default:
			vs = rl.renderApp(t, sub, startEcho(t, sub).port, true)
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			errs[i] = m.Apply(ctxT(t), vs...)
		}(i)
	}
	close(start)
	wg.Wait()
	var te *TestError
	if !errors.As(errs[good], &te) || !strings.Contains(te.Action, "bad."+testDomain) {
		t.Fatalf("bad vhost: %v, want a *TestError for bad.%s", errs[good], testDomain)
	}
	for i := 0; i < good; i++ {
		if errs[i] != nil {
			t.Errorf("good-%d failed with the bad one: %v", i, errs[i])
			continue
		}
		resp, body := get(t, rl.client(rl.addrs.HTTPSPort, nil), rl.appURL(fmt.Sprintf("good-%d", i), "/"), nil)
		if resp.StatusCode != 200 || decodeEcho(t, body).Name != fmt.Sprintf("good-%d", i) {
			t.Errorf("good-%d: %d %s", i, resp.StatusCode, body)
		}
	}
	for _, p := range []string{
		filepath.Join(rl.layout.NginxSitesAvailable(), AppVhostName("bad")),
		filepath.Join(rl.layout.NginxSitesEnabled(), AppVhostName("bad")),
		filepath.Join(rl.layout.NginxSitesAvailable(), AppVhostName("bad")+routeSuffix),
		filepath.Join(RoutesDir(rl.layout.NginxSitesEnabled()), AppVhostName("bad")),
	} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s left behind: %v", p, err)
		}
	}
	if out, err := rl.inst.Test(ctxT(t)); err != nil {
		t.Fatalf("configuration broken after the group: %s", out)
	}
}

// gateCtl blocks its first Test until released, so a test can queue
// changes behind a running group.
type gateCtl struct {
	fakeCtl
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (g *gateCtl) Test(ctx context.Context) (string, error) {
	first := false
	g.once.Do(func() { first = true })
	if first {
		close(g.entered)
		<-g.release
	}
	return g.fakeCtl.Test(ctx)
}

func newGate(dir string) *gateCtl {
	return &gateCtl{fakeCtl: fakeCtl{dir: dir}, entered: make(chan struct{}), release: make(chan struct{})}
}

// watchQueue returns a channel that receives each change m queues.
func watchQueue(m *Manager) <-chan struct{} {
	ch := make(chan struct{}, 16)
	m.queued = func() { ch <- struct{}{} }
	return ch
}

// TestGroupRollbackOfOneFile: two changes to one file in a group, the
// second broken: the file keeps the first change, and only the second
// caller fails.
func TestGroupRollbackOfOneFile(t *testing.T) {
	m, _, l := newFakeManager(t)
	g := newGate(l.NginxSitesEnabled())
	m.ctl = g
	q := watchQueue(m)
	ctx := context.Background()
	first := make(chan error, 1)
	go func() { first <- m.WriteVhost(ctx, "portlama-app-a", "a.example.com", []byte("a0")) }()
	<-q
	<-g.entered
	errs := make(chan error, 2)
	go func() { errs <- m.WriteVhost(ctx, "portlama-app-x", "x.example.com", []byte("x1")) }()
	<-q
	go func() { errs <- m.WriteVhost(ctx, "portlama-app-x", "x.example.com", []byte("BROKEN")) }()
	<-q
	close(g.release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	var ok, failed int
	for i := 0; i < 2; i++ {
		var te *TestError
		switch err := <-errs; {
		case err == nil:
			ok++
		case errors.As(err, &te):
			failed++
		default:
			t.Errorf("unexpected error %v", err)
		}
	}
	if ok != 1 || failed != 1 {
		t.Errorf("%d succeeded, %d failed; want 1 and 1", ok, failed)
	}
	p := filepath.Join(l.NginxSitesAvailable(), "portlama-app-x")
	if b, _ := os.ReadFile(p); string(b) != "x1" {
		t.Errorf("content %q, want the good change x1", b)
	}
	if _, err := os.Stat(p + ".bak"); !os.IsNotExist(err) {
		t.Error(".bak left behind")
	}
	if g.reloads.Load() != 2 {
		t.Errorf("%d reloads, want 2 (one per group)", g.reloads.Load())
	}
}

// TestManagersSerialiseThroughTheLockFile: a second Manager on the same
// layout (as `portlama certs renew` is a second process) waits while the
// first commits, then commits.
func TestManagersSerialiseThroughTheLockFile(t *testing.T) {
	a, _, l := newFakeManager(t)
	g := newGate(l.NginxSitesEnabled())
	a.ctl = g
	bCtl := &fakeCtl{dir: l.NginxSitesEnabled()}
	b := NewManager(l, bCtl, nil)
	waiting := make(chan struct{})
	b.lockWait = func() { close(waiting) }
	ctx := context.Background()

	aDone := make(chan error, 1)
	go func() { aDone <- a.WriteVhost(ctx, "portlama-app-a", "a.example.com", []byte("a")) }()
	<-g.entered // a holds the lock, in its test
	bDone := make(chan error, 1)
	go func() { bDone <- b.TestAndReload(ctx) }()
	<-waiting // b found the lock taken
	if bCtl.tests.Load() != 0 {
		t.Fatal("the second manager tested while the first held the lock")
	}
	close(g.release)
	if err := <-aDone; err != nil {
		t.Fatal(err)
	}
	if err := <-bDone; err != nil {
		t.Fatal(err)
	}
	if bCtl.tests.Load() != 1 || bCtl.reloads.Load() != 1 {
		t.Errorf("second manager: %d tests, %d reloads", bCtl.tests.Load(), bCtl.reloads.Load())
	}
}

// TestManagerWaitsForAnotherProcess: a real second process (flock(1))
// holding the lock keeps changes out until it lets go.
func TestManagerWaitsForAnotherProcess(t *testing.T) {
	flockBin := testutil.NeedBinary(t, "flock")
	m, f, l := newFakeManager(t)
	lock := filepath.Join(l.NginxSitesAvailable(), lockName)
	if err := os.MkdirAll(filepath.Dir(lock), 0o755); err != nil {
		t.Fatal(err)
	}
	// flock holds the lock while cat waits for its stdin.
	cmd := exec.Command(flockBin, lock, "cat")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan struct{})
	m.lockWait = func() { close(held) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	// Readiness probe: flock has the lock once a non-blocking try fails.
	for deadline := time.Now().Add(10 * time.Second); ; {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		unlock, err := lockFile(ctx, lock, nil)
		if err != nil {
			break
		}
		unlock()
		if time.Now().After(deadline) {
			t.Fatal("flock(1) did not take the lock")
		}
		time.Sleep(5 * time.Millisecond)
	}
	done := make(chan error, 1)
	go func() { done <- m.WriteVhost(context.Background(), "portlama-app-a", "a.example.com", []byte("a")) }()
	<-held
	if f.tests.Load() != 0 {
		t.Fatal("tested while another process held the lock")
	}
	stdin.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if f.tests.Load() != 1 || f.reloads.Load() != 1 {
		t.Errorf("%d tests, %d reloads after the other process let go", f.tests.Load(), f.reloads.Load())
	}
}

// TestQueuedChangeWithdrawnOnCancel: a change still waiting for its group
// is withdrawn when its context ends and changes nothing.
func TestQueuedChangeWithdrawnOnCancel(t *testing.T) {
	m, _, l := newFakeManager(t)
	g := newGate(l.NginxSitesEnabled())
	m.ctl = g
	q := watchQueue(m)
	first := make(chan error, 1)
	go func() { first <- m.WriteVhost(context.Background(), "portlama-app-a", "a.example.com", []byte("a")) }()
	<-q
	<-g.entered
	ctx, cancel := context.WithCancel(context.Background())
	second := make(chan error, 1)
	go func() { second <- m.WriteVhost(ctx, "portlama-app-b", "b.example.com", []byte("b")) }()
	<-q
	cancel()
	if err := <-second; !errors.Is(err, context.Canceled) {
		t.Fatalf("withdrawn change: %v", err)
	}
	close(g.release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if ex, _ := m.VhostExists("portlama-app-b"); ex {
		t.Error("a withdrawn change was written")
	}
}
