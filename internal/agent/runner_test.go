package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

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

// fakeClient is a TunnelClient whose Run does what the test says; its
// remotes are bound while it is "connected".
type fakeClient struct {
	h   *harness
	key TunnelServer
	n   int // index in harness.clients

	mu      sync.Mutex
	state   tunnel.ClientState
	sets    [][]string
	runs    int
	ctxs    []context.Context
	ended   int
	changed chan struct{}
}

func (c *fakeClient) signalLocked() { close(c.changed); c.changed = make(chan struct{}) }

func (c *fakeClient) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

func (c *fakeClient) State() tunnel.ClientState {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.state
	st.Remotes = slices.Clone(st.Remotes)
	return st
}

func (c *fakeClient) SetRemotes(_ context.Context, remotes []string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sets = append(c.sets, slices.Clone(remotes))
	c.state.Remotes = nil
	for _, s := range remotes {
		r, err := tunnel.ParseRemote(s)
		if err != nil {
			return err
		}
		rs := tunnel.RemoteState{Remote: r, Status: tunnel.RemotePending}
		if c.state.Status == tunnel.StatusConnected {
			c.bind(&rs)
		}
		c.state.Remotes = append(c.state.Remotes, rs)
	}
	c.signalLocked()
	return nil
}

// connect marks the client connected with all remotes bound.
func (c *fakeClient) connect() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.state.Status, c.state.Err, c.state.ConnectedAt = tunnel.StatusConnected, nil, c.h.clock()
	for i := range c.state.Remotes {
		c.bind(&c.state.Remotes[i])
	}
	c.signalLocked()
}

// bind binds rs, or refuses it when the harness says so.
func (c *fakeClient) bind(rs *tunnel.RemoteState) {
	rs.Status = tunnel.RemoteBound
	if c.h.refuse != nil {
		if code := c.h.refuse(rs.Remote.RelayPort); code != "" {
			rs.Status, rs.Code, rs.Reason = tunnel.RemoteRefused, code, "refused by test"
		}
	}
}

func (c *fakeClient) disconnect(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.state.Status, c.state.Err = tunnel.StatusDisconnected, err
	for i := range c.state.Remotes {
		c.state.Remotes[i].Status = tunnel.RemotePending
	}
	c.signalLocked()
}

func (c *fakeClient) Run(ctx context.Context) error {
	c.mu.Lock()
	c.runs++
	n := c.runs
	c.ctxs = append(c.ctxs, ctx)
	c.mu.Unlock()
	c.h.mu.Lock()
	fn := c.h.runFn
	c.h.running++
	c.h.events = append(c.h.events, "run")
	c.h.mu.Unlock()
	var err error
	if fn != nil {
		err = fn(c, n, ctx)
	} else {
		c.connect()
		<-ctx.Done()
	}
	c.disconnect(err)
	c.mu.Lock()
	c.ended++
	c.mu.Unlock()
	c.h.mu.Lock()
	c.h.running--
	c.h.mu.Unlock()
	return err
}

// harness records what the runner does.
type harness struct {
	mu         sync.Mutex
	cfg        *AgentConfig
	fetchErr   error
	fetches    int
	clients    []*fakeClient
	factoryErr func(n int) error
	runFn      func(c *fakeClient, n int, ctx context.Context) error
	refuse     func(port int) string // refusal code for a bound remote, "" for none
	running    int
	overlap    int // clients created while another was still running
	sleeps     []time.Duration
	blockSleep bool
	onSleep    func(n int)
	events     []string // "fetch", "sleep", "run" in order
	now        time.Time
	logs       recLog
}

func (h *harness) fetch(ctx context.Context) (*AgentConfig, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fetches++
	h.events = append(h.events, "fetch")
	if h.fetchErr != nil {
		return nil, h.fetchErr
	}
	c := *h.cfg
	c.Tunnels = slices.Clone(h.cfg.Tunnels)
	return &c, nil
}

func (h *harness) setConfig(c *AgentConfig) {
	h.mu.Lock()
	h.cfg = c
	h.mu.Unlock()
}

func (h *harness) newClient(key TunnelServer) (TunnelClient, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.factoryErr != nil {
		if err := h.factoryErr(len(h.clients)); err != nil {
			h.clients = append(h.clients, nil)
			return nil, err
		}
	}
	if h.running > 0 {
		h.overlap++
	}
	c := &fakeClient{h: h, key: key, n: len(h.clients), changed: make(chan struct{})}
	h.clients = append(h.clients, c)
	return c, nil
}

func (h *harness) sleep(ctx context.Context, d time.Duration) error {
	h.mu.Lock()
	h.sleeps = append(h.sleeps, d)
	h.events = append(h.events, "sleep")
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

func (h *harness) client(i int) *fakeClient {
	h.mu.Lock()
	defer h.mu.Unlock()
	if i >= len(h.clients) {
		return nil
	}
	return h.clients[i]
}

// bound reports whether client i exists and has all n of its remotes bound
// (AllBound alone holds for a connected client before the runner has given
// it any remotes).
func (h *harness) bound(i, n int) bool {
	c := h.client(i)
	if c == nil {
		return false
	}
	st := c.State()
	return st.AllBound() && len(st.Remotes) == n
}

func (h *harness) numClients() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

func (h *harness) fetchCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.fetches
}

func (h *harness) config(poll time.Duration) RunnerConfig {
	return RunnerConfig{
		Fetch: h.fetch, NewClient: h.newClient,
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

// recLog is a slog.Handler that keeps every record.
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
			t.Errorf("%d connection goroutines left after Run returned", n)
		}
	})
	return cancelFn, ch
}

func (c *fakeClient) lastSet() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.sets) == 0 {
		return nil
	}
	return c.sets[len(c.sets)-1]
}

func (c *fakeClient) counts() (runs, ended, sets int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runs, c.ended, len(c.sets)
}

// TestRunnerOneConnectionForAllTunnels: all tunnels of the agent go over
// one client; adding and removing tunnels changes its remotes live and
// never restarts it.
func TestRunnerOneConnectionForAllTunnels(t *testing.T) {
	h := &harness{cfg: testConfig(20001, 20002, 20003)}
	r := h.runner(t, 5*time.Millisecond)
	startRunner(t, r)
	waitFor(t, "the client", func() bool { return h.bound(0, 3) })
	c := h.client(0)
	if got := c.lastSet(); !slices.Equal(got, []string{remoteOf(20001, 0), remoteOf(20002, 1), remoteOf(20003, 2)}) {
		t.Fatalf("remotes = %v", got)
	}
	if c.key != (TunnelServer{"https://tunnel.example.com:443", "home:secret", testFP}) {
		t.Fatalf("key = %+v", c.key)
	}
	h.setConfig(testConfig(20001, 20002, 20003, 20004))
	waitFor(t, "the added tunnel", func() bool { return len(c.lastSet()) == 4 })
	cfg := testConfig(20001, 20002, 20003, 20004)
	cfg.Tunnels = slices.Delete(cfg.Tunnels, 1, 2)
	h.setConfig(cfg)
	waitFor(t, "the removed tunnel", func() bool { return len(c.lastSet()) == 3 })
	f0 := h.fetchCount()
	waitFor(t, "more polls", func() bool { return h.fetchCount() >= f0+5 })
	if runs, ended, _ := c.counts(); runs != 1 || ended != 0 || h.numClients() != 1 {
		t.Fatalf("runs %d ended %d clients %d; want one client running once", runs, ended, h.numClients())
	}
	if got := c.lastSet(); !slices.Equal(got, []string{remoteOf(20001, 0), remoteOf(20003, 2), remoteOf(20004, 3)}) {
		t.Fatalf("remotes = %v", got)
	}
	changes := h.logs.find("tunnel configuration changed")
	if len(changes) != 2 || changes[0].attrs["added"] != "t20004.example.com" || changes[1].attrs["removed"] != "t20002.example.com" {
		t.Fatalf("config change logs = %v", changes)
	}
	if up := h.logs.find("tunnel up"); len(up) != 4 || up[0].attrs["to"] != "127.0.0.1:8000" {
		t.Fatalf("tunnel up logs = %v", up)
	}
	st := r.State()
	if st.Connection != TunnelConnected || len(st.Tunnels) != 3 || st.Tunnels[1].State != TunnelConnected || st.Tunnels[1].FQDN != "t20003.example.com" {
		t.Fatalf("state = %+v", st)
	}
}

func TestRunnerServerSettingsChangeReplacesClient(t *testing.T) {
	for name, change := range map[string]func(*AgentConfig){
		"credentials": func(c *AgentConfig) { c.Auth = "home:rotated" },
		"fingerprint": func(c *AgentConfig) { c.Fingerprint = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" },
		"server":      func(c *AgentConfig) { c.ChiselServerURL = "https://tunnel.example.net" },
	} {
		t.Run(name, func(t *testing.T) {
			h := &harness{cfg: testConfig(20001, 20002)}
			startRunner(t, h.runner(t, 5*time.Millisecond))
			waitFor(t, "the first client", func() bool { return h.bound(0, 2) })
			c := testConfig(20001, 20002)
			change(c)
			h.setConfig(c)
			waitFor(t, "the new client", func() bool { return h.bound(1, 2) })
			if _, ended, _ := h.client(0).counts(); ended != 1 {
				t.Fatal("old client still running")
			}
			nc := h.client(1)
			if nc.key != (TunnelServer{c.ChiselServerURL, c.Auth, c.Fingerprint}) || len(nc.lastSet()) != 2 {
				t.Fatalf("new client: %+v %v", nc.key, nc.lastSet())
			}
			if h.overlap != 0 {
				t.Fatal("the new client was created before the old one had stopped")
			}
			if got := h.logs.find("tunnel server settings changed; reconnecting"); len(got) != 1 || got[0].attrs["changed"] != name {
				t.Fatalf("settings change logs = %v", got)
			}
			h.logs.mustNotContain(t, "secret")
			h.logs.mustNotContain(t, "rotated")
		})
	}
}

func refusedErr() error {
	return &tunnel.Error{Kind: tunnel.KindRefused, HTTPStatus: 400, Reason: "client certificate refused"}
}
func lostErr() error { return &tunnel.Error{Kind: tunnel.KindLost, Reason: "connection ended"} }
func unreachErr() error {
	return &tunnel.Error{Kind: tunnel.KindUnreachable, Reason: "connection refused"}
}
func unverifErr() error {
	return &tunnel.Error{Kind: tunnel.KindUnverified, Reason: "fingerprint mismatch"}
}
func failing(err error) func(*fakeClient, int, context.Context) error {
	return func(*fakeClient, int, context.Context) error { return err }
}

// TestRunnerRefusedRefetchesThenBacksOff: a refused connection first gets
// a fresh agent-config, then waits, with the backoff growing.
func TestRunnerRefusedRefetchesThenBacksOff(t *testing.T) {
	h := &harness{cfg: testConfig(20001), runFn: failing(refusedErr())}
	var cancel context.CancelFunc
	h.onSleep = func(n int) {
		if n == 4 {
			cancel()
		}
	}
	r := h.runner(t, time.Hour)
	ctx, c := context.WithCancel(context.Background())
	cancel = c
	_ = r.Run(ctx)
	h.mu.Lock()
	defer h.mu.Unlock()
	if !slices.Equal(h.sleeps, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}) {
		t.Fatalf("sleeps = %v", h.sleeps)
	}
	// Every attempt: run, then a fetch, then the sleep.
	want := []string{"fetch", "run", "fetch", "sleep", "run", "fetch", "sleep", "run", "fetch", "sleep", "run", "fetch", "sleep"}
	if !slices.Equal(h.events, want) {
		t.Fatalf("events = %v, want %v", h.events, want)
	}
	if got := h.logs.find("tunnel connection refused"); len(got) != 4 || !strings.Contains(got[0].attrs["reason"], "client certificate refused") {
		t.Fatalf("logs = %v", got)
	}
}

// TestRunnerUnverifiedStops: a relay that does not verify is not retried
// until agent-config changes the relay key; then the new key connects.
func TestRunnerUnverifiedStops(t *testing.T) {
	h := &harness{cfg: testConfig(20001)}
	h.runFn = func(c *fakeClient, n int, ctx context.Context) error {
		if c.n == 0 {
			return unverifErr()
		}
		c.connect()
		<-ctx.Done()
		return nil
	}
	r := h.runner(t, 5*time.Millisecond)
	startRunner(t, r)
	waitFor(t, "the unverified state", func() bool { return r.State().Connection == TunnelUnverified })
	f0 := h.fetchCount()
	waitFor(t, "more polls", func() bool { return h.fetchCount() >= f0+5 })
	if runs, _, _ := h.client(0).counts(); runs != 1 || h.numClients() != 1 || len(h.sleeps) != 0 {
		t.Fatalf("unverified relay retried: runs %d, clients %d, sleeps %v", runs, h.numClients(), h.sleeps)
	}
	st := r.State()
	if st.Tunnels[0].State != TunnelUnverified || !strings.Contains(st.Tunnels[0].Reason, "fingerprint mismatch") {
		t.Fatalf("state = %+v", st)
	}
	if l := h.logs.find("the relay's tunnel server could not be verified; not connecting until agent-config brings a new fingerprint or server. Check with the relay's administrator."); len(l) != 1 || l[0].level != slog.LevelError {
		t.Fatalf("logs = %v", l)
	}
	c := testConfig(20001)
	c.Fingerprint = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	h.setConfig(c)
	waitFor(t, "a new client for the new fingerprint", func() bool { return h.bound(1, 1) })
	waitFor(t, "connected state", func() bool { return r.State().Connection == TunnelConnected })
}

func TestRunnerBackoff(t *testing.T) {
	for name, err := range map[string]error{"unreachable": unreachErr(), "lost": lostErr()} {
		t.Run(name, func(t *testing.T) {
			const attempts = 9
			h := &harness{cfg: testConfig(20001)}
			h.runFn = func(c *fakeClient, n int, ctx context.Context) error {
				if n >= attempts {
					c.connect()
					<-ctx.Done()
					return nil
				}
				return err
			}
			r := h.runner(t, time.Hour)
			startRunner(t, r)
			waitFor(t, "the client to get through", func() bool { return r.State().Connection == TunnelConnected })
			h.mu.Lock()
			sleeps, events := slices.Clone(h.sleeps), slices.Clone(h.events)
			h.mu.Unlock()
			want := []time.Duration{1, 2, 4, 8, 16, 30, 30, 30}
			for i := range want {
				want[i] *= time.Second
			}
			if !slices.Equal(sleeps, want) {
				t.Fatalf("sleeps = %v, want %v", sleeps, want)
			}
			// A fresh agent-config before every reconnect.
			for i, e := range events {
				if e == "run" && i > 1 && !slices.Contains(events[:i], "fetch") {
					t.Fatalf("events = %v", events)
				}
			}
			runs := 0
			for i, e := range events {
				if e != "run" {
					continue
				}
				runs++
				if runs > 1 && events[i-1] != "fetch" && events[i-1] != "sleep" {
					t.Fatalf("attempt %d without a sleep and refetch before it: %v", runs, events)
				}
			}
			if l := h.logs.find("tunnel connection down"); len(l) != attempts-1 || l[0].attrs["retryIn"] != "1s" {
				t.Fatalf("logs = %v", l)
			}
		})
	}
}

func TestRunnerBackoffResetsAfterHealthySession(t *testing.T) {
	h := &harness{cfg: testConfig(20001), now: time.Unix(1_000_000, 0)}
	h.runFn = func(c *fakeClient, n int, ctx context.Context) error {
		if n == 4 {
			c.connect() // this session comes up and stays two minutes
			h.mu.Lock()
			h.now = h.now.Add(2 * time.Minute)
			h.mu.Unlock()
			return lostErr()
		}
		return unreachErr()
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
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range want {
		if i >= len(h.sleeps) || h.sleeps[i] != want[i]*time.Second {
			t.Fatalf("sleeps = %v, want %v seconds", h.sleeps, want)
		}
	}
}

func TestRunnerIdleWithoutTunnels(t *testing.T) {
	h := &harness{cfg: testConfig()}
	r := h.runner(t, 5*time.Millisecond)
	startRunner(t, r)
	waitFor(t, "polls while idle", func() bool { return h.fetchCount() >= 5 })
	if h.numClients() != 0 || len(h.sleeps) != 0 {
		t.Fatalf("idle runner created %d clients, slept %v", h.numClients(), h.sleeps)
	}
	if got := h.logs.find("no enabled tunnels for this agent; not connecting, checking again periodically"); len(got) != 1 {
		t.Fatalf("idle logged %d times, want once", len(got))
	}
	h.setConfig(testConfig(20005))
	waitFor(t, "a client after a tunnel appears", func() bool { return h.bound(0, 1) })
	// All tunnels gone again: the connection stops.
	h.setConfig(testConfig())
	waitFor(t, "the connection to stop", func() bool { _, ended, _ := h.client(0).counts(); return ended == 1 })
}

func TestRunnerFetchFailureBacksOffAndKeepsConnection(t *testing.T) {
	h := &harness{cfg: testConfig(20001), fetchErr: errors.New("relay down")}
	h.onSleep = func(n int) {
		if n == 3 {
			h.mu.Lock()
			h.fetchErr = nil
			h.mu.Unlock()
		}
	}
	startRunner(t, h.runner(t, 5*time.Millisecond))
	waitFor(t, "client", func() bool { return h.bound(0, 1) })
	h.mu.Lock()
	s := slices.Clone(h.sleeps)
	h.fetchErr = errors.New("panel restarting")
	h.mu.Unlock()
	if !slices.Equal(s, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}) {
		t.Fatalf("sleeps = %v", s)
	}
	f0 := h.fetchCount()
	waitFor(t, "failed polls", func() bool { return h.fetchCount() >= f0+3 })
	if runs, ended, _ := h.client(0).counts(); runs != 1 || ended != 0 {
		t.Fatal("a failed poll dropped the running connection")
	}
}

func TestRunnerCancelStopsEverything(t *testing.T) {
	h := &harness{cfg: testConfig(20001, 20002)}
	r := h.runner(t, 5*time.Millisecond)
	cancel, done := startRunner(t, r)
	waitFor(t, "connected", func() bool { return h.bound(0, 2) })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil after cancel", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Run did not return promptly after cancel")
	}
	if _, ended, _ := h.client(0).counts(); ended != 1 || r.workers.Load() != 0 {
		t.Fatalf("client not stopped (ended %d, workers %d)", ended, r.workers.Load())
	}
}

func TestNewRunnerRequiresFuncs(t *testing.T) {
	if _, err := NewRunner(RunnerConfig{}); err == nil {
		t.Fatal("NewRunner accepted an empty config")
	}
}

func TestRunnerFactoryErrorIsRetried(t *testing.T) {
	h := &harness{cfg: testConfig(20001)}
	h.factoryErr = func(n int) error {
		if n < 2 {
			return errors.New("no client certificate")
		}
		return nil
	}
	startRunner(t, h.runner(t, 5*time.Millisecond))
	waitFor(t, "a client after factory errors", func() bool { return h.bound(2, 1) })
	l := h.logs.find("could not set up the tunnel client; trying again at the next check")
	if len(l) != 2 || !strings.Contains(l[0].attrs["error"], "no client certificate") {
		t.Fatalf("logs = %v", l)
	}
}

// TestRunnerRefusedTunnelRefetches: when the relay refuses one tunnel, the
// runner fetches agent-config at once (once) and applies it; the other
// tunnels stay up.
func TestRunnerRefusedTunnelRefetches(t *testing.T) {
	h := &harness{cfg: testConfig(20001, 20002)}
	h.refuse = func(port int) string {
		if port == 20002 {
			return tunnel.CodeDenied
		}
		return ""
	}
	r := h.runner(t, time.Hour)
	startRunner(t, r)
	waitFor(t, "the refusal's refetch", func() bool { return h.fetchCount() >= 2 })
	// The relay dropped the tunnel from agent-config meanwhile.
	waitFor(t, "state", func() bool {
		st := r.State()
		return len(st.Tunnels) == 2 && st.Tunnels[1].State == TunnelRefused
	})
	st := r.State()
	if st.Tunnels[0].State != TunnelConnected || st.Tunnels[1].Reason != "refused by test" {
		t.Fatalf("state = %+v", st)
	}
	time.Sleep(20 * time.Millisecond)
	if n := h.fetchCount(); n != 2 {
		t.Fatalf("%d fetches; a repeated refusal must wait for the next poll", n)
	}
	if runs, _, _ := h.client(0).counts(); runs != 1 {
		t.Fatal("the connection was restarted")
	}
	if l := h.logs.find("tunnel refused by the relay"); len(l) == 0 || l[0].attrs["fqdn"] != "t20002.example.com" {
		t.Fatalf("logs = %v", l)
	}
}

func TestRunnerStateFile(t *testing.T) {
	h := &harness{cfg: testConfig(20001, 20002)}
	cfg := h.config(5 * time.Millisecond)
	cfg.StateFile = filepath.Join(t.TempDir(), "tunnels-state.json")
	r, err := NewRunner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	startRunner(t, r)
	waitFor(t, "connected", func() bool { return r.State().Connection == TunnelConnected })
	var st *RunnerState
	waitFor(t, "the state file", func() bool {
		s, running, err := ReadTunnelState(cfg.StateFile)
		st = s
		return err == nil && running && s != nil && s.Connection == TunnelConnected && len(s.Tunnels) == 2
	})
	if st.Server != "https://tunnel.example.com:443" || st.Tunnels[0].Local != "127.0.0.1:8000" || st.Tunnels[1].RelayPort != 20002 {
		t.Fatalf("state file = %+v", st)
	}
	if s, running, err := ReadTunnelState(filepath.Join(t.TempDir(), "none.json")); s != nil || running || err != nil {
		t.Fatalf("missing state file: %v %v %v", s, running, err)
	}
}
