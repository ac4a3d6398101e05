package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/portlama/portlama/internal/agent"
)

func newSetupCmd(g *globals) *cobra.Command {
	var (
		token, panelURL, fingerprint, caFile string
		jsonOut, force                       bool
	)
	cmd := &cobra.Command{
		Use:   "setup --token TOKEN --panel-url URL [--label L] [--json]",
		Short: "Enroll this machine with a relay (one-time token)",
		Long: `Enroll this machine with a relay using a one-time token from the panel
(Certificates → Agents → enrollment token).

A private key is generated here and never leaves this machine; the relay
signs a certificate for it. The panel's TLS certificate must be trusted:
either it chains to the system roots (a domain panel URL), or you pass its
SHA-256 fingerprint with --panel-fingerprint (what your browser shows for
https://<ip>:9292), or the certificate itself with --ca-cert FILE.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if token == "" {
				token = os.Getenv("PORTLAMA_ENROLLMENT_TOKEN")
			}
			if panelURL == "" {
				return errors.New("--panel-url is required (e.g. https://203.0.113.7:9292)")
			}
			var caPEM []byte
			if caFile != "" {
				b, err := os.ReadFile(caFile)
				if err != nil {
					return fmt.Errorf("read --ca-cert: %w", err)
				}
				caPEM = b
			}
			report := agent.TextReporter(cmd.OutOrStdout())
			if jsonOut {
				report = agent.NDJSONReporter(cmd.OutOrStdout())
			}
			_, err := agent.Setup(cmd.Context(), g.agentHome(), agent.SetupOptions{
				Token: token, PanelURL: panelURL, Label: g.label,
				PanelFingerprint: fingerprint, CACertPEM: caPEM, Force: force,
				Report: report,
			})
			if err != nil {
				return err
			}
			if !jsonOut {
				fmt.Fprintln(cmd.OutOrStdout(), "Next: `portlama-agent run` (foreground) or `portlama-agent service install`.")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&token, "token", "", "one-time enrollment token (env PORTLAMA_ENROLLMENT_TOKEN)")
	f.StringVar(&panelURL, "panel-url", "", "panel URL, e.g. https://203.0.113.7:9292 or https://panel.example.com")
	f.StringVar(&fingerprint, "panel-fingerprint", "", "SHA-256 fingerprint of the panel's TLS certificate (pins it)")
	f.StringVar(&caFile, "ca-cert", "", "PEM file with a certificate to trust for the panel")
	f.BoolVar(&jsonOut, "json", false, "print progress as NDJSON events")
	f.BoolVar(&force, "force", false, "replace an existing label of the same name (old files are kept aside)")
	return cmd
}

func newListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the agent labels set up on this machine",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := g.agentHome().LoadRegistry()
			if err != nil {
				return err
			}
			if len(r.Agents) == 0 {
				return agent.ErrNotSetUp
			}
			tw := newTable(cmd.OutOrStdout(), "", "LABEL", "PANEL", "ENROLLED")
			for _, a := range r.Agents {
				mark := ""
				if a.Label == r.Current {
					mark = "*"
				}
				tw.row(mark, a.Label, a.PanelURL, a.EnrolledAt)
			}
			return tw.flush()
		},
	}
}

func newUseCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "use LABEL",
		Short: "Make LABEL the current agent label",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.agentHome().SetCurrent(args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Current label: %s\n", args[0])
			return nil
		},
	}
}
