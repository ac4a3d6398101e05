package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// TunnelSession is one connection to the tunnel server. Run blocks until the
// session ends (server gone, refused, network loss) or ctx is cancelled, and
// does not retry on its own.
type TunnelSession interface {
	Run(ctx context.Context) error
}

// TunnelFactory builds a session for the given parameters.
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
	// Sleep waits d or until ctx ends (default: a timer); tests inject it.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives plain progress logs (nil: discard).
	Logger *slog.Logger
}

// Runner keeps an agent's tunnels connected.
type Runner struct {
	cfg RunnerConfig
	log *slog.Logger
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

// Run keeps the tunnels connected until ctx is cancelled; it returns nil then.
func (r *Runner) Run(ctx context.Context) error {
	bo := &backoff{min: r.cfg.MinBackoff, max: r.cfg.MaxBackoff}
	bo.reset()
	var (
		cfg *AgentConfig
		err error
	)
	idleLogged := false
	for {
		if ctx.Err() != nil {
			return nil
		}
		if cfg == nil {
			cfg, err = r.cfg.Fetch(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				d := bo.next()
				r.log.Warn("could not fetch agent-config", "error", err, "retryIn", d.String())
				if r.cfg.Sleep(ctx, d) != nil {
					return nil
				}
				continue
			}
		}
		sess := cfg.Session()
		if len(sess.Remotes) == 0 {
			if !idleLogged {
				r.log.Info("no enabled tunnels for this agent; not connecting, checking again periodically", "every", r.cfg.PollInterval.String())
				idleLogged = true
			}
			bo.reset()
			if r.cfg.Sleep(ctx, r.cfg.PollInterval) != nil {
				return nil
			}
			cfg = nil
			continue
		}
		idleLogged = false

		next, ended, uptime := r.session(ctx, sess)
		if ctx.Err() != nil {
			return nil
		}
		if next != nil {
			// Configuration changed: reconnect at once with the new one.
			cfg = next
			bo.reset()
			continue
		}
		if uptime >= r.cfg.HealthyAfter {
			bo.reset()
		}
		d := bo.next()
		r.log.Warn("tunnel session ended", "reason", errText(ended), "uptime", uptime.Round(time.Second).String(), "retryIn", d.String())
		if r.cfg.Sleep(ctx, d) != nil {
			return nil
		}
		cfg = nil // refetch before reconnecting
	}
}

func errText(err error) string {
	if err == nil {
		return "closed by the server"
	}
	return err.Error()
}

// session runs one tunnel session and polls agent-config meanwhile. It
// returns the new config when a change ended the session (next != nil), or
// the error the session ended with. uptime counts from the moment the
// session was established when the session reports it (Connected), else
// from its start.
func (r *Runner) session(ctx context.Context, sess Session) (next *AgentConfig, ended error, uptime time.Duration) {
	start := r.cfg.Now()
	ts, err := r.cfg.NewSession(sess)
	if err != nil {
		return nil, fmt.Errorf("set up tunnel client: %w", err), 0
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	r.log.Info("connecting to tunnel server", "server", sess.ServerURL, "tunnels", len(sess.Remotes))
	for _, t := range sess.Tunnels {
		r.log.Info("tunnel", "fqdn", t.FQDN, "to", t.Local(), "relayPort", t.RelayPort)
	}
	go func() { done <- ts.Run(sctx) }()
	var connected <-chan struct{}
	up := start // when the session counts as up
	if n, ok := ts.(interface{ Connected() <-chan struct{} }); ok {
		connected = n.Connected()
		up = time.Time{}
	}
	since := func() time.Duration {
		if up.IsZero() {
			return 0
		}
		return r.cfg.Now().Sub(up)
	}

	poll := time.NewTicker(r.cfg.PollInterval)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			cancel()
			<-done
			return nil, nil, since()
		case err := <-done:
			return nil, err, since()
		case <-connected:
			connected = nil
			up = r.cfg.Now()
			r.log.Info("connected; tunnels up", "server", sess.ServerURL, "tunnels", len(sess.Remotes))
		case <-poll.C:
			c, err := r.cfg.Fetch(ctx)
			if err != nil {
				if ctx.Err() == nil {
					r.log.Warn("could not refresh agent-config; keeping the current session", "error", err)
				}
				continue
			}
			if c.Session().Equal(sess) {
				continue
			}
			r.log.Info("tunnel configuration changed; reconnecting", "tunnels", len(c.Tunnels))
			cancel()
			<-done
			return c, nil, since()
		}
	}
}
