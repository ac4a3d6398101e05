package agent

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
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
	// Live is what the running `portlama-agent run` reports (its state
	// file); nil when it never ran. LiveRunning says whether that process
	// still runs.
	Live        *RunnerState `json:"live,omitempty"`
	LiveRunning bool         `json:"liveRunning"`
}

// TunnelStatePath is where `portlama-agent run` keeps the live state of
// label's tunnels (RunnerConfig.StateFile).
func (h Home) TunnelStatePath(label string) string {
	return filepath.Join(h.LabelDir(label), "tunnels-state.json")
}

// ReadTunnelState reads a state file written by the runner and reports
// whether the process that wrote it is still running.
func ReadTunnelState(path string) (*RunnerState, bool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	var st RunnerState
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, false, err
	}
	return &st, processAlive(st.PID), nil
}

// processAlive reports whether pid runs (signal 0; macOS and Linux).
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// GetStatus loads label's identity and asks the relay for its health and the
// agent's tunnels, and reads the running agent's live tunnel state. Relay
// failures are reported in the result, not as an error; only a broken
// local configuration is an error.
func GetStatus(ctx context.Context, h Home, label string) (StatusReport, error) {
	id, err := h.LoadIdentity(label)
	if err != nil {
		return StatusReport{}, err
	}
	r := StatusReport{
		Label: label, PanelURL: id.Profile.PanelURL, RelayLabel: id.Profile.RelayLabel,
		Serial: id.Profile.Serial, CertExpiry: id.Leaf.NotAfter, Tunnels: []AgentTunnel{},
	}
	if live, running, err := ReadTunnelState(h.TunnelStatePath(label)); err == nil {
		r.Live, r.LiveRunning = live, running
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
