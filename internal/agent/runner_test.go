package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/agent/agenttest"
	"github.com/portlama/portlama/internal/testutil"
	"github.com/portlama/portlama/internal/tunnel"
)

func testConfig(relayPorts ...int) *AgentConfig {
	c := &AgentConfig{
		Domain: "example.com", ChiselServerURL: "https://tunnel.example.com:443",
		Auth: "home:secret", Fingerprint: testFP, Tunnels: []AgentTunnel{},
	}
	for i, p := range relayPorts {
		c.Tunnels = append(c.Tunnels, AgentTunnel{ID: strconv.Itoa(i), FQDN: "t" + strconv.Itoa(p) + ".example.com", Port: 8000 + i, TargetHost: "127.0.0.1", RelayPort: p})
	}
	return c
}

// remoteOf is the remote testConfig gives relay port p at index i.
func remoteOf(p, i int) string {
	return "R:127.0.0.1:" + strconv.Itoa(p) + ":127.0.0.1:" + strconv.Itoa(8000+i)
}

// fakeRun is one session the runner created.
type fakeRun struct {
	sess         Session
	ctx          context.Context // set once Run starts
	ended        bool            // Run returned
	fetchesDone  int             // completed fetches when the session was created
	fetchesAtEnd int             // fetches started when Run returned
}

// harness records what the runner does.
type harness struct {
	mu           sync.Mutex
	cfg          *AgentConfig
	fetchErr     error
	fetchStarted int
	fetchDone    int
	fetchDelay   time.Duration
	onFetch      func(n int) // after fetch n (1-based) read the config
	runs         []*fakeRun
	runFn        func(i int, s Session, ctx context.Context) error
	running      int // sessions inside Run now
	overlap      int // sessions created while another of the same remote was running
	sleeps       []time.Duration
	blockSleep   bool
	onSleep      func(n int) // called with the number of sleeps so far
	now          time.Time
	logs         recLog
}

func (h *harness) fetch(ctx context.Context) (*AgentConfig, error) {
	h.mu.Lock()
	h.fetchStarted++
	n, delay := h.fetchStarted, h.fetchDelay
	h.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	h.mu.Lock()
	defer func() { h.fetchDone++; h.mu.Unlock() }()
	if h.fetchErr != nil {
		return nil, h.fetchErr
	}
	c := *h.cfg
	c.Tunnels = append([]AgentTunnel(nil), h.cfg.Tunnels...)
	if h.onFetch != nil {
		h.onFetch(n)
	}
	return &c, nil
}

// setConfig replaces the relay's answer; callers may hold no lock.
func (h *harness) setConfig(c *AgentConfig) {
	h.mu.Lock()
	h.cfg = c
	h.mu.Unlock()
}

type fakeSession struct {
	h *harness
	i int
}

func (s fakeSession) Run(ctx context.Context) error {
	h := s.h
	h.mu.Lock()
	fn, run := h.runFn, h.runs[s.i]
	run.ctx = ctx
	h.running++
	h.mu.Unlock()
	var err error
	if fn != nil {
		err = fn(s.i, run.sess, ctx)
	} else {
		<-ctx.Done()
	}
	h.mu.Lock()
	run.ended = true
	run.fetchesAtEnd = h.fetchStarted
	h.running--
	h.mu.Unlock()
	return err
}

func (h *harness) newSession(s Session) (TunnelSession, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.runs {
		if !r.ended && slices.Equal(r.sess.Remotes, s.Remotes) {
			h.overlap++
		}
	}
	h.runs = append(h.runs, &fakeRun{sess: s, fetchesDone: h.fetchDone})
	return fakeSession{h: h, i: len(h.runs) - 1}, nil
}

func (h *harness) sleep(ctx context.Context, d time.Duration) error {
	h.mu.Lock()
	h.sleeps = append(h.sleeps, d)
	n, cb, block := len(h.sleeps), h.onSleep, h.blockSleep
	h.mu.Unlock()
	if cb != nil {
		cb(n)
	}
	if block {
		<-ctx.Done()
	}
	return ctx.Err()
}

func (h *harness) clock() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.now
}

// view is a copy of the harness state.
type view struct {
	runs    []fakeRun
	fetches int
	sleeps  []time.Duration
	running int
	overlap int
}

func (h *harness) snapshot() view {
	h.mu.Lock()
	defer h.mu.Unlock()
	v := view{fetches: h.fetchDone, sleeps: slices.Clone(h.sleeps), running: h.running, overlap: h.overlap}
	for _, r := range h.runs {
		v.runs = append(v.runs, *r)
	}
	return v
}

// of returns the runs of remote, in creation order.
func (v view) of(remote string) []fakeRun {
	var out []fakeRun
	for _, r := range v.runs {
		if len(r.sess.Remotes) == 1 && r.sess.Remotes[0] == remote {
			out = append(out, r)
		}
	}
	return out
}

func (h *harness) config(poll time.Duration) RunnerConfig {
	return RunnerConfig{
		Fetch: h.fetch, NewSession: h.newSession,
		PollInterval: poll, MinBackoff: time.Second, MaxBackoff: 30 * time.Second,
		HealthyAfter: time.Minute, Sleep: h.sleep, Now: h.clock,
		Logger: slog.New(&h.logs),
	}
}

func (h *harness) runner(t *testing.T, poll time.Duration) *Runner {
	t.Helper()
	r, err := NewRunner(h.config(poll))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// recLog is a slog.Handler that keeps every record as "msg k=v k=v".
type recLog struct {
	mu    sync.Mutex
	lines []logLine
}

type logLine struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func (l *recLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *recLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *recLog) WithGroup(string) slog.Handler            { return l }
func (l *recLog) Handle(_ context.Context, r slog.Record) error {
	line := logLine{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	r.Attrs(func(a slog.Attr) bool {
		line.attrs[a.Key] = a.Value.String()
		return true
	})
	l.mu.Lock()
	l.lines = append(l.lines, line)
	l.mu.Unlock()
	return nil
}

// find returns the records with message msg.
func (l *recLog) find(msg string) []logLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []logLine
	for _, x := range l.lines {
		if x.msg == msg {
			out = append(out, x)
		}
	}
	return out
}

// mustNotContain fails if any record mentions s.
func (l *recLog) mustNotContain(t *testing.T, s string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, x := range l.lines {
		if strings.Contains(fmt.Sprint(x.msg, x.attrs), s) {
			t.Fatalf("log leaks %q: %s %v", s, x.msg, x.attrs)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// startRunner runs r in the background; cancel stops it, done yields Run's
// result. Cleanup checks that Run returned and left nothing running.
func startRunner(t *testing.T, r *Runner) (cancel func(), done <-chan error) {
	ctx, cancelFn := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	finished := make(chan struct{})
	go func() { ch <- r.Run(ctx); close(finished) }()
	t.Cleanup(func() {
		cancelFn()
		select {
		case <-finished:
		case <-time.After(5 * time.Second):
			t.Error("runner did not stop")
		}
		if n := r.workers.Load(); n != 0 {
			t.Errorf("%d tunnel goroutines left after Run returned", n)
		}
	})
	return cancelFn, ch
}

func TestRunnerAddTunnelKeepsExistingSession(t *testing.T) {
	h := &harness{cfg: testConfig(20001)}
	startRunner(t, h.runner(t, 5*time.Millisecond))
	a, b := remoteOf(20001, 0), remoteOf(20002, 1)
	waitFor(t, "first session", func() bool { return len(h.snapshot().runs) == 1 })
	// Several polls with an unchanged config: nothing restarts.
	waitFor(t, "polls", func() bool { return h.snapshot().fetches >= 5 })

	h.setConfig(testConfig(20001, 20002))
	waitFor(t, "second session", func() bool { return len(h.snapshot().of(b)) == 1 })
	f0 := h.snapshot().fetches
	waitFor(t, "more polls", func() bool { return h.snapshot().fetches >= f0+5 })

	v := h.snapshot()
	if len(v.runs) != 2 {
		t.Fatalf("%d sessions, want exactly one new session for the new tunnel", len(v.runs))
	}
	old := v.of(a)
	if len(old) != 1 || old[0].ended || old[0].ctx.Err() != nil {
		t.Fatal("adding a tunnel stopped or cancelled the existing session")
	}
	nb := v.of(b)[0]
	if nb.ended || len(nb.sess.Tunnels) != 1 || nb.sess.Tunnels[0].FQDN != "t20002.example.com" || nb.sess.Auth != "home:secret" {
		t.Fatalf("new session = %+v", nb.sess)
	}
	if len(v.sleeps) != 0 {
		t.Fatalf("a config change should connect at once, slept %v", v.sleeps)
	}
	if got := h.logs.find("tunnel configuration changed"); len(got) != 2 || got[1].attrs["added"] != "t20002.example.com" || got[1].attrs["removed"] != "" {
		t.Fatalf("config change logs = %v", got)
	}
	if got := h.logs.find("tunnel up"); len(got) != 2 || got[1].attrs["fqdn"] != "t20002.example.com" || got[1].attrs["to"] != "127.0.0.1:8001" {
		t.Fatalf("tunnel up logs = %v", got)
	}
}

func TestRunnerRemoveTunnelStopsOnlyItsSession(t *testing.T) {
	h := &harness{cfg: testConfig(20001, 20002, 20003)}
	startRunner(t, h.runner(t, 5*time.Millisecond))
	waitFor(t, "three sessions", func() bool { return h.snapshot().running == 3 })

	c := testConfig(20001, 20002, 20003)
	c.Tunnels = slices.Delete(c.Tunnels, 1, 2) // drop 20002, keep the others as they were
	h.setConfig(c)
	b := remoteOf(20002, 1)
	waitFor(t, "removed session to end", func() bool { return h.snapshot().of(b)[0].ended })
	f0 := h.snapshot().fetches
	waitFor(t, "more polls", func() bool { return h.snapshot().fetches >= f0+5 })

	v := h.snapshot()
	if len(v.runs) != 3 || v.running != 2 {
		t.Fatalf("%d sessions created, %d running; want 3 and 2", len(v.runs), v.running)
	}
	for _, r := range []string{remoteOf(20001, 0), remoteOf(20003, 2)} {
		if s := v.of(r)[0]; s.ended || s.ctx.Err() != nil {
			t.Fatalf("session %s was stopped by another tunnel's removal", r)
		}
	}
	if got := h.logs.find("tunnel configuration changed"); len(got) != 2 || got[1].attrs["removed"] != "t20002.example.com" || got[1].attrs["added"] != "" {
		t.Fatalf("config change logs = %v", got)
	}
}

func TestRunnerServerSettingsChangeRestartsAll(t *testing.T) {
	for name, change := range map[string]func(*AgentConfig){
		"credentials": func(c *AgentConfig) { c.Auth = "home:rotated" },
		"fingerprint": func(c *AgentConfig) { c.Fingerprint = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" },
		"server":      func(c *AgentConfig) { c.ChiselServerURL = "https://tunnel.example.net" },
	} {
		t.Run(name, func(t *testing.T) {
			h := &harness{cfg: testConfig(20001, 20002)}
			startRunner(t, h.runner(t, 5*time.Millisecond))
			waitFor(t, "two sessions", func() bool { return h.snapshot().running == 2 })
			c := testConfig(20001, 20002)
			change(c)
			h.setConfig(c)
			waitFor(t, "two new sessions", func() bool { v := h.snapshot(); return len(v.runs) == 4 && v.running == 2 })
			f0 := h.snapshot().fetches
			waitFor(t, "more polls", func() bool { return h.snapshot().fetches >= f0+5 })
			v := h.snapshot()
			if len(v.runs) != 4 {
				t.Fatalf("%d sessions, want 4", len(v.runs))
			}
			for i, r := range v.runs {
				if old := i < 2; r.ended != old {
					t.Fatalf("session %d ended=%v", i, r.ended)
				}
				if i >= 2 && (r.sess.Auth != c.Auth || r.sess.Fingerprint != c.Fingerprint || r.sess.ServerURL != c.ChiselServerURL) {
					t.Fatalf("restarted session uses old settings: %+v", r.sess)
				}
			}
			if v.overlap != 0 {
				t.Fatal("a new session started before the old one of the same tunnel had stopped")
			}
			if got := h.logs.find("tunnel server settings changed; reconnecting every tunnel"); len(got) != 1 || got[0].attrs["changed"] != name {
				t.Fatalf("settings change logs = %v", got)
			}
			h.logs.mustNotContain(t, "secret")
			h.logs.mustNotContain(t, "rotated")
		})
	}
}

func TestRunnerRefusedTunnelDroppedAfterRefetch(t *testing.T) {
	// Polls are an hour apart: every fetch after the first is one the
	// refused session asked for.
	h := &harness{cfg: testConfig(20001, 20002)}
	a, b := remoteOf(20001, 0), remoteOf(20002, 1)
	h.runFn = func(i int, s Session, ctx context.Context) error {
		if s.Remotes[0] == b {
			// The relay no longer lists this tunnel; make the refetch
			// slow so an early retry would be caught.
			c := testConfig(20001, 20002)
			c.Tunnels = c.Tunnels[:1]
			h.setConfig(c)
			h.mu.Lock()
			h.fetchDelay = 50 * time.Millisecond
			h.mu.Unlock()
			return errors.New("tunnel server refused the connection: remote denied")
		}
		<-ctx.Done()
		return nil
	}
	startRunner(t, h.runner(t, time.Hour))
	waitFor(t, "refused tunnel removed", func() bool { return len(h.logs.find("tunnel configuration changed")) == 2 })
	time.Sleep(100 * time.Millisecond)
	v := h.snapshot()
	if n := len(v.of(b)); n != 1 {
		t.Fatalf("refused tunnel was tried %d times, want once (its remote is gone)", n)
	}
	if v.fetches != 2 {
		t.Fatalf("fetches = %d, want the initial one plus one refetch", v.fetches)
	}
	if s := v.of(a); len(s) != 1 || s[0].ended {
		t.Fatal("the other tunnel's session was disturbed")
	}
	down := h.logs.find("tunnel down")
	if len(down) != 1 || down[0].attrs["fqdn"] != "t20002.example.com" || !strings.Contains(down[0].attrs["reason"], "refused") || down[0].attrs["retryIn"] != "1s" {
		t.Fatalf("tunnel down logs = %v", down)
	}
	if got := h.logs.find("tunnel configuration changed")[1]; got.attrs["removed"] != "t20002.example.com" {
		t.Fatalf("config change log = %v", got)
	}
}

func TestRunnerBackoffPerSession(t *testing.T) {
	const attempts = 9
	h := &harness{cfg: testConfig(20001, 20002, 20003)}
	a, b, c := remoteOf(20001, 0), remoteOf(20002, 1), remoteOf(20003, 2)
	tries := map[string]int{}
	h.runFn = func(i int, s Session, ctx context.Context) error {
		h.mu.Lock()
		tries[s.Remotes[0]]++
		n := tries[s.Remotes[0]]
		h.mu.Unlock()
		if s.Remotes[0] == c || n >= attempts {
			<-ctx.Done() // c stays up; the others stay up once they got there
			return nil
		}
		return errors.New("tunnel connection failed: connection refused")
	}
	startRunner(t, h.runner(t, time.Hour))
	waitFor(t, "failing tunnels to get through", func() bool {
		v := h.snapshot()
		return len(v.of(a)) == attempts && len(v.of(b)) == attempts && v.running == 3
	})
	v := h.snapshot()
	want := []string{"1s", "2s", "4s", "8s", "16s", "30s", "30s", "30s"}
	for _, fqdn := range []string{"t20001.example.com", "t20002.example.com"} {
		var got []string
		for _, l := range h.logs.find("tunnel down") {
			if l.attrs["fqdn"] == fqdn {
				got = append(got, l.attrs["retryIn"])
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s retried after %v, want %v", fqdn, got, want)
		}
	}
	for _, r := range []string{a, b} {
		runs := v.of(r)
		for k := 1; k < len(runs); k++ {
			if runs[k].fetchesDone < runs[k-1].fetchesAtEnd+1 {
				t.Fatalf("%s attempt %d started without a refetch after attempt %d ended (fetches done %d, started at end %d)",
					r, k+1, k, runs[k].fetchesDone, runs[k-1].fetchesAtEnd)
			}
		}
	}
	if s := v.of(c); len(s) != 1 || s[0].ended || s[0].ctx.Err() != nil {
		t.Fatal("the healthy tunnel was restarted by the others' failures")
	}
}

func TestRunnerBackoffResetsAfterHealthySession(t *testing.T) {
	h := &harness{cfg: testConfig(20001), now: time.Unix(1_000_000, 0)}
	h.runFn = func(i int, _ Session, ctx context.Context) error {
		if i == 3 {
			h.mu.Lock()
			h.now = h.now.Add(2 * time.Minute) // this session stayed up
			h.mu.Unlock()
		}
		return errors.New("tunnel connection failed")
	}
	var cancel context.CancelFunc
	h.onSleep = func(n int) {
		if n == 6 {
			cancel()
		}
	}
	r := h.runner(t, time.Hour)
	ctx, c := context.WithCancel(context.Background())
	cancel = c
	_ = r.Run(ctx)
	want := []time.Duration{1, 2, 4, 1, 2, 4}
	sleeps := h.snapshot().sleeps
	for i := range want {
		if i >= len(sleeps) || sleeps[i] != want[i]*time.Second {
			t.Fatalf("sleeps = %v, want %v seconds", sleeps, want)
		}
	}
}

func TestRunnerIdleWithoutTunnels(t *testing.T) {
	h := &harness{cfg: testConfig()}
	startRunner(t, h.runner(t, 5*time.Millisecond))
	waitFor(t, "polls while idle", func() bool { return h.snapshot().fetches >= 5 })
	if v := h.snapshot(); len(v.runs) != 0 || len(v.sleeps) != 0 {
		t.Fatalf("idle runner created %d sessions, slept %v", len(v.runs), v.sleeps)
	}
	if got := h.logs.find("no enabled tunnels for this agent; not connecting, checking again periodically"); len(got) != 1 {
		t.Fatalf("idle logged %d times, want once", len(got))
	}
	h.setConfig(testConfig(20005))
	waitFor(t, "session after a tunnel appears", func() bool { return h.snapshot().running == 1 })
}

func TestRunnerFetchFailureBacksOffAndKeepsSessions(t *testing.T) {
	h := &harness{cfg: testConfig(20001), fetchErr: errors.New("relay down")}
	h.onSleep = func(n int) {
		if n == 3 {
			h.mu.Lock()
			h.fetchErr = nil
			h.mu.Unlock()
		}
	}
	startRunner(t, h.runner(t, 5*time.Millisecond))
	waitFor(t, "session", func() bool { return len(h.snapshot().runs) == 1 })
	if s := h.snapshot().sleeps; !slices.Equal(s, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}) {
		t.Fatalf("sleeps = %v", s)
	}
	// The relay's API fails while the tunnel is up: keep the session.
	h.mu.Lock()
	h.fetchErr = errors.New("panel restarting")
	f0 := h.fetchDone
	h.mu.Unlock()
	waitFor(t, "failed polls", func() bool { return h.snapshot().fetches >= f0+3 })
	if v := h.snapshot(); len(v.runs) != 1 || v.runs[0].ended {
		t.Fatal("a failed poll dropped the running session")
	}
}

func TestRunnerCancelStopsEverything(t *testing.T) {
	h := &harness{cfg: testConfig(20001, 20002, 20003), blockSleep: true}
	failing := remoteOf(20003, 2)
	h.runFn = func(_ int, s Session, ctx context.Context) error {
		if s.Remotes[0] == failing {
			return errors.New("tunnel connection failed")
		}
		<-ctx.Done()
		return nil
	}
	r := h.runner(t, 5*time.Millisecond)
	cancel, done := startRunner(t, r)
	waitFor(t, "two up, one backing off", func() bool {
		v := h.snapshot()
		return v.running == 2 && len(v.sleeps) == 1
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil after cancel", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Run did not return promptly after cancel")
	}
	v := h.snapshot()
	if v.running != 0 {
		t.Fatalf("%d sessions still running after Run returned", v.running)
	}
	for i, run := range v.runs {
		if !run.ended {
			t.Fatalf("session %d not stopped", i)
		}
	}
	if n := r.workers.Load(); n != 0 {
		t.Fatalf("%d tunnel goroutines left after Run returned", n)
	}
}

func TestNewRunnerRequiresFuncs(t *testing.T) {
	if _, err := NewRunner(RunnerConfig{}); err == nil {
		t.Fatal("NewRunner accepted an empty config")
	}
}

// connSession reports Connected when connect is true; each Run advances the
// fake clock by two minutes before failing.
type connSession struct {
	h       *harness
	connect bool
	ch      chan struct{}
}

func (s *connSession) Connected() <-chan struct{} { return s.ch }

func (s *connSession) Run(ctx context.Context) error {
	if s.connect {
		close(s.ch)
		time.Sleep(20 * time.Millisecond) // let the runner see it
	}
	s.h.mu.Lock()
	s.h.now = s.h.now.Add(2 * time.Minute)
	s.h.mu.Unlock()
	return errors.New("tunnel connection failed")
}

func TestRunnerUptimeCountsFromConnected(t *testing.T) {
	for _, connect := range []bool{false, true} {
		h := &harness{cfg: testConfig(20001), now: time.Unix(1_000_000, 0)}
		var cancel context.CancelFunc
		h.onSleep = func(n int) {
			if n == 3 {
				cancel()
			}
		}
		cfg := h.config(time.Hour)
		cfg.NewSession = func(Session) (TunnelSession, error) {
			return &connSession{h: h, connect: connect, ch: make(chan struct{})}, nil
		}
		r, err := NewRunner(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, c := context.WithCancel(context.Background())
		cancel = c
		_ = r.Run(ctx)
		sleeps := h.snapshot().sleeps
		want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} // attempts that never connected
		if connect {
			want = []time.Duration{time.Second, time.Second, time.Second} // each stayed up 2 min
		}
		if !slices.Equal(sleeps, want) {
			t.Fatalf("connect=%v: sleeps %v, want %v", connect, sleeps, want)
		}
		if up := len(h.logs.find("tunnel up")); (up > 0) != connect {
			t.Fatalf("connect=%v: %d \"tunnel up\" logs", connect, up)
		}
	}
}

func TestRunnerFactoryErrorIsRetried(t *testing.T) {
	h := &harness{cfg: testConfig(20001)}
	cfg := h.config(time.Hour)
	calls := 0
	cfg.NewSession = func(s Session) (TunnelSession, error) {
		h.mu.Lock()
		calls++
		n := calls
		h.mu.Unlock()
		if n < 3 {
			return nil, errors.New("no client certificate")
		}
		return h.newSession(s)
	}
	r, err := NewRunner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	startRunner(t, r)
	waitFor(t, "session after factory errors", func() bool { return h.snapshot().running == 1 })
	down := h.logs.find("tunnel down")
	if len(down) != 2 || !strings.Contains(down[0].attrs["reason"], "set up tunnel client: no client certificate") {
		t.Fatalf("tunnel down logs = %v", down)
	}
}

// TestRunnerAddingTunnelKeepsTransferRunning: with the real tunnel client
// and server, a download running through tunnel A survives the creation of
// tunnel B, and each tunnel has its own session on the relay.
func TestRunnerAddingTunnelKeepsTransferRunning(t *testing.T) {
	p := agenttest.NewPanel(t)
	home := Home{Dir: t.TempDir()}
	if _, err := Setup(context.Background(), home, setupOpts(p)); err != nil {
		t.Fatal(err)
	}
	id, err := home.LoadIdentity("home")
	if err != nil {
		t.Fatal(err)
	}
	relay := &tunnelRelay{dir: t.TempDir(), addr: testutil.FreeAddr(t)}
	relay.start(t)
	t.Cleanup(relay.stop)
	acl := tunnel.NewACL(filepath.Join(relay.dir, "acl.json"))
	ctx := context.Background()
	if err := acl.AddAgent(ctx, "home"); err != nil {
		t.Fatal(err)
	}
	cred, _ := acl.Credential(ctx, "home")
	front := tunnelFront(t, p.CA, relay.addr)

	// App A streams 64 KiB chunks until released, then "END".
	const chunk = 64 << 10
	release := make(chan struct{})
	streaming := make(chan struct{})
	var once sync.Once
	la, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	appA := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/stream" {
			_, _ = io.WriteString(w, "one")
			return
		}
		buf := make([]byte, chunk)
		for {
			if _, err := w.Write(buf); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			once.Do(func() { close(streaming) })
			select {
			case <-release:
				_, _ = io.WriteString(w, "END")
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	})}
	go func() { _ = appA.Serve(la) }()
	t.Cleanup(func() { _ = appA.Close() })
	portA := la.Addr().(*net.TCPAddr).Port
	portB := appServer(t, "two")
	rpA, rpB := testutil.FreePort(t), testutil.FreePort(t)

	setTunnels := func(ts ...AgentTunnel) {
		var ports []int
		for _, tn := range ts {
			ports = append(ports, tn.RelayPort)
		}
		if err := acl.SetPorts(ctx, "home", ports); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(AgentConfig{Domain: "demo.localhost", ChiselServerURL: front.URL, Auth: cred,
			Fingerprint: relay.srv.Fingerprint(), Tunnels: ts})
		p.SetAgentConfig(b)
	}
	tunA := AgentTunnel{ID: "a", FQDN: "a.demo.localhost", Port: portA, TargetHost: "127.0.0.1", RelayPort: rpA}
	tunB := AgentTunnel{ID: "b", FQDN: "b.demo.localhost", Port: portB, TargetHost: "127.0.0.1", RelayPort: rpB}
	setTunnels(tunA)
	time.Sleep(300 * time.Millisecond) // let the server reload acl.json

	tc, err := id.PanelTLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	logs := &recLog{}
	logger := slog.New(slog.NewTextHandler(&tLog{t: t}, nil))
	r, err := NewRunner(RunnerConfig{
		Fetch: NewFetcher(NewClient(id.Profile.PanelURL, tc)), NewSession: TunnelClientFactory(id, logger),
		PollInterval: 100 * time.Millisecond, MinBackoff: 100 * time.Millisecond, MaxBackoff: 400 * time.Millisecond,
		Logger: slog.New(logs),
	})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	defer func() {
		cancel()
		<-done
		if n := r.workers.Load(); n != 0 {
			t.Errorf("%d tunnel goroutines left", n)
		}
	}()
	waitBody(t, rpA, "one")

	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(rpA) + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	<-streaming
	type result struct {
		n    int64
		tail string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		b, err := io.ReadAll(resp.Body)
		tail := string(b[max(0, len(b)-3):])
		got <- result{int64(len(b)), tail, err}
	}()

	downs := func(fqdn string) int {
		n := 0
		for _, l := range logs.find("tunnel down") {
			if l.attrs["fqdn"] == fqdn {
				n++
			}
		}
		return n
	}
	downsBefore := downs(tunA.FQDN)
	setTunnels(tunA, tunB)
	waitBody(t, rpB, "two")
	time.Sleep(300 * time.Millisecond) // several polls with both tunnels
	close(release)
	res := <-got
	if res.err != nil || res.tail != "END" || res.n < chunk {
		t.Fatalf("download through tunnel A: %d bytes, tail %q, err %v; want it to survive adding tunnel B", res.n, res.tail, res.err)
	}
	if n := relay.srv.Sessions("home"); n != 2 {
		t.Fatalf("relay sees %d sessions of the agent, want one per tunnel", n)
	}
	// Tunnel B may be refused once if the agent saw it before the server
	// reloaded acl.json; tunnel A must not have gone down meanwhile.
	if n := downs(tunA.FQDN); n != downsBefore {
		t.Fatalf("tunnel A went down %d times while tunnel B was added", n-downsBefore)
	}
	if up := logs.find("tunnel up"); len(up) < 2 || up[0].attrs["fqdn"] != tunA.FQDN || up[0].attrs["to"] != "127.0.0.1:"+strconv.Itoa(portA) {
		t.Fatalf("tunnel up logs = %v", up)
	}
	logs.mustNotContain(t, cred)
}
