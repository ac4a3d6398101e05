package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portlama/portlama/internal/store"
	"github.com/portlama/portlama/internal/tunnel"
)

// TunnelClient is the agent's connection to one relay: one session that
// carries all of the agent's tunnels (*tunnel.Client).
type TunnelClient interface {
	// SetRemotes changes the set of remotes live, leaving the others alone.
	SetRemotes(ctx context.Context, remotes []string) error
	// Run connects and serves until ctx ends (nil) or the session is lost
	// (a *tunnel.Error).
	Run(ctx context.Context) error
	State() tunnel.ClientState
	Changed() <-chan struct{}
}

// TunnelServer is what identifies a connection: the tunnel endpoint, the
// credential and the pinned key. When it changes the connection is
// replaced.
type TunnelServer struct {
	URL         string
	Auth        string
	Fingerprint string
}

// TunnelFactory builds the client of a relay.
type TunnelFactory func(s TunnelServer) (TunnelClient, error)

// ConfigFetcher returns the current agent-config.
type ConfigFetcher func(ctx context.Context) (*AgentConfig, error)

// RunnerConfig configures a Runner. Zero durations take the defaults.
type RunnerConfig struct {
	// Fetch loads agent-config (required).
	Fetch ConfigFetcher
	// NewClient builds tunnel clients (required).
	NewClient TunnelFactory
	// PollInterval is how often agent-config is polled (default 10 s).
	PollInterval time.Duration
	// MinBackoff is the first reconnect delay (default 1 s).
	MinBackoff time.Duration
	// MaxBackoff caps the reconnect delay (default 30 s).
	MaxBackoff time.Duration
	// HealthyAfter is how long a session must stay up for the backoff to
	// start again at MinBackoff (default 60 s).
	HealthyAfter time.Duration
	// Sleep waits d or until ctx ends (default: a timer); the runner uses
	// it for every backoff delay, tests inject it. The poll interval is a
	// real timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock (default time.Now).
	Now func() time.Time
	// StateFile, when set, receives the live tunnel state (RunnerState as
	// JSON, 0600) on every change, for `portlama-agent status`.
	StateFile string
	// Logger receives plain progress logs (nil: discard).
	Logger *slog.Logger
}

// Tunnel states in RunnerState.
const (
	TunnelConnected    = "connected"
	TunnelConnecting   = "connecting"
	TunnelReconnecting = "reconnecting"
	TunnelRefused      = "refused"
	TunnelUnverified   = "unverified"
)

// RunnerState is what the runner reports about the agent's tunnels.
type RunnerState struct {
	PID       int       `json:"pid"`
	UpdatedAt time.Time `json:"updatedAt"`
	Server    string    `json:"server,omitempty"`
	// Connection is "connected", "connecting", "reconnecting" or
	// "unverified" (not reconnecting until the configuration changes).
	Connection string        `json:"connection"`
	Error      string        `json:"error,omitempty"`
	Tunnels    []TunnelState `json:"tunnels"`
}

// TunnelState is one enabled tunnel.
type TunnelState struct {
	FQDN      string `json:"fqdn"`
	RelayPort int    `json:"relayPort"`
	Local     string `json:"local"`
	// State is one of the Tunnel* constants.
	State  string    `json:"state"`
	Reason string    `json:"reason,omitempty"`
	Since  time.Time `json:"since"`
}

// Runner keeps an agent's tunnels connected: one tunnel client per relay
// (server URL, credential, fingerprint), its remotes set from agent-config.
type Runner struct {
	cfg RunnerConfig
	log *slog.Logger

	workers atomic.Int64 // running connection goroutines (checked by tests)

	mu    sync.Mutex
	state RunnerState
}

// NewRunner checks cfg and applies defaults.
func NewRunner(cfg RunnerConfig) (*Runner, error) {
	if cfg.Fetch == nil || cfg.NewClient == nil {
		return nil, errors.New("runner: Fetch and NewClient are required")
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 10 * time.Second
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = cfg.MinBackoff
	}
	if cfg.HealthyAfter <= 0 {
		cfg.HealthyAfter = time.Minute
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleepCtx
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Runner{cfg: cfg, log: log, state: RunnerState{PID: os.Getpid(), Tunnels: []TunnelState{}}}, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// backoff is a capped exponential delay.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur < b.min {
		b.cur = b.min
	}
	d := b.cur
	b.cur *= 2
	if b.cur > b.max {
		b.cur = b.max
	}
	return d
}

func (b *backoff) reset() { b.cur = b.min }

// changes names the fields that differ, for logs (never the values: auth
// is a credential).
func (k TunnelServer) changes(o TunnelServer) []string {
	var out []string
	if k.URL != o.URL {
		out = append(out, "server")
	}
	if k.Auth != o.Auth {
		out = append(out, "credentials")
	}
	if k.Fingerprint != o.Fingerprint {
		out = append(out, "fingerprint")
	}
	return out
}

// tunnelName is how logs name a tunnel: its fqdn, else its relay port.
func tunnelName(t AgentTunnel) string {
	if t.FQDN != "" {
		return t.FQDN
	}
	return "relay port " + strconv.Itoa(t.RelayPort)
}

// conn is the running connection to one relay.
type conn struct {
	key    TunnelServer
	client TunnelClient
	cancel context.CancelFunc
	done   chan struct{}
}

// supervisor is the state of one Run. Only the poll loop touches conn,
// tunnels, invalid, haveCfg and idle; mu guards waiters and the fields the
// connection goroutines share.
type supervisor struct {
	r       *Runner
	ctx     context.Context
	haveCfg bool
	idle    bool
	conn    *conn

	kick    chan struct{} // capacity 1: "fetch now"
	mu      sync.Mutex
	waiters chan struct{} // closed once a fetch started after the request is done
	tunnels []AgentTunnel // current agent-config tunnels
	invalid map[int]string
	// kicked: refused remotes that already caused an immediate refetch;
	// a second refusal waits for the next poll.
	kicked map[int]bool
}

// Run keeps the tunnels connected until ctx is cancelled; it returns nil
// then, after the connection has stopped.
func (r *Runner) Run(ctx context.Context) error {
	s := &supervisor{r: r, ctx: ctx, kick: make(chan struct{}, 1), kicked: map[int]bool{}}
	defer s.stopConn()

	fetchBo := &backoff{min: r.cfg.MinBackoff, max: r.cfg.MaxBackoff}
	fetchBo.reset()
	poll := time.NewTimer(r.cfg.PollInterval)
	defer poll.Stop()
	for {
		if ctx.Err() != nil {
			return nil
		}
		waiters := s.takeWaiters()
		cfg, err := r.cfg.Fetch(ctx)
		switch {
		case ctx.Err() != nil:
			closeIf(waiters)
			return nil
		case err != nil && !s.haveCfg:
			// Nothing to run yet: retry with backoff.
			closeIf(waiters)
			d := fetchBo.next()
			r.log.Warn("could not fetch agent-config", "error", err, "retryIn", d.String())
			if r.cfg.Sleep(ctx, d) != nil {
				return nil
			}
			continue
		case err != nil:
			r.log.Warn("could not refresh agent-config; keeping the current tunnels", "error", err)
		default:
			fetchBo.reset()
			s.reconcile(cfg)
		}
		closeIf(waiters)

		poll.Reset(r.cfg.PollInterval)
		select {
		case <-ctx.Done():
			return nil
		case <-poll.C:
		case <-s.kick:
		}
	}
}

func closeIf(ch chan struct{}) {
	if ch != nil {
		close(ch)
	}
}

// takeWaiters hands the pending refetch requests to the fetch that starts
// now.
func (s *supervisor) takeWaiters() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.waiters
	s.waiters = nil
	return w
}

// requestFetch asks the poll loop to fetch agent-config now. The returned
// channel is closed once a fetch that started after the request is done
// and its result applied.
func (s *supervisor) requestFetch() <-chan struct{} {
	s.mu.Lock()
	if s.waiters == nil {
		s.waiters = make(chan struct{})
	}
	w := s.waiters
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return w
}

// reconcile makes the connection match cfg: a new or changed relay key
// replaces the connection, the remotes are set live (tunnels that stay
// are not touched), and no tunnels means no connection.
func (s *supervisor) reconcile(cfg *AgentConfig) {
	r := s.r
	key := TunnelServer{cfg.ChiselServerURL, cfg.Auth, cfg.Fingerprint}
	s.mu.Lock()
	old := s.tunnels
	s.tunnels = slices.Clone(cfg.Tunnels)
	s.mu.Unlock()
	if s.haveCfg {
		logConfigChange(r.log, old, cfg.Tunnels)
	}
	s.haveCfg = true

	if s.conn != nil && s.conn.key != key {
		if len(cfg.Tunnels) > 0 {
			r.log.Info("tunnel server settings changed; reconnecting", "changed", strings.Join(key.changes(s.conn.key), ", "), "tunnels", len(cfg.Tunnels))
		}
		s.stopConn()
	}
	if len(cfg.Tunnels) == 0 {
		s.stopConn()
		if !s.idle {
			r.log.Info("no enabled tunnels for this agent; not connecting, checking again periodically", "every", r.cfg.PollInterval.String())
			s.idle = true
		}
		s.publish()
		return
	}
	s.idle = false
	var remotes []string
	invalid := map[int]string{}
	for _, t := range cfg.Tunnels {
		rem := t.Remote()
		if _, err := tunnel.ParseRemote(rem); err != nil {
			invalid[t.RelayPort] = err.Error()
			r.log.Warn("tunnel skipped: its configuration cannot be tunnelled", "fqdn", tunnelName(t), "reason", err.Error())
			continue
		}
		remotes = append(remotes, rem)
	}
	s.mu.Lock()
	s.invalid = invalid
	s.mu.Unlock()
	if s.conn == nil {
		c, err := r.cfg.NewClient(key)
		if err != nil {
			r.log.Warn("could not set up the tunnel client; trying again at the next check", "error", err)
			s.publish()
			return
		}
		s.startConn(key, c)
	}
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	if err := s.conn.client.SetRemotes(ctx, remotes); err != nil {
		r.log.Warn("could not apply the tunnel configuration", "error", err)
	}
	s.publish()
}

func logConfigChange(log *slog.Logger, old, cur []AgentTunnel) {
	in := func(ts []AgentTunnel, t AgentTunnel) bool {
		return slices.ContainsFunc(ts, func(x AgentTunnel) bool { return x.Remote() == t.Remote() })
	}
	var added, removed []string
	for _, t := range cur {
		if !in(old, t) {
			added = append(added, tunnelName(t))
		}
	}
	for _, t := range old {
		if !in(cur, t) {
			removed = append(removed, tunnelName(t))
		}
	}
	if len(added) > 0 || len(removed) > 0 {
		log.Info("tunnel configuration changed", "added", strings.Join(added, ", "), "removed", strings.Join(removed, ", "))
	}
}

func (s *supervisor) startConn(key TunnelServer, c TunnelClient) {
	ctx, cancel := context.WithCancel(s.ctx)
	w := &conn{key: key, client: c, cancel: cancel, done: make(chan struct{})}
	s.conn = w
	s.r.workers.Add(2)
	watched := make(chan struct{})
	go func() {
		s.watch(ctx, w)
		s.r.workers.Add(-1)
		close(watched)
	}()
	go func() {
		s.keepUp(ctx, w)
		cancel()
		<-watched
		s.r.workers.Add(-1)
		close(w.done) // last: stopConn returns once everything has ended
	}()
}

// stopConn cancels the connection and waits until it has stopped.
func (s *supervisor) stopConn() {
	if s.conn == nil {
		return
	}
	s.conn.cancel()
	<-s.conn.done
	s.conn = nil
}

// keepUp runs the connection until ctx ends, acting on how each session
// ended: refused → refetch agent-config, then back off; unverified → stop
// and say so (a new relay key in agent-config starts a new connection);
// unreachable or lost → back off (capped exponential), refetch, retry.
func (s *supervisor) keepUp(ctx context.Context, w *conn) {
	r := s.r
	bo := &backoff{min: r.cfg.MinBackoff, max: r.cfg.MaxBackoff}
	bo.reset()
	for ctx.Err() == nil {
		uptime, err := s.attempt(ctx, w)
		if ctx.Err() != nil {
			return
		}
		if uptime >= r.cfg.HealthyAfter {
			bo.reset()
		}
		switch {
		case errors.Is(err, tunnel.ErrUnverified):
			r.log.Error("the relay's tunnel server could not be verified; not connecting until agent-config brings a new fingerprint or server. Check with the relay's administrator.", "reason", errText(err))
			s.requestFetch()
			<-ctx.Done()
			return
		case errors.Is(err, tunnel.ErrRefused):
			d := bo.next()
			r.log.Warn("tunnel connection refused", "reason", errText(err), "retryIn", d.String())
			if !s.waitFetch(ctx) || r.cfg.Sleep(ctx, d) != nil {
				return
			}
		default:
			d := bo.next()
			r.log.Warn("tunnel connection down", "reason", errText(err), "uptime", uptime.Round(time.Second).String(), "retryIn", d.String())
			fetched := s.requestFetch()
			if r.cfg.Sleep(ctx, d) != nil {
				return
			}
			select {
			case <-fetched:
			case <-ctx.Done():
				return
			}
		}
	}
}

// attempt runs the client once and returns how it ended and how long it
// was connected.
func (s *supervisor) attempt(ctx context.Context, w *conn) (time.Duration, error) {
	start := s.r.cfg.Now()
	err := w.client.Run(ctx)
	st := w.client.State()
	if st.ConnectedAt.IsZero() || st.ConnectedAt.Before(start) {
		return 0, err
	}
	return s.r.cfg.Now().Sub(st.ConnectedAt), err
}

func (s *supervisor) waitFetch(ctx context.Context) bool {
	select {
	case <-s.requestFetch():
		return ctx.Err() == nil
	case <-ctx.Done():
		return false
	}
}

func errText(err error) string {
	if err == nil {
		return "closed by the server"
	}
	return err.Error()
}

// watch follows the client's state: it logs each tunnel's changes, asks
// for a refetch when the relay refuses or drops a tunnel, and publishes
// the state for `portlama-agent status`.
func (s *supervisor) watch(ctx context.Context, w *conn) {
	prev := map[int]tunnel.RemoteState{}
	prevStatus := tunnel.StatusDisconnected
	for {
		ch := w.client.Changed()
		st := w.client.State()
		s.observe(st, prev, prevStatus)
		prevStatus = st.Status
		s.publishState(w.key, st)
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

func (s *supervisor) observe(st tunnel.ClientState, prev map[int]tunnel.RemoteState, prevStatus tunnel.ConnStatus) {
	log := s.r.log
	s.mu.Lock()
	byPort := map[int]AgentTunnel{}
	for _, t := range s.tunnels {
		byPort[t.RelayPort] = t
	}
	s.mu.Unlock()
	kick := false
	for _, rs := range st.Remotes {
		port := rs.Remote.RelayPort
		p, seen := prev[port]
		prev[port] = rs
		if seen && p.Status == rs.Status && p.Code == rs.Code {
			continue
		}
		t, ok := byPort[port]
		name := "relay port " + strconv.Itoa(port)
		if ok {
			name = tunnelName(t)
		}
		switch rs.Status {
		case tunnel.RemoteBound:
			log.Info("tunnel up", "fqdn", name, "to", targetOf(t, rs))
			s.mu.Lock()
			delete(s.kicked, port)
			s.mu.Unlock()
		case tunnel.RemoteRefused:
			log.Warn("tunnel refused by the relay", "fqdn", name, "reason", rs.Reason)
			s.mu.Lock()
			if !s.kicked[port] {
				s.kicked[port] = true
				kick = true
			}
			s.mu.Unlock()
		case tunnel.RemotePending:
			if seen && p.Status == tunnel.RemoteBound {
				log.Warn("tunnel down; reconnecting", "fqdn", name, "reason", errText(st.Err))
			}
		}
	}
	if st.Status == tunnel.StatusConnected && prevStatus != tunnel.StatusConnected {
		log.Debug("tunnel session connected", "tunnels", len(st.Remotes))
	}
	if kick {
		// A refusal usually means the relay's configuration moved on:
		// fetch it now; the next refusal of the same tunnel waits for the
		// next poll.
		s.requestFetch()
	}
}

func targetOf(t AgentTunnel, rs tunnel.RemoteState) string {
	if t.Port != 0 {
		return t.Local()
	}
	return rs.Remote.Target
}

// publish records the state without a client (idle, or not set up).
func (s *supervisor) publish() {
	if s.conn == nil {
		s.publishState(TunnelServer{}, tunnel.ClientState{Status: tunnel.StatusDisconnected})
	}
}

// publishState turns the client's state into RunnerState and writes the
// state file.
func (s *supervisor) publishState(key TunnelServer, st tunnel.ClientState) {
	r := s.r
	s.mu.Lock()
	tunnels, invalid := slices.Clone(s.tunnels), s.invalid
	s.mu.Unlock()
	rs := RunnerState{PID: os.Getpid(), UpdatedAt: r.cfg.Now().UTC(), Server: key.URL, Tunnels: []TunnelState{}}
	unverified := errors.Is(st.Err, tunnel.ErrUnverified)
	switch {
	case unverified:
		rs.Connection = TunnelUnverified
	case st.Status == tunnel.StatusConnected:
		rs.Connection = TunnelConnected
	case st.Err != nil:
		rs.Connection = TunnelReconnecting
	default:
		rs.Connection = TunnelConnecting
	}
	if st.Err != nil {
		rs.Error = st.Err.Error()
	}
	for _, t := range tunnels {
		ts := TunnelState{FQDN: t.FQDN, RelayPort: t.RelayPort, Local: t.Local(), State: rs.Connection, Reason: rs.Error, Since: st.Since}
		if reason, bad := invalid[t.RelayPort]; bad {
			ts.State, ts.Reason = TunnelRefused, reason
		} else if x, ok := st.Remote(t.RelayPort); ok && !unverified {
			switch {
			case x.Status == tunnel.RemoteBound && st.Status == tunnel.StatusConnected:
				ts.State, ts.Reason, ts.Since = TunnelConnected, "", x.Since
			case x.Status == tunnel.RemoteRefused:
				ts.State, ts.Reason, ts.Since = TunnelRefused, x.Reason, x.Since
			case st.Status == tunnel.StatusConnected:
				ts.State, ts.Reason = TunnelConnecting, ""
			}
		}
		rs.Tunnels = append(rs.Tunnels, ts)
	}
	r.mu.Lock()
	r.state = rs
	r.mu.Unlock()
	if r.cfg.StateFile != "" {
		data, err := store.Marshal(rs)
		if err == nil {
			err = store.WriteFileAtomic(r.cfg.StateFile, data, 0o600)
		}
		if err != nil {
			r.log.Debug("could not write the tunnel state file", "path", r.cfg.StateFile, "err", fmt.Sprint(err))
		}
	}
}

// State returns the tunnels' current state.
func (r *Runner) State() RunnerState {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.state
	st.Tunnels = slices.Clone(st.Tunnels)
	return st
}
