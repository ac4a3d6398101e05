package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/portlama/portlama/internal/install"
)

func newInstallCmd(root *cobra.Command) *cobra.Command {
	var opts install.Options
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Turn this Ubuntu 24.04 or Debian 12 server into a Portlama relay (run as root)",
		Long: "portlama install sets this server up as a relay, with no questions asked. Run it again at any\n" +
			"time (after an upgrade, or if something was changed by hand): it changes only what differs\n" +
			"and never replaces configuration or certificates.\n\nWhat it changes, in order:\n" + install.HelpText(),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			in := install.New(install.Config{Options: opts, Emit: eventPrinter(out, asJSON)})
			s, err := in.Run(cmd.Context())
			if err != nil {
				return err
			}
			if !asJSON {
				printSummary(out, s)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print progress as NDJSON events (one JSON object per line)")
	f.BoolVar(&opts.SkipHarden, "skip-harden", false, "leave swap, firewall, fail2ban and SSH alone")
	f.BoolVar(&opts.Dev, "dev", false, "accept a private or documentation IP address (labs, LANs)")
	f.StringVar(&opts.IP, "ip", "", "the relay's public IPv4 `address` (default: detected)")
	return cmd
}

func newUninstallCmd() *cobra.Command {
	var yes, purge, asJSON bool
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "Remove what portlama install added (keeps the PKI unless --purge)",
		Long: "portlama uninstall stops the relay and removes what portlama install added: units, nginx\n" +
			"configuration (the distribution's nginx.conf and default site come back), fail2ban jails, the\n" +
			"firewall rules for 80, 443 and 9292, the SSH block, the swap file it made, the binary, the\n" +
			"service user and the relay's files. It keeps /etc/portlama/pki (the CA and the admin\n" +
			"certificate) unless --purge, and the packages it installed (nginx, ufw, fail2ban).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if !yes {
				what := "everything Portlama added except /etc/portlama/pki"
				if purge {
					what = "everything Portlama added, including the CA and all client certificates (--purge)"
				}
				fmt.Fprintf(out, "This removes %s from this server.\nType yes to continue: ", what)
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && !errors.Is(err, io.EOF) {
					return err
				}
				if strings.TrimSpace(line) != "yes" {
					return errors.New("nothing removed (answer yes, or pass --yes)")
				}
			}
			in := install.New(install.Config{Emit: eventPrinter(out, asJSON)})
			if err := in.Uninstall(cmd.Context(), purge); err != nil {
				return err
			}
			if !asJSON {
				fmt.Fprintln(out, "\nPortlama is removed. The packages it installed stay (apt-get remove nginx ufw fail2ban if you do not need them); ufw stays on with SSH allowed.")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	f.BoolVar(&purge, "purge", false, "also remove the PKI (/etc/portlama/pki): issued certificates stop working")
	f.BoolVar(&asJSON, "json", false, "print progress as NDJSON events")
	return cmd
}

// eventPrinter prints installer events: NDJSON, or one line per finished
// task.
func eventPrinter(w io.Writer, asJSON bool) func(install.Event) {
	enc := json.NewEncoder(w)
	return func(e install.Event) {
		if asJSON {
			enc.Encode(e)
			return
		}
		switch e.Status {
		case install.StatusDone:
			mark := "ok     "
			if e.Changed {
				mark = "changed"
			}
			fmt.Fprintf(w, "%s  %-12s %s\n", mark, e.Task, e.Message)
		case install.StatusSkipped:
			fmt.Fprintf(w, "skipped  %-12s %s\n", e.Task, e.Message)
		case install.StatusFailed:
			fmt.Fprintf(w, "FAILED   %-12s %s\n", e.Task, e.Error)
		}
	}
}

func printSummary(w io.Writer, s *install.Summary) {
	fmt.Fprintf(w, `
Portlama is installed.

  Admin certificate  %s
  Its password       %s  (on the server: cat %s)
  Copy it here with  %s
  Then open          %s
                     (import client.p12 into your browser or keychain first; the browser
                     warns about the panel's self-signed certificate until your domain is set up)

Next: %s
`, s.P12Path, s.P12PasswordPath, s.P12PasswordPath, s.SCP, s.PanelURL, s.Next)
}
