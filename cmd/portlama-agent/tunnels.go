package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/portlama/portlama/internal/agent"
	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/validate"
)

// apiClient returns the label's identity and a panel client.
func apiClient(g *globals) (*agent.Identity, *agent.Client, error) {
	label, err := g.resolveLabel()
	if err != nil {
		return nil, nil, err
	}
	id, err := g.agentHome().LoadIdentity(label)
	if err != nil {
		return nil, nil, err
	}
	tc, err := id.PanelTLSConfig()
	if err != nil {
		return nil, nil, err
	}
	c := agent.NewClient(id.Profile.PanelURL, tc)
	// A change the relay saved but could not confirm is worth knowing.
	c.OnWarning(func(w string) { fmt.Fprintln(os.Stderr, "Warning: "+w) })
	return id, c, nil
}

// resolveTunnel maps a UUID, subdomain or fqdn to a tunnel ID.
func resolveTunnel(ctx context.Context, c *agent.Client, ref string) (string, error) {
	if validate.UUID(ref) == nil {
		return ref, nil
	}
	ts, err := c.ListTunnels(ctx)
	if err != nil {
		return "", err
	}
	for _, t := range ts {
		if t.Subdomain == ref || t.FQDN == ref {
			return t.ID, nil
		}
	}
	return "", fmt.Errorf("no tunnel %q among this agent's tunnels (see `portlama-agent tunnels list`)", ref)
}

func newTunnelsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tunnels",
		Short: "List, create, delete, enable and disable this agent's tunnels",
	}
	var jsonOut bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List this agent's tunnels",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, c, err := apiClient(g)
			if err != nil {
				return err
			}
			ts, err := c.ListTunnels(cmd.Context())
			if err != nil {
				return err
			}
			if jsonOut {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(ts)
			}
			if len(ts) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "No tunnels. Create one: portlama-agent tunnels create --subdomain app --port 8080")
				return nil
			}
			tw := newTable(cmd.OutOrStdout(), "ID", "FQDN", "LOCAL", "RELAY PORT", "ACCESS", "ENABLED")
			for _, t := range ts {
				access := t.AccessMode
				if t.Type == api.TypePanel {
					access = "panel (mTLS)"
				}
				tw.row(t.ID, t.FQDN, api.AgentTunnel{TargetHost: t.TargetHost, Port: t.Port}.Local(),
					strconv.Itoa(t.RelayPort), string(access), yesNo(t.IsEnabled()))
			}
			return tw.flush()
		},
	}
	list.Flags().BoolVar(&jsonOut, "json", false, "print JSON")

	var nt api.CreateTunnelRequest
	var accessMode string
	create := &cobra.Command{
		Use:   "create --subdomain SUB --port PORT [--target-host HOST] [--access-mode MODE]",
		Short: "Create a tunnel from SUB.<domain> to a local port",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if nt.Subdomain == "" || nt.Port == 0 {
				return fmt.Errorf("--subdomain and --port are required")
			}
			if nt.TargetHost != "" {
				if err := agent.ValidateTargetHost(nt.TargetHost); err != nil {
					return err
				}
			}
			_, c, err := apiClient(g)
			if err != nil {
				return err
			}
			nt.AccessMode = api.AccessMode(accessMode)
			t, err := c.CreateTunnel(cmd.Context(), nt)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Created https://%s → %s (id %s).\nA running agent picks it up within its poll interval.\n",
				t.FQDN, api.AgentTunnel{TargetHost: t.TargetHost, Port: t.Port}.Local(), t.ID)
			return nil
		},
	}
	cf := create.Flags()
	cf.StringVar(&nt.Subdomain, "subdomain", "", "subdomain (the tunnel is https://<subdomain>.<domain>)")
	cf.IntVar(&nt.Port, "port", 0, "local port (1024-65535)")
	cf.StringVar(&nt.TargetHost, "target-host", "", "host the agent connects to (default 127.0.0.1)")
	cf.StringVar(&nt.Description, "description", "", "description")
	cf.StringVar(&accessMode, "access-mode", "", "authenticated (default), restricted or public (admins only)")
	cf.StringSliceVar(&nt.AllowedUsers, "allow-user", nil, "restricted mode: allowed user (repeatable)")
	cf.StringSliceVar(&nt.AllowedGroups, "allow-group", nil, "restricted mode: allowed group (repeatable)")

	del := &cobra.Command{
		Use:   "delete ID|SUBDOMAIN",
		Short: "Delete a tunnel",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, c, err := apiClient(g)
			if err != nil {
				return err
			}
			id, err := resolveTunnel(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			if err := c.DeleteTunnel(cmd.Context(), id); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted tunnel %s.\n", args[0])
			return nil
		},
	}
	toggle := func(use string, enabled bool) *cobra.Command {
		return &cobra.Command{
			Use:   use + " ID|SUBDOMAIN",
			Short: map[bool]string{true: "Enable a tunnel", false: "Disable a tunnel"}[enabled],
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				_, c, err := apiClient(g)
				if err != nil {
					return err
				}
				id, err := resolveTunnel(cmd.Context(), c, args[0])
				if err != nil {
					return err
				}
				t, err := c.SetTunnelEnabled(cmd.Context(), id, enabled)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Tunnel %s is now %s.\n", t.FQDN, map[bool]string{true: "enabled", false: "disabled"}[t.IsEnabled()])
				return nil
			},
		}
	}
	cmd.AddCommand(list, create, del, toggle("enable", true), toggle("disable", false))
	return cmd
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func newStatusCmd(g *globals) *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show this agent's relay, certificate, tunnels and service",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			label, err := g.resolveLabel()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 20*time.Second)
			defer cancel()
			st, err := agent.GetStatus(ctx, g.agentHome(), label)
			if err != nil {
				return err
			}
			var svc *agent.ServiceStatus
			scopes := []serviceFlags{{}}
			if runtime.GOOS == "linux" {
				scopes = append(scopes, serviceFlags{system: true})
			}
			for _, sf := range scopes {
				m, err := serviceManager(g, label, sf)
				if err != nil {
					break
				}
				if s, err := m.Status(ctx); err == nil && (svc == nil || s.Installed) {
					svc = &s
					if s.Installed {
						break
					}
				}
			}
			out := cmd.OutOrStdout()
			if jsonOut {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(struct {
					agent.StatusReport
					Service *agent.ServiceStatus `json:"service,omitempty"`
				}{st, svc})
			}
			fmt.Fprintf(out, "Label:         %s (relay label %s)\n", st.Label, st.RelayLabel)
			fmt.Fprintf(out, "Panel:         %s\n", st.PanelURL)
			left := time.Until(st.CertExpiry)
			fmt.Fprintf(out, "Certificate:   serial %s, expires %s (%d days)\n", st.Serial, st.CertExpiry.UTC().Format("2006-01-02"), int(left.Hours()/24))
			if st.RelayReachable {
				fmt.Fprintf(out, "Relay:         reachable (version %s)\n", st.RelayVersion)
			} else {
				fmt.Fprintf(out, "Relay:         NOT reachable: %s\n", st.RelayError)
			}
			switch {
			case st.TunnelsError != "":
				fmt.Fprintf(out, "Tunnels:       unknown: %s\n", st.TunnelsError)
			case len(st.Tunnels) == 0:
				fmt.Fprintln(out, "Tunnels:       none enabled")
			default:
				fmt.Fprintf(out, "Tunnels:       %d enabled\n", len(st.Tunnels))
				for _, t := range st.Tunnels {
					fmt.Fprintf(out, "  https://%s → %s%s\n", t.FQDN, t.Local(), liveState(st, t))
				}
			}
			switch {
			case st.Live == nil:
				fmt.Fprintln(out, "Agent:         not running here (start it with: portlama-agent run, or install the service)")
			case !st.LiveRunning:
				fmt.Fprintf(out, "Agent:         not running (last seen %s)\n", st.Live.UpdatedAt.Local().Format(time.DateTime))
			default:
				fmt.Fprintf(out, "Agent:         running (pid %d), tunnel connection %s\n", st.Live.PID, st.Live.Connection)
			}
			if svc != nil {
				printServiceStatus(cmd, *svc)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	return cmd
}

// liveState is the running agent's state of tunnel t, for the status table.
func liveState(st agent.StatusReport, t agent.AgentTunnel) string {
	if st.Live == nil || !st.LiveRunning {
		return ""
	}
	for _, ts := range st.Live.Tunnels {
		if ts.RelayPort != t.RelayPort {
			continue
		}
		if ts.Reason != "" && ts.State != agent.TunnelConnected {
			return "  [" + ts.State + ": " + ts.Reason + "]"
		}
		return "  [" + ts.State + "]"
	}
	return "  [not yet picked up by the running agent]"
}
