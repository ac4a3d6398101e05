package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/signal"
	"os/user"
	"strconv"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/spf13/cobra"

	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/install"
	"github.com/portlama/portlama/internal/nginx"
	"github.com/portlama/portlama/internal/privilege"
	"github.com/portlama/portlama/internal/system"
)

func newHelperCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "helper",
		Short: "The root helper: the fixed privileged actions the panel may ask for",
	}
	cmd.AddCommand(newHelperServeCmd(), newHelperNginxCheckCmd(), newHelperCallCmd())
	return cmd
}

func newHelperServeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Serve the helper socket (unit portlama-helper.service, started by portlama-helper.socket)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM)
			defer stop()
			lns, err := activation.Listeners()
			if err != nil {
				return fmt.Errorf("socket activation: %w", err)
			}
			if len(lns) != 1 {
				return errors.New("portlama helper serve runs from portlama-helper.socket (systemctl start portlama-helper.socket)")
			}
			ln, ok := lns[0].(*net.UnixListener)
			if !ok {
				return errors.New("portlama-helper.socket must be a Unix stream socket")
			}
			uid, err := serviceUID()
			if err != nil {
				return err
			}
			layout := config.ProductionLayout()
			srv, err := privilege.NewServer(privilege.ServerConfig{
				ServiceUID:  uid,
				Services:    system.Systemd{},
				NginxTest:   nginx.System{}.Test,
				Publish:     func() error { return nginx.Publish(layout) },
				IdleTimeout: time.Minute,
				Logger:      newLogger(),
			})
			if err != nil {
				return err
			}
			return srv.Serve(ctx, ln)
		},
	}
}

func serviceUID() (int, error) {
	u, err := lookupUID(install.ServiceUser)
	if err != nil {
		return 0, fmt.Errorf("the service user %s: %w (run portlama install)", install.ServiceUser, err)
	}
	return u, nil
}

func newHelperNginxCheckCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "nginx-check",
		Short: "Lint the nginx vhosts the panel wrote and publish the checked copies nginx reads (nginx.service runs it before every start and reload)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return nginx.Publish(config.ProductionLayout())
		},
	}
}

func newHelperCallCmd() *cobra.Command {
	var sock string
	cmd := &cobra.Command{
		Use:   "call <nginx-test | nginx-reload | service ACTION UNIT | enable UNIT>",
		Short: "Send one request to the root helper (diagnostics)",
		Args:  cobra.RangeArgs(1, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			r := privilege.Request{Verb: args[0]}
			switch {
			case len(args) == 3:
				r.Action, r.Unit = args[1], args[2]
			case len(args) == 2:
				r.Unit = args[1]
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			out, err := privilege.Client{Socket: sock}.Do(ctx, r)
			if out != "" {
				fmt.Fprintln(cmd.OutOrStdout(), out)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&sock, "socket", privilege.DefaultSocket, "the helper's socket")
	return cmd
}

func lookupUID(name string) (int, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(u.Uid)
}
