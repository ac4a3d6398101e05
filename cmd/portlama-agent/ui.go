package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/portlama/portlama/internal/cloud/launch"
	"github.com/portlama/portlama/internal/homeui"
	"github.com/portlama/portlama/internal/keychain"
	"github.com/portlama/portlama/internal/servers"
	"github.com/portlama/portlama/internal/tunnel"
)

func newUICmd(g *globals) *cobra.Command {
	var (
		listen    string
		noBrowser bool
		poll      time.Duration
		relayBin  string
	)
	cmd := &cobra.Command{
		Use:   "ui",
		Short: "Open the local control UI in the browser",
		Long: `Serve the home control UI on 127.0.0.1 and open it in the default browser:
add relays (enrollment token or admin P12), see the web apps running on this
machine, turn one into a tunnel with one click, and watch the tunnels' state
and log. While it runs it keeps the current agent's tunnels connected (unless
"portlama-agent run" or the service already does). Only this user's browser
can use it: it answers on loopback only, to a one-time login link, and
refuses other sites' requests. Secrets go to the OS keychain; without one set
PORTLAMA_KEYCHAIN=file (see docs/home.md). Stop with Ctrl-C.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelInfo}))
			h := g.agentHome()
			keys, kerr := keychain.Open(keychain.Options{
				Backend: os.Getenv(keychain.EnvBackend), File: filepath.Join(h.Dir, "secrets.json"),
			})
			if kerr != nil {
				log.Warn("no keychain: importing an admin P12 is disabled", "err", kerr)
			}
			backend, problem := homeui.KeychainStatus(keys, kerr)
			token, err := homeui.LoadToken(h.Dir)
			if err != nil {
				return err
			}
			// The background service's UI (service install --ui) already
			// runs: open it with a new link.
			if link, err := homeui.RunningLoginURL(cmd.Context(), h.Dir, token); err == nil {
				showLink(cmd, "Control UI (already running)", link, noBrowser)
				return nil
			} else if !errors.Is(err, homeui.ErrNotRunning) {
				return err
			}
			reg := servers.New(h, keys)
			var cloud *launch.Service
			// Provisioning uploads the relay binary, so it needs one (and a
			// keychain for the token and the SSH keys).
			if relayBin != "" && keys != nil {
				cloud = launch.NewService(launch.ServiceConfig{
					// PORTLAMA_DIGITALOCEAN_API points at another API
					// address (the browser test's fake); default the real one.
					APIBase: os.Getenv("PORTLAMA_DIGITALOCEAN_API"),
					Keys:    keys, Servers: reg, StatePath: filepath.Join(h.Dir, "provision.json"), Binary: relayBin,
				})
			}
			srv, err := homeui.Listen(listen, homeui.Config{
				Home: h, Registry: reg, KeychainBackend: backend, KeychainError: problem,
				Version: version, Token: token, Log: log, PollInterval: poll, Cloud: cloud,
			})
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			// It runs the relays' tunnels in this process.
			tunnel.TuneAgent(ctx)
			showLink(cmd, "Control UI", srv.LoginURL(), noBrowser)
			return srv.Serve(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:7330", "loopback address to serve on (port 0 picks a free one)")
	f.BoolVar(&noBrowser, "no-browser", false, "print the link only")
	f.DurationVar(&poll, "poll-interval", 3*time.Second, "how often the tunnels' configuration is checked")
	f.StringVar(&relayBin, "relay-binary", os.Getenv("PORTLAMA_RELAY_BINARY"), "the portlama relay `binary` for linux/amd64 that provisioning uploads to a new droplet (enables the Cloud page)")
	return cmd
}

// showLink prints the one-time link and opens it unless noBrowser.
func showLink(cmd *cobra.Command, what, link string, noBrowser bool) {
	fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n(one-time link; run portlama-agent ui again for a new one)\n", what, link)
	if noBrowser {
		return
	}
	if err := openBrowser(cmd.Context(), link); err != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "Could not open a browser (%v): open the link above yourself.\n", err)
	}
}

// openBrowser opens url in the default browser (argv, never a shell).
func openBrowser(ctx context.Context, url string) error {
	name := "xdg-open"
	if runtime.GOOS == "darwin" {
		name = "open"
	}
	c := exec.CommandContext(ctx, name, url)
	if err := c.Start(); err != nil {
		return err
	}
	go func() { _ = c.Wait() }()
	return nil
}
