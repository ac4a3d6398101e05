package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/relaytest"
	"github.com/portlama/portlama/internal/system"
)

// The tunnel and agent lists say who is connected, from the tunnel
// server's own status; when the agent stops they say disconnected, and
// when the tunnel server does not answer they say nothing (unknown is not
// "disconnected").
func TestListsShowConnectionState(t *testing.T) {
	st := startStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin := st.Admin()

	tunnelsConnected := func(want *bool) error {
		list, err := admin.ListTunnels(ctx)
		if err != nil {
			return err
		}
		if len(list) == 0 {
			return fmt.Errorf("no tunnels")
		}
		for _, tn := range list {
			switch {
			case want == nil && tn.Connected != nil:
				return fmt.Errorf("%s: connected=%v, want the field absent", tn.FQDN, *tn.Connected)
			case want != nil && (tn.Connected == nil || *tn.Connected != *want):
				return fmt.Errorf("%s: connected=%v, want %v", tn.FQDN, tn.Connected, *want)
			}
		}
		return nil
	}
	agent := func() api.Agent {
		agents, err := admin.ListAgents(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range agents {
			if a.Label == st.Info.AgentLabel {
				return a
			}
		}
		t.Fatalf("agent %s not listed: %+v", st.Info.AgentLabel, agents)
		return api.Agent{}
	}

	yes, no := true, false
	if err := tunnelsConnected(&yes); err != nil {
		t.Fatalf("with the sample agent running: %v", err)
	}
	a := agent()
	if a.Connected == nil || !*a.Connected {
		t.Fatalf("agent: connected=%v, want true", a.Connected)
	}
	if since, err := time.Parse(time.RFC3339, a.ConnectedSince); err != nil || time.Since(since) > 10*time.Minute {
		t.Errorf("connectedSince %q", a.ConnectedSince)
	}

	if err := st.Supervisor.Stop(ctx, "portlama-agent"); err != nil {
		t.Fatal(err)
	}
	// The tunnel server drops the session when the agent's connection
	// closes; wait on the API saying so.
	if err := relaytest.Eventually(5*time.Second, func() error { return tunnelsConnected(&no) }); err != nil {
		t.Fatalf("after the agent stopped: %v", err)
	}
	if a := agent(); a.Connected == nil || *a.Connected || a.ConnectedSince != "" {
		t.Errorf("stopped agent: connected=%v since=%q", a.Connected, a.ConnectedSince)
	}

	if err := st.Supervisor.Stop(ctx, system.UnitTunnel); err != nil {
		t.Fatal(err)
	}
	if err := tunnelsConnected(nil); err != nil {
		t.Errorf("tunnel server stopped: %v", err)
	}
	if a := agent(); a.Connected != nil {
		t.Errorf("tunnel server stopped: agent connected=%v, want absent", *a.Connected)
	}
}
