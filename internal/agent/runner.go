package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// TunnelSession is one connection to the tunnel server. Run blocks until the
// session ends (server gone, refused, network loss) or ctx is cancelled, and
// does not retry on its own. A session may also have a method
// Connected() <-chan struct{} returning a channel closed once the tunnel
// is up; the runner then counts uptime (for the backoff reset) and logs
// "tunnel up" from that moment.
type TunnelSession interface {
	Run(ctx context.Context) error
}

// TunnelFactory builds a session for the given parameters. The Runner
// passes one tunnel per session: Remotes and Tunnels hold exactly one
// element each (Tunnels[0].FQDN names it in logs).
type TunnelFactory func(s Session) (TunnelSession, error)

// ConfigFetcher returns the current agent-config.
type ConfigFetcher func(ctx context.Context) (*AgentConfig, error)

// RunnerConfig configures a Runner. Zero durations take the defaults.
type RunnerConfig struct {
	// Fetch loads agent-config (required).
	Fetch ConfigFetcher
	// NewSession builds tunnel sessions (required).
	NewSession TunnelFactory
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
	// Logger receives plain progress logs (nil: discard).
	Logger *slog.Logger
}

// Runner keeps an agent's tunnels connected, one tunnel session per tunnel.
type Runner struct {
	cfg RunnerConfig
	log *slog.Logger

	workers atomic.Int64 // running tunnel goroutines (checked by tests)
}

// NewRunner checks cfg and applies defaults.
func NewRunner(cfg RunnerConfig) (*Runner, error) {
	if cfg.Fetch == nil || cfg.NewSession == nil {
		return nil, errors.New("runner: Fetch and NewSession are required")
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
	return &Runner{cfg: cfg, log: log}, nil
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

// serverKey is what all sessions share; when it changes every session is
// restarted.
type serverKey struct {
	url, auth, fingerprint string
}

// changes names the fields that differ, for logs (never the values: auth
// is a credential).
func (k serverKey) changes(o serverKey) []string {
	var out []string
	if k.url != o.url {
		out = append(out, "server")
	}
	if k.auth != o.auth {
		out = append(out, "credentials")
	}
	if k.fingerprint != o.fingerprint {
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

// worker keeps one tunnel's session up.
type worker struct {
	remote string
	name   string
	local  string
	sess   Session
	cancel context.CancelFunc
	done   chan struct{}
}

// supervisor is the state of one Run: the workers by remote and the
// refetch requests of workers whose session ended. Only the poll loop
// touches workers, base and idle; mu guards waiters.
type supervisor struct {
	r       *Runner
	ctx     context.Context
	base    serverKey
	haveCfg bool
	idle    bool
	workers map[string]*worker

	kick    chan struct{} // capacity 1: "fetch now"
	mu      sync.Mutex
	waiters chan struct{} // closed once a fetch started after the request is done
}

// Run keeps the tunnels connected until ctx is cancelled; it returns nil
// then, after every tunnel session has stopped.
func (r *Runner) Run(ctx context.Context) error {
	s := &supervisor{r: r, ctx: ctx, workers: map[string]*worker{}, kick: make(chan struct{}, 1)}
	defer func() { s.stop(s.all()) }()

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
// and its result applied (workers of removed tunnels are cancelled by then).
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

func (s *supervisor) all() []*worker {
	out := make([]*worker, 0, len(s.workers))
	for _, w := range s.workers {
		out = append(out, w)
	}
	return out
}

// stop cancels the given workers, waits until their sessions have ended,
// and forgets them.
func (s *supervisor) stop(ws []*worker) {
	for _, w := range ws {
		w.cancel()
	}
	for _, w := range ws {
		<-w.done
		delete(s.workers, w.remote)
	}
}

// reconcile makes the running sessions match cfg: it starts a session for
// each new tunnel, stops the sessions of tunnels that are gone and leaves
// the others alone; a change of server, credentials or fingerprint
// restarts all of them.
func (s *supervisor) reconcile(cfg *AgentConfig) {
	base := serverKey{cfg.ChiselServerURL, cfg.Auth, cfg.Fingerprint}
	desired := make(map[string]bool, len(cfg.Tunnels))
	for _, t := range cfg.Tunnels {
		desired[t.Remote()] = true
	}

	var added, removed []string
	var gone []*worker
	for remote, w := range s.workers {
		if !desired[remote] {
			gone = append(gone, w)
			removed = append(removed, w.name)
		}
	}
	for _, t := range cfg.Tunnels {
		if s.workers[t.Remote()] == nil {
			added = append(added, tunnelName(t))
		}
	}
	restart := s.haveCfg && base != s.base
	if len(added) > 0 || len(removed) > 0 {
		s.r.log.Info("tunnel configuration changed", "added", strings.Join(added, ", "), "removed", strings.Join(removed, ", "))
	}
	if restart && len(s.workers) > len(gone) {
		s.r.log.Info("tunnel server settings changed; reconnecting every tunnel", "changed", strings.Join(base.changes(s.base), ", "), "tunnels", len(desired))
	}
	if restart {
		gone = s.all()
	}
	// Stop first and wait: a restarted tunnel's new session must not race
	// its old one for the relay port.
	s.stop(gone)
	s.base, s.haveCfg = base, true

	for _, t := range cfg.Tunnels {
		if s.workers[t.Remote()] == nil {
			s.start(t)
		}
	}
	if len(s.workers) == 0 {
		if !s.idle {
			s.r.log.Info("no enabled tunnels for this agent; not connecting, checking again periodically", "every", s.r.cfg.PollInterval.String())
			s.idle = true
		}
	} else {
		s.idle = false
	}
}

// start launches the worker of tunnel t.
func (s *supervisor) start(t AgentTunnel) {
	remote := t.Remote()
	ctx, cancel := context.WithCancel(s.ctx)
	w := &worker{
		remote: remote,
		name:   tunnelName(t),
		local:  t.Local(),
		sess: Session{
			ServerURL:   s.base.url,
			Auth:        s.base.auth,
			Fingerprint: s.base.fingerprint,
			Remotes:     []string{remote},
			Tunnels:     []AgentTunnel{t},
		},
		cancel: cancel,
		done:   make(chan struct{}),
	}
	s.workers[remote] = w
	s.r.workers.Add(1)
	go func() {
		s.keepUp(ctx, w)
		s.r.workers.Add(-1)
		close(w.done)
	}()
}

// keepUp runs w's session until ctx ends: after each session end it backs
// off, has agent-config refetched and reconnects unless the tunnel was
// removed meanwhile (the refetch then cancels ctx).
func (s *supervisor) keepUp(ctx context.Context, w *worker) {
	r := s.r
	bo := &backoff{min: r.cfg.MinBackoff, max: r.cfg.MaxBackoff}
	bo.reset()
	for ctx.Err() == nil {
		uptime, err := s.attempt(ctx, w)
		if ctx.Err() != nil {
			r.log.Debug("tunnel stopped", "fqdn", w.name)
			return
		}
		if uptime >= r.cfg.HealthyAfter {
			bo.reset()
		}
		d := bo.next()
		fetched := s.requestFetch()
		r.log.Warn("tunnel down", "fqdn", w.name, "reason", errText(err), "uptime", uptime.Round(time.Second).String(), "retryIn", d.String())
		if r.cfg.Sleep(ctx, d) != nil {
			return
		}
		select {
		case <-fetched:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			return // removed by the refetch, or Run ended
		}
	}
}

func errText(err error) string {
	if err == nil {
		return "closed by the server"
	}
	return err.Error()
}

// attempt runs one session of w. It returns the error the session ended
// with and its uptime, counted from the moment the session reported it was
// established (Connected) when it can, else from its start.
func (s *supervisor) attempt(ctx context.Context, w *worker) (time.Duration, error) {
	r := s.r
	ts, err := r.cfg.NewSession(w.sess)
	if err != nil {
		return 0, fmt.Errorf("set up tunnel client: %w", err)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	up := r.cfg.Now()
	var connected <-chan struct{}
	if n, ok := ts.(interface{ Connected() <-chan struct{} }); ok {
		connected = n.Connected()
		up = time.Time{}
	}
	r.log.Debug("connecting tunnel", "fqdn", w.name, "server", w.sess.ServerURL)
	go func() { done <- ts.Run(sctx) }()
	if connected == nil {
		r.log.Info("tunnel up", "fqdn", w.name, "to", w.local)
	}
	since := func() time.Duration {
		if up.IsZero() {
			return 0
		}
		return r.cfg.Now().Sub(up)
	}
	for {
		select {
		case <-ctx.Done():
			cancel()
			<-done
			return since(), nil
		case err := <-done:
			return since(), err
		case <-connected:
			connected = nil
			up = r.cfg.Now()
			r.log.Info("tunnel up", "fqdn", w.name, "to", w.local)
		}
	}
}
