package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/nginx"
	"github.com/portlama/portlama/internal/privilege"
	"github.com/portlama/portlama/internal/relay"
)

func newPanelCmd() *cobra.Command {
	return relayCommand("panel", "Run the panel API (unit portlama-panel) on 127.0.0.1:3100, behind nginx",
		func(ctx context.Context, r config.Relay) error {
			log := newLogger()
			// An installed relay's panel runs unprivileged: nginx -t and
			// reloads go through the root helper (package privilege).
			var ctl nginx.Controller
			if r.Layout == config.ProductionLayout() {
				ctl = privilege.Nginx{}
			}
			svc, err := relay.Open(r, ctl, log)
			if err != nil {
				return err
			}
			srv, err := relay.NewPanel(svc, version, log)
			if err != nil {
				return err
			}
			return srv.ListenAndServe(ctx)
		})
}
