package agent

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"
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

// harness records what the runner does.
type harness struct {
	mu       sync.Mutex
	cfg      *AgentConfig
	fetchErr error
	fetches  int
	sessions []Session
	ended    []bool // per session: Run returned
	runFn    func(i int, ctx context.Context) error
	sleeps   []time.Duration
	onSleep  func(n int) // called with the number of sleeps so far
	now      time.Time
}

func (h *harness) fetch(ctx context.Context) (*AgentConfig, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fetches++
	if h.fetchErr != nil {
		return nil, h.fetchErr
	}
	c := *h.cfg
	c.Tunnels = append([]AgentTunnel(nil), h.cfg.Tunnels...)
	return &c, nil
}

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
	s.h.mu.Lock()
	fn := s.h.runFn
	s.h.mu.Unlock()
	var err error
	if fn != nil {
		err = fn(s.i, ctx)
	} else {
		<-ctx.Done()
	}
	s.h.mu.Lock()
	s.h.ended[s.i] = true
	s.h.mu.Unlock()
	return err
}

func (h *harness) newSession(s Session) (TunnelSession, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sessions = append(h.sessions, s)
	h.ended = append(h.ended, false)
	return fakeSession{h: h, i: len(h.sessions) - 1}, nil
}

func (h *harness) sleep(ctx context.Context, d time.Duration) error {
	h.mu.Lock()
	h.sleeps = append(h.sleeps, d)
	n, cb := len(h.sleeps), h.onSleep
	h.mu.Unlock()
	if cb != nil {
		cb(n)
	}
	return ctx.Err()
}

func (h *harness) clock() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.now
}

func (h *harness) snapshot() (sessions []Session, ended []bool, fetches int, sleeps []time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Session(nil), h.sessions...), append([]bool(nil), h.ended...), h.fetches, append([]time.Duration(nil), h.sleeps...)
}

func (h *harness) runner(t *testing.T) *Runner {
	t.Helper()
	r, err := NewRunner(RunnerConfig{
		Fetch: h.fetch, NewSession: h.newSession,
		PollInterval: 5 * time.Millisecond, MinBackoff: time.Second, MaxBackoff: 30 * time.Second,
		HealthyAfter: time.Minute, Sleep: h.sleep, Now: h.clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
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
	})
	return cancelFn, ch
}

func TestRunnerRestartsOnlyWhenConfigChanges(t *testing.T) {
	h := &harness{cfg: testConfig(20001)}
	cancel, done := startRunner(t, h.runner(t))
	waitFor(t, "first session", func() bool { s, _, _, _ := h.snapshot(); return len(s) == 1 })
	// Several polls with an unchanged config: no reconnect.
	waitFor(t, "polls", func() bool { _, _, f, _ := h.snapshot(); return f >= 5 })
	if s, ended, _, _ := h.snapshot(); len(s) != 1 || ended[0] {
		t.Fatalf("unchanged config caused a reconnect: %d sessions, ended %v", len(s), ended)
	}
	// A new tunnel: the session is restarted with both remotes, no backoff.
	h.setConfig(testConfig(20001, 20002))
	waitFor(t, "second session", func() bool { s, _, _, _ := h.snapshot(); return len(s) == 2 })
	s, ended, _, sleeps := h.snapshot()
	if !ended[0] {
		t.Fatal("old session still running after the config change")
	}
	if len(s[1].Remotes) != 2 || s[1].Remotes[1] != "R:127.0.0.1:20002:127.0.0.1:8001" {
		t.Fatalf("new session remotes = %v", s[1].Remotes)
	}
	if len(sleeps) != 0 {
		t.Fatalf("a config change should reconnect at once, slept %v", sleeps)
	}
	// Changed credentials also restart.
	c := testConfig(20001, 20002)
	c.Auth = "home:rotated"
	h.setConfig(c)
	waitFor(t, "third session", func() bool { s, _, _, _ := h.snapshot(); return len(s) == 3 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil after cancel", err)
	}
	if _, ended, _, _ := h.snapshot(); !ended[2] {
		t.Fatal("session not stopped on cancel")
	}
}

func TestRunnerRefusedRefetchesAndBacksOffCapped(t *testing.T) {
	h := &harness{cfg: testConfig(20001)}
	var ctxCancel context.CancelFunc
	h.runFn = func(i int, ctx context.Context) error {
		return errors.New("tunnel server refused the connection: access denied")
	}
	port := 20001
	h.onSleep = func(n int) {
		// The relay changes the config while we wait: the next session
		// must use it (refetch before reconnect).
		port++
		h.setConfig(testConfig(port))
		if n == 8 {
			ctxCancel()
		}
	}
	r := h.runner(t)
	ctx, cancel := context.WithCancel(context.Background())
	ctxCancel = cancel
	if err := r.Run(ctx); err != nil {
		t.Fatalf("Run = %v", err)
	}
	sessions, _, fetches, sleeps := h.snapshot()
	want := []time.Duration{1, 2, 4, 8, 16, 30, 30, 30}
	if len(sleeps) != len(want) {
		t.Fatalf("sleeps = %v", sleeps)
	}
	for i := range want {
		if sleeps[i] != want[i]*time.Second {
			t.Fatalf("sleeps = %v, want %v seconds", sleeps, want)
		}
	}
	if len(sessions) != 8 || fetches != 8 {
		t.Fatalf("sessions %d, fetches %d: want a fresh agent-config before every attempt", len(sessions), fetches)
	}
	for i, s := range sessions {
		if want := "R:127.0.0.1:" + strconv.Itoa(20001+i) + ":127.0.0.1:8000"; s.Remotes[0] != want {
			t.Fatalf("session %d remote %s, want %s", i, s.Remotes[0], want)
		}
	}
}

func TestRunnerBackoffResetsAfterHealthySession(t *testing.T) {
	h := &harness{cfg: testConfig(20001), now: time.Unix(1_000_000, 0)}
	h.runFn = func(i int, ctx context.Context) error {
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
	r := h.runner(t)
	ctx, c := context.WithCancel(context.Background())
	cancel = c
	_ = r.Run(ctx)
	_, _, _, sleeps := h.snapshot()
	want := []time.Duration{1, 2, 4, 1, 2, 4}
	for i := range want {
		if i >= len(sleeps) || sleeps[i] != want[i]*time.Second {
			t.Fatalf("sleeps = %v, want %v seconds", sleeps, want)
		}
	}
}

func TestRunnerIdleWithoutTunnels(t *testing.T) {
	h := &harness{cfg: testConfig()}
	h.onSleep = func(n int) {
		if n == 3 {
			h.setConfig(testConfig(20005))
		}
	}
	startRunner(t, h.runner(t))
	waitFor(t, "session after tunnels appear", func() bool { s, _, _, _ := h.snapshot(); return len(s) == 1 })
	_, _, fetches, sleeps := h.snapshot()
	if fetches < 4 {
		t.Fatalf("fetches = %d, want polling while idle", fetches)
	}
	for _, d := range sleeps {
		if d != 5*time.Millisecond {
			t.Fatalf("idle waits %v, want the poll interval", sleeps)
		}
	}
}

func TestRunnerFetchFailureBacksOffAndKeepsSession(t *testing.T) {
	h := &harness{cfg: testConfig(20001), fetchErr: errors.New("relay down")}
	h.onSleep = func(n int) {
		if n == 3 {
			h.mu.Lock()
			h.fetchErr = nil
			h.mu.Unlock()
		}
	}
	startRunner(t, h.runner(t))
	waitFor(t, "session", func() bool { s, _, _, _ := h.snapshot(); return len(s) == 1 })
	_, _, _, sleeps := h.snapshot()
	if len(sleeps) != 3 || sleeps[0] != time.Second || sleeps[1] != 2*time.Second || sleeps[2] != 4*time.Second {
		t.Fatalf("sleeps = %v", sleeps)
	}
	// The relay's API fails while the tunnel is up: keep the session.
	h.mu.Lock()
	h.fetchErr = errors.New("panel restarting")
	f0 := h.fetches
	h.mu.Unlock()
	waitFor(t, "failed polls", func() bool { _, _, f, _ := h.snapshot(); return f >= f0+3 })
	if s, ended, _, _ := h.snapshot(); len(s) != 1 || ended[0] {
		t.Fatal("a failed poll dropped the running session")
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
		r, err := NewRunner(RunnerConfig{
			Fetch: h.fetch,
			NewSession: func(Session) (TunnelSession, error) {
				return &connSession{h: h, connect: connect, ch: make(chan struct{})}, nil
			},
			PollInterval: time.Hour, Sleep: h.sleep, Now: h.clock,
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, c := context.WithCancel(context.Background())
		cancel = c
		_ = r.Run(ctx)
		_, _, _, sleeps := h.snapshot()
		want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} // attempts that never connected
		if connect {
			want = []time.Duration{time.Second, time.Second, time.Second} // each stayed up 2 min
		}
		if len(sleeps) != 3 || sleeps[0] != want[0] || sleeps[1] != want[1] || sleeps[2] != want[2] {
			t.Fatalf("connect=%v: sleeps %v, want %v", connect, sleeps, want)
		}
	}
}
