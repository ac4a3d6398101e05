package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/portlama/portlama/internal/agent"
	"github.com/portlama/portlama/internal/tunnel"
)

func newRunCmd(g *globals) *cobra.Command {
	var (
		poll, maxBackoff time.Duration
		debug            bool
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Keep this agent's tunnels connected (foreground)",
		Long: `Fetch this agent's tunnel configuration from the relay, connect its
tunnels (all over one connection), and keep them connected: reconnects with
backoff after network loss or relay restarts, and picks up added or removed
tunnels without a restart and without interrupting the other tunnels.
"portlama-agent status" shows each tunnel's state while it runs.
Stop with Ctrl-C.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			level := slog.LevelInfo
			if debug {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			tunnel.TuneAgent(cmd.Context())
			label, err := g.resolveLabel()
			if err != nil {
				return err
			}
			h := g.agentHome()
			id, err := h.LoadIdentity(label)
			if err != nil {
				return err
			}
			if left := time.Until(id.Leaf.NotAfter); left < 30*24*time.Hour {
				log.Warn("client certificate expires soon", "expires", id.Leaf.NotAfter.UTC().Format(time.RFC3339))
			}
			tc, err := id.PanelTLSConfig()
			if err != nil {
				return err
			}
			client := agent.NewClient(id.Profile.PanelURL, tc)
			r, err := agent.NewRunner(agent.RunnerConfig{
				Fetch:        agent.NewFetcher(client),
				NewClient:    agent.TunnelClientFactory(id, version, log.With("component", "tunnel")),
				PollInterval: poll,
				MaxBackoff:   maxBackoff,
				StateFile:    h.TunnelStatePath(label),
				Logger:       log,
			})
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			log.Info("portlama-agent starting", "version", version, "label", label, "panel", id.Profile.PanelURL)
			if err := r.Run(ctx); err != nil {
				return fmt.Errorf("run: %w", err)
			}
			log.Info("portlama-agent stopped")
			return nil
		},
	}
	f := cmd.Flags()
	f.DurationVar(&poll, "poll-interval", 10*time.Second, "how often to check the relay for tunnel changes")
	f.DurationVar(&maxBackoff, "max-backoff", 30*time.Second, "longest wait between reconnect attempts")
	f.BoolVar(&debug, "debug", false, "log tunnel client details")
	return cmd
}
