package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/pki"
	"github.com/portlama/portlama/internal/relay"
)

func newCertsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "certs", Short: "Manage the relay's TLS certificates"}
	cmd.AddCommand(relayCommand("renew",
		"Renew every certificate that expires within 30 days and reload nginx once (run daily by portlama-renew.timer)",
		func(ctx context.Context, r config.Relay) error {
			svc, err := relay.Open(relay.Options{Config: r, Logger: newLogger()})
			if err != nil {
				return err
			}
			res, err := svc.RenewDue(ctx)
			for _, n := range res.Renewed {
				fmt.Printf("renewed %s\n", n)
			}
			for _, n := range res.Kept {
				fmt.Printf("kept %s (more than 30 days left)\n", n)
			}
			return err
		}))
	return cmd
}

func newResetAdminCmd() *cobra.Command {
	return relayCommand("reset-admin",
		"Issue a fresh admin client certificate, revoke the old one, turn panel 2FA off (run as root on the relay)",
		func(ctx context.Context, r config.Relay) error {
			svc, err := relay.Open(relay.Options{Config: r, Logger: newLogger()})
			if err != nil {
				return err
			}
			res, err := svc.ResetAdmin(ctx)
			if err != nil {
				return err
			}
			out := os.Stdout
			fmt.Fprintln(out, "A new admin certificate was issued; the previous one is revoked.")
			fmt.Fprintln(out, "Panel two-factor authentication is off and the panel answers by IP again.")
			fmt.Fprintf(out, "\nCertificate bundle: %s\nPassword:           %s\n", filepath.Join(r.Layout.PKIDir(), pki.ClientP12File), res.Password)
			fmt.Fprintf(out, "\nCopy it to your computer (e.g. scp root@%s:%s .), import it into your browser\nor keychain with that password, then open %s\n",
				res.IP, filepath.Join(r.Layout.PKIDir(), pki.ClientP12File), res.PanelURL)
			if res.ReloadErr != nil {
				fmt.Fprintf(out, "\nWarning: nginx could not be reloaded (%v); run `systemctl reload nginx` so it refuses the old certificate.\n", res.ReloadErr)
			}
			return nil
		})
}
