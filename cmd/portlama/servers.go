package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/portlama/portlama/internal/auth"
	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/memtrim"
	"github.com/portlama/portlama/internal/tunnel"
)

// relayCommand builds a relay process's command. Its --relay-config flag
// points the process at a non-default installation (the demo's directory);
// without it the process uses the installed relay's paths and addresses.
func relayCommand(use, short string, run func(ctx context.Context, r config.Relay) error) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short, Args: cobra.NoArgs}
	path := cmd.Flags().String("relay-config", "", "relay configuration `file` (portlama demo writes one); default: the installed relay")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		r, err := config.LoadRelay(*path)
		if err != nil {
			return err
		}
		return run(cmd.Context(), r)
	}
	return cmd
}

// onHangup runs reload on every SIGHUP until ctx ends: the units' reload
// action (systemctl reload, the supervisor's Reload) sends one.
func onHangup(ctx context.Context, log *slog.Logger, reload func(context.Context) error) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := reload(ctx); err != nil {
				log.Warn("reload on SIGHUP", "err", err)
			} else {
				log.Info("reloaded on SIGHUP")
			}
		}
	}
}

// tunnelServerConfig places the tunnel server on the relay's address and files.
func tunnelServerConfig(r config.Relay) tunnel.ServerConfig {
	cfg := tunnel.DirConfig(r.Layout.TunnelDir())
	cfg.Addr = r.Addrs.Tunnel
	return cfg
}

func newTunnelServerCmd() *cobra.Command {
	var poll time.Duration
	cmd := relayCommand("tunnel-server", "Run the tunnel server (unit portlama-tunnel): agents' reverse tunnels, per-agent ACL",
		func(ctx context.Context, r config.Relay) error {
			tunnel.TuneServer(ctx)
			cfg := tunnelServerConfig(r)
			cfg.ReloadInterval = poll
			cfg.Logger = newLogger()
			srv, err := tunnel.NewServer(cfg)
			if err != nil {
				return err
			}
			go onHangup(ctx, cfg.Logger, func(ctx context.Context) error { _, err := srv.Reload(ctx); return err })
			return srv.Run(ctx)
		})
	cmd.Flags().DurationVar(&poll, "acl-poll-interval", tunnel.DefaultReloadInterval,
		"how often to re-read acl.json without a notification on the management socket (a fallback)")
	return cmd
}

// authServerConfig derives the auth server's configuration from the relay's
// and the base domain set during onboarding.
func authServerConfig(r config.Relay, domain string) auth.Config {
	portal := "https://auth." + domain
	if r.Addrs.HTTPSPort != 0 && r.Addrs.HTTPSPort != 443 {
		portal += ":" + strconv.Itoa(r.Addrs.HTTPSPort)
	}
	return auth.Config{
		Dir:       r.Layout.AuthDir(),
		Domain:    domain,
		PortalURL: portal,
		Addr:      r.Addrs.Auth,
	}
}

func newAuthServerCmd() *cobra.Command {
	return relayCommand("auth-server", "Run the auth server (unit portlama-auth): login portal and forward auth for nginx",
		func(ctx context.Context, r config.Relay) error {
			pc, err := config.NewPanelStore(r.Layout.PanelConfig()).Load()
			if err != nil {
				return err
			}
			domain := pc.DomainOrEmpty()
			if domain == "" {
				return fmt.Errorf("no domain is set yet: finish onboarding in the panel (domain and DNS) before starting the auth server")
			}
			go memtrim.Run(ctx, memtrim.Options{})
			cfg := authServerConfig(r, domain)
			cfg.Logger = newLogger()
			srv, err := auth.NewServer(cfg)
			if err != nil {
				return err
			}
			go onHangup(ctx, cfg.Logger, srv.Reload)
			return srv.Run(ctx)
		})
}
