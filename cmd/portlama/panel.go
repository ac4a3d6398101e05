package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/memtrim"
	"github.com/portlama/portlama/internal/panel"
	"github.com/portlama/portlama/internal/privilege"
	"github.com/portlama/portlama/internal/relay"
)

func newPanelCmd() *cobra.Command {
	return relayCommand("panel", "Run the panel API (unit portlama-panel) on 127.0.0.1:3100, behind nginx",
		func(ctx context.Context, r config.Relay) error {
			log := newLogger()
			// The panel idles between a few bursts (provisioning, the web
			// UI's lists): what they grew the heap to goes back.
			go memtrim.Run(ctx, memtrim.Options{})
			opts := relay.Options{Config: r, Logger: log}
			// An installed relay's panel runs unprivileged: nginx -t,
			// reloads and unit actions go through the root helper
			// (package privilege).
			if r.Layout == config.ProductionLayout() {
				opts.Nginx = privilege.Nginx{}
				opts.Services = privilege.Services{}
			}
			svc, err := relay.Open(opts)
			if err != nil {
				return err
			}
			// What the state files say reaches nginx before the first
			// request (an upgrade's templates, a restored backup); a
			// failure leaves nginx as it was and the panel up to fix it.
			if err := svc.RewriteVhosts(ctx); err != nil {
				log.Error("nginx still serves the previous vhosts", "err", err)
			}
			srv, err := panel.New(panel.FromRelay(svc, version, log))
			if err != nil {
				return err
			}
			// The panel reads panel.json on every request: its reload
			// (SIGHUP) has nothing to re-read, and must not end it.
			go onHangup(ctx, log, func(context.Context) error { return nil })
			return srv.ListenAndServe(ctx)
		})
}
