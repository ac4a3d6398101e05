// Command portlama is the relay binary: the panel, the tunnel server, the
// auth server, and the local demo of the whole stack.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.0.0"

func main() {
	// A reload (SIGHUP) must never end a daemon, not even one still
	// starting: the daemons that re-read state on it ask for it later
	// (onHangup), which undoes this.
	signal.Ignore(syscall.SIGHUP)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "portlama",
		Short:         "Self-hosted relay: your home apps on your own domain, behind two-factor login",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newPanelCmd(),
		newTunnelServerCmd(),
		newAuthServerCmd(),
		newDemoCmd(),
		newInstallCmd(root),
		newUninstallCmd(),
		newHelperCmd(),
		newCertsCmd(),
		newResetAdminCmd(),
		&cobra.Command{
			Use:   "version",
			Short: "Print the version",
			Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), version) },
		},
	)
	return root
}

func newLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}
