package homeui

import (
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/portlama/portlama/internal/agent"
)

// TestEngineLeavesTunnelsToAnotherAgent: when another process keeps the
// label's tunnels up (its state file names it, alive), the UI starts no
// runner of its own and shows that process's state.
func TestEngineLeavesTunnelsToAnotherAgent(t *testing.T) {
	other := exec.Command("sleep", "60")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Process.Kill(); other.Wait() })
	h := agent.Home{Dir: t.TempDir()}
	if err := os.MkdirAll(h.LabelDir("laptop"), 0o700); err != nil {
		t.Fatal(err)
	}
	st := agent.RunnerState{PID: other.Process.Pid, Connection: "connected", Tunnels: []agent.TunnelState{{FQDN: "app.example.com", State: agent.TunnelConnected}}}
	data, _ := json.Marshal(st)
	if err := os.WriteFile(filepath.Join(h.LabelDir("laptop"), "tunnels-state.json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	e := &engine{home: h, log: slog.New(slog.DiscardHandler)}
	// No identity exists for laptop: starting a runner would fail.
	if err := e.ensure(t.Context(), "laptop"); err != nil {
		t.Fatalf("ensure: %v", err)
	}
	if e.runner != nil {
		t.Fatal("a second runner was started")
	}
	got := e.state("laptop")
	if got == nil || got.Connection != "connected" || len(got.Tunnels) != 1 {
		t.Fatalf("state %+v", got)
	}
	// The other process ends: the UI takes over (and here fails, as
	// there is no identity: the error says so).
	other.Process.Kill()
	other.Wait()
	if e.state("laptop") != nil {
		t.Fatal("the state of a stopped process is shown")
	}
	if err := e.ensure(t.Context(), "laptop"); err == nil {
		t.Fatal("took over without credentials")
	}
}
