package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/portlama/portlama/internal/agent"
)

type serviceFlags struct {
	system bool
	user   string
	ui     bool
}

// serviceManager builds the ServiceManager of label for this OS.
func serviceManager(g *globals, label string, sf serviceFlags) (agent.ServiceManager, error) {
	exe, err := os.Executable()
	if err != nil {
		return agent.ServiceManager{}, fmt.Errorf("find this program's path: %w", err)
	}
	if p, err := filepath.EvalSymlinks(exe); err == nil {
		exe = p
	}
	spec := agent.ServiceSpec{
		Label:      label,
		Executable: exe,
		Home:       g.home,
		System:     sf.system,
		User:       sf.user,
		LogFile:    g.agentHome().Paths(label).Log,
		UI:         sf.ui,
	}
	if sf.system && spec.User == "" {
		u, err := user.Current()
		if err != nil {
			return agent.ServiceManager{}, fmt.Errorf("find current user: %w", err)
		}
		spec.User = u.Username
	}
	m := agent.ServiceManager{GOOS: runtime.GOOS, Spec: spec, UID: os.Getuid()}
	home, _ := os.UserHomeDir()
	switch runtime.GOOS {
	case "linux":
		if sf.system {
			m.UnitDir = "/etc/systemd/system"
		} else {
			cfg := os.Getenv("XDG_CONFIG_HOME")
			if cfg == "" {
				cfg = filepath.Join(home, ".config")
			}
			m.UnitDir = filepath.Join(cfg, "systemd", "user")
		}
	case "darwin":
		if sf.system {
			return m, errors.New("--system is for Linux; on macOS the agent runs as a launchd user agent")
		}
		m.LaunchAgentsDir = filepath.Join(home, "Library", "LaunchAgents")
	}
	return m, nil
}

func newServiceCmd(g *globals) *cobra.Command {
	var sf serviceFlags
	cmd := &cobra.Command{
		Use:   "service",
		Short: "Run the agent in the background (systemd on Linux, launchd on macOS)",
	}
	cmd.PersistentFlags().BoolVar(&sf.system, "system", false, "Linux: install a system unit (needs root) instead of a user unit")
	cmd.PersistentFlags().StringVar(&sf.user, "user", "", "Linux system unit: account to run as (default: current user)")

	// sub builds a subcommand that acts on the label's service manager.
	sub := func(use, short string, run func(cmd *cobra.Command, label string, m agent.ServiceManager) error) *cobra.Command {
		return &cobra.Command{
			Use: use, Short: short, Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				label, err := g.resolveLabel()
				if err != nil {
					return err
				}
				m, err := serviceManager(g, label, sf)
				if err != nil {
					return err
				}
				return run(cmd, label, m)
			},
		}
	}
	install := sub("install", "Install and start the background service for the label",
		func(cmd *cobra.Command, label string, m agent.ServiceManager) error {
			path, err := m.Install(cmd.Context())
			if err != nil {
				return fmt.Errorf("install service: %w", err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Service for %q installed: %s\n", label, path)
			if runtime.GOOS == "linux" && !sf.system {
				fmt.Fprintln(out, "To keep it running while you are logged out: loginctl enable-linger $USER")
			}
			fmt.Fprintln(out, "Logs: portlama-agent logs -f")
			return nil
		})
	uninstall := sub("uninstall", "Stop and remove the background service for the label",
		func(cmd *cobra.Command, label string, m agent.ServiceManager) error {
			if err := m.Uninstall(cmd.Context()); err != nil {
				return fmt.Errorf("uninstall service: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Service for %q removed.\n", label)
			return nil
		})
	status := sub("status", "Show whether the background service is installed and running",
		func(cmd *cobra.Command, _ string, m agent.ServiceManager) error {
			st, err := m.Status(cmd.Context())
			if err != nil {
				return err
			}
			printServiceStatus(cmd, st)
			return nil
		})
	install.Flags().BoolVar(&sf.ui, "ui", false, "run the home control UI in the background (it keeps the current relay's tunnels up; `portlama-agent ui` then opens it)")
	cmd.AddCommand(install, uninstall, status)
	return cmd
}

func printServiceStatus(cmd *cobra.Command, st agent.ServiceStatus) {
	out := cmd.OutOrStdout()
	if !st.Installed {
		fmt.Fprintf(out, "Service:       not installed (%s)\n", st.Path)
		return
	}
	fmt.Fprintf(out, "Service:       installed (%s)\n", st.Path)
	fmt.Fprintf(out, "Service state: %s\n", st.Active)
	if st.Enabled != "" {
		fmt.Fprintf(out, "Enabled:       %s\n", st.Enabled)
	}
}

func newLogsCmd(g *globals) *cobra.Command {
	var (
		follow bool
		lines  int
		system bool
	)
	cmd := &cobra.Command{
		Use:   "logs",
		Short: "Show the background service's logs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			label, err := g.resolveLabel()
			if err != nil {
				return err
			}
			m, err := serviceManager(g, label, serviceFlags{system: system})
			if err != nil {
				return err
			}
			argv, err := m.LogsCommand(follow, lines)
			if err != nil {
				return err
			}
			c := exec.CommandContext(cmd.Context(), argv[0], argv[1:]...)
			c.Stdout, c.Stderr = cmd.OutOrStdout(), cmd.ErrOrStderr()
			if err := c.Run(); err != nil {
				return fmt.Errorf("%s: %w", argv[0], err)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines")
	cmd.Flags().IntVarP(&lines, "lines", "n", 100, "number of recent lines")
	cmd.Flags().BoolVar(&system, "system", false, "Linux: the service is a system unit")
	return cmd
}
