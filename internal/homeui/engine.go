package homeui

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/portlama/portlama/internal/agent"
)

// engine runs the tunnel runner of the current agent server inside the UI
// process, so the UI shows live state without a separate service; it is
// restarted on a switch. When a `portlama-agent run` (the background
// service) already runs for that label, the engine leaves the tunnels to
// it and reads its state file instead.
type engine struct {
	home    agent.Home
	version string
	log     *slog.Logger
	poll    time.Duration

	mu     sync.Mutex
	label  string
	runner *agent.Runner
	cancel context.CancelFunc
	done   chan struct{}
}

// ensure runs the runner for label (stopping one for another label).
// label "" stops it.
func (e *engine) ensure(ctx context.Context, label string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.label == label && (label == "" || e.runner != nil) {
		return nil
	}
	e.stopLocked()
	e.label = label
	if label == "" {
		return nil
	}
	if st, running, _ := agent.ReadTunnelState(e.home.TunnelStatePath(label)); running && st.PID != os.Getpid() {
		e.log.Info("another portlama-agent run keeps these tunnels up; showing its state", "label", label)
		return nil
	}
	id, err := e.home.LoadIdentity(label)
	if err != nil {
		return err
	}
	tc, err := id.PanelTLSConfig()
	if err != nil {
		return err
	}
	r, err := agent.NewRunner(agent.RunnerConfig{
		Fetch:        agent.NewFetcher(agent.NewClient(id.Profile.PanelURL, tc)),
		NewClient:    agent.TunnelClientFactory(id, e.version, e.log.With("component", "tunnel")),
		PollInterval: e.poll,
		StateFile:    e.home.TunnelStatePath(label),
		Logger:       e.log,
	})
	if err != nil {
		return fmt.Errorf("start the tunnels of %q: %w", label, err)
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	e.runner, e.cancel, e.done = r, cancel, done
	go func() {
		defer close(done)
		e.log.Info("tunnels starting", "label", label, "panel", id.Profile.PanelURL)
		if err := r.Run(rctx); err != nil {
			e.log.Error("tunnels stopped", "label", label, "err", err)
		}
	}()
	return nil
}

func (e *engine) stopLocked() {
	if e.cancel != nil {
		e.cancel()
		<-e.done
	}
	e.runner, e.cancel, e.done = nil, nil, nil
}

// Stop stops the runner.
func (e *engine) Stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stopLocked()
	e.label = ""
}

// state returns the live state of label: the in-process runner's, else the
// state file of another running agent.
func (e *engine) state(label string) *agent.RunnerState {
	e.mu.Lock()
	r, cur := e.runner, e.label
	e.mu.Unlock()
	if r != nil && cur == label {
		st := r.State()
		return &st
	}
	if st, running, err := agent.ReadTunnelState(e.home.TunnelStatePath(label)); err == nil && running && st.PID != os.Getpid() {
		return st
	}
	return nil
}
