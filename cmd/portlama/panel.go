package main

import (
	"github.com/spf13/cobra"

	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/relay"
)

func newPanelCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "panel",
		Short: "Run the panel API (unit portlama-panel) on 127.0.0.1:3100, behind nginx",
		Args:  cobra.NoArgs,
	}
	relayPath := relayFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		r, err := config.LoadRelay(*relayPath)
		if err != nil {
			return err
		}
		log := newLogger()
		svc, err := relay.Open(r, nil, log)
		if err != nil {
			return err
		}
		srv, err := relay.NewPanel(svc, version, log)
		if err != nil {
			return err
		}
		return srv.ListenAndServe(cmd.Context())
	}
	return cmd
}
