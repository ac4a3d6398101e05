// Command portlama-agent runs on the home machine: it enrolls with a Portlama
// relay, keeps this agent's tunnels connected, manages tunnels through the
// panel API and installs itself as a background service.
//
// It is a thin layer over internal/agent; see that package for the file
// layout, the TLS pinning rules and the setup --json event format.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/portlama/portlama/internal/agent"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// globals are the flags every command shares.
type globals struct {
	home  string
	label string
}

func (g *globals) agentHome() agent.Home { return agent.Home{Dir: g.home} }

// resolveLabel returns --label, else the current label.
func (g *globals) resolveLabel() (string, error) {
	return g.agentHome().ResolveLabel(g.label)
}

func defaultHome() string {
	if d := os.Getenv("PORTLAMA_AGENT_HOME"); d != "" {
		return d
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".portlama")
	}
	return ".portlama"
}

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "portlama-agent",
		Short:         "Connect this machine's apps to a Portlama relay",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if g.home == "" {
				return errors.New("--home must not be empty")
			}
			abs, err := filepath.Abs(g.home)
			if err != nil {
				return fmt.Errorf("resolve --home: %w", err)
			}
			g.home = abs
			return nil
		},
	}
	root.PersistentFlags().StringVar(&g.home, "home", defaultHome(), "agent directory (env PORTLAMA_AGENT_HOME)")
	root.PersistentFlags().StringVar(&g.label, "label", "", "agent label to use (default: the current one)")
	root.AddCommand(
		newSetupCmd(g),
		newRunCmd(g),
		newStatusCmd(g),
		newTunnelsCmd(g),
		newSitesCmd(g),
		newServiceCmd(g),
		newLogsCmd(g),
		newListCmd(g),
		newUseCmd(g),
		newUICmd(g),
	)
	explainErrors(root)
	return root
}

// explainErrors makes every command add advice to the panel errors the
// user can act on (agent.Explain).
func explainErrors(cmd *cobra.Command) {
	if run := cmd.RunE; run != nil {
		cmd.RunE = func(c *cobra.Command, args []string) error { return agent.Explain(run(c, args)) }
	}
	for _, sub := range cmd.Commands() {
		explainErrors(sub)
	}
}

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
