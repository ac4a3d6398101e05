package agent

import (
	"context"
	"time"
)

// StatusReport is what `portlama-agent status` shows for one label.
type StatusReport struct {
	Label      string    `json:"label"`
	PanelURL   string    `json:"panelUrl"`
	RelayLabel string    `json:"relayLabel"`
	Serial     string    `json:"serial"`
	CertExpiry time.Time `json:"certExpiry"`
	// RelayReachable is true when /api/health answered ok.
	RelayReachable bool   `json:"relayReachable"`
	RelayVersion   string `json:"relayVersion,omitempty"`
	RelayError     string `json:"relayError,omitempty"`
	// Tunnels are the enabled tunnels from agent-config.
	Tunnels      []AgentTunnel `json:"tunnels"`
	TunnelsError string        `json:"tunnelsError,omitempty"`
}

// GetStatus loads label's identity and asks the relay for its health and the
// agent's tunnels. Relay failures are reported in the result, not as an
// error; only a broken local configuration is an error.
func GetStatus(ctx context.Context, h Home, label string) (StatusReport, error) {
	id, err := h.LoadIdentity(label)
	if err != nil {
		return StatusReport{}, err
	}
	r := StatusReport{
		Label: label, PanelURL: id.Profile.PanelURL, RelayLabel: id.Profile.RelayLabel,
		Serial: id.Profile.Serial, CertExpiry: id.Leaf.NotAfter, Tunnels: []AgentTunnel{},
	}
	tc, err := id.PanelTLSConfig()
	if err != nil {
		return r, err
	}
	c := NewClient(id.Profile.PanelURL, tc)
	defer c.CloseIdle()
	if hl, err := c.Health(ctx); err != nil {
		r.RelayError = err.Error()
	} else {
		r.RelayReachable, r.RelayVersion = true, hl.Version
	}
	if cfg, err := c.AgentConfig(ctx); err != nil {
		r.TunnelsError = err.Error()
	} else {
		r.Tunnels = cfg.Tunnels
	}
	return r, nil
}
