package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/portlama/portlama/internal/auth"
	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/tunnel"
)

// relayFlag adds --relay-config, which points a relay process at a
// non-default installation (the demo's directory); without it the process
// uses the installed relay's paths and addresses.
func relayFlag(cmd *cobra.Command) *string {
	return cmd.Flags().String("relay-config", "", "relay configuration file (written by `portlama demo`); default: the installed relay")
}

// tunnelServerConfig places the tunnel server on the relay's address and files.
func tunnelServerConfig(r config.Relay) tunnel.ServerConfig {
	cfg := tunnel.DirConfig(r.Layout.TunnelDir())
	cfg.Addr = r.Addrs.Tunnel
	return cfg
}

func newTunnelServerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tunnel-server",
		Short: "Run the tunnel server (unit portlama-tunnel): agents' reverse tunnels, per-agent ACL",
		Args:  cobra.NoArgs,
	}
	relayPath := relayFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		r, err := config.LoadRelay(*relayPath)
		if err != nil {
			return err
		}
		tuneGC()
		cfg := tunnelServerConfig(r)
		cfg.Logger = newLogger()
		return tunnel.RunServer(cmd.Context(), cfg)
	}
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
	cmd := &cobra.Command{
		Use:   "auth-server",
		Short: "Run the auth server (unit portlama-auth): login portal and forward auth for nginx",
		Args:  cobra.NoArgs,
	}
	relayPath := relayFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		r, err := config.LoadRelay(*relayPath)
		if err != nil {
			return err
		}
		pc, err := config.NewPanelStore(r.Layout.PanelConfig()).Load()
		if err != nil {
			return err
		}
		domain := pc.DomainOrEmpty()
		if domain == "" {
			return fmt.Errorf("no domain is set yet: finish onboarding in the panel (domain and DNS) before starting the auth server")
		}
		cfg := authServerConfig(r, domain)
		cfg.Logger = newLogger()
		srv, err := auth.NewServer(cfg)
		if err != nil {
			return err
		}
		return srv.Run(cmd.Context())
	}
	return cmd
}

// tuneGC applies the tunnel processes' GC settings unless the operator set
// GOGC or GOMEMLIMIT.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(tunnel.GCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(tunnel.MemoryLimit)
	}
}
