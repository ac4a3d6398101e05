package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/agent/agenttest"
)

// run executes the CLI with args and returns stdout and the error.
func run(t *testing.T, home string, args ...string) (string, error) {
	t.Helper()
	out, _, err := runCtx(context.Background(), home, args...)
	return out, err
}

func runCtx(ctx context.Context, home string, args ...string) (stdout, stderr string, err error) {
	cmd := newRootCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(append([]string{"--home", home}, args...))
	err = cmd.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

type event struct {
	Step, Status, Message, Error, Fingerprint, Label string
	PanelURL                                         string `json:"panelUrl"`
}

func parseEvents(t *testing.T, out string) []event {
	t.Helper()
	var evs []event
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var e event
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("not an NDJSON event line: %q: %v", line, err)
		}
		evs = append(evs, e)
	}
	return evs
}

func TestSetupJSONWithTokenFromEnv(t *testing.T) {
	p := agenttest.NewPanel(t)
	home := t.TempDir()
	t.Setenv("PORTLAMA_ENROLLMENT_TOKEN", p.Token)
	out, err := run(t, home, "setup", "--json", "--panel-url", p.URL(), "--panel-fingerprint", p.Fingerprint())
	if err != nil {
		t.Fatalf("setup: %v\n%s", err, out)
	}
	evs := parseEvents(t, out)
	last := evs[len(evs)-1]
	if last.Step != "complete" || last.Status != "done" || last.Label != "home" || last.PanelURL != p.URL() {
		t.Fatalf("last event %+v", last)
	}
	steps := map[string]bool{}
	for _, e := range evs {
		if e.Status == "done" {
			steps[e.Step] = true
		}
	}
	for _, s := range []string{"generate-key", "create-csr", "enroll", "save-config", "check-health"} {
		if !steps[s] {
			t.Errorf("step %s not done in %v", s, evs)
		}
	}
}

func TestSetupJSONUntrustedPanel(t *testing.T) {
	p := agenttest.NewPanel(t)
	out, err := run(t, t.TempDir(), "setup", "--json", "--token", p.Token, "--panel-url", p.URL())
	if err == nil {
		t.Fatal("setup trusted an unknown self-signed panel certificate")
	}
	evs := parseEvents(t, out)
	last := evs[len(evs)-1]
	if last.Step != "enroll" || last.Status != "error" || last.Fingerprint != p.Fingerprint() || last.Error == "" {
		t.Fatalf("last event %+v", last)
	}
	if p.EnrollCalls.Load() != 0 {
		t.Fatal("token sent to an unverified panel")
	}
}

func TestCLIAgainstPanel(t *testing.T) {
	p := agenttest.NewPanel(t)
	home := t.TempDir()
	if out, err := run(t, home, "setup", "--token", p.Token, "--panel-url", p.URL(), "--panel-fingerprint", p.Fingerprint()); err != nil {
		t.Fatalf("setup: %v\n%s", err, out)
	}
	id := "0b0c4d62-3b7a-4d55-9a3e-3b1b7f0e6c11"
	p.SetTunnels([]map[string]any{{
		"id": id, "subdomain": "app", "fqdn": "app.example.com", "agentLabel": "home", "port": 8080,
		"targetHost": "fd00::5", "relayPort": 20001, "type": "app", "accessMode": "authenticated", "enabled": true,
	}})
	p.SetAgentConfig([]byte(`{"domain":"example.com","chiselServerUrl":"https://tunnel.example.com:443","auth":"home:pw",
		"fingerprint":"O6ssY+Ss0zrUaXnR0QSxtvlDW9pPHZTU2RqkG5xV3Eg=","tunnels":[{"id":"` + id + `","subdomain":"app",
		"fqdn":"app.example.com","port":8080,"targetHost":"fd00::5","relayPort":20001,"type":"app"}]}`))

	out, err := run(t, home, "tunnels", "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"FQDN", "app.example.com", "[fd00::5]:8080", "20001", "authenticated", "yes"} {
		if !strings.Contains(out, want) {
			t.Errorf("tunnels list lacks %q:\n%s", want, out)
		}
	}

	// Capability refusal: the panel's message verbatim, plus a hint.
	_, err = run(t, home, "tunnels", "create", "--subdomain", "web", "--port", "3000")
	if err == nil || !strings.Contains(err.Error(), "Insufficient certificate capability (HTTP 403)") || !strings.Contains(err.Error(), `"tunnels:write"`) {
		t.Fatalf("create err = %v", err)
	}

	out, err = run(t, home, "tunnels", "disable", "app")
	if err != nil || !strings.Contains(out, "app.example.com is now disabled") {
		t.Fatalf("disable: %v %s", err, out)
	}
	_, err = run(t, home, "tunnels", "enable", "nope")
	if err == nil || !strings.Contains(err.Error(), `no tunnel "nope"`) {
		t.Fatalf("enable unknown: %v", err)
	}
	_, err = run(t, home, "tunnels", "delete", "9b0c4d62-3b7a-4d55-9a3e-3b1b7f0e6c11")
	if err == nil || !strings.Contains(err.Error(), "Tunnel not found") {
		t.Fatalf("delete unknown: %v", err)
	}
	if _, err := run(t, home, "tunnels", "delete", "app"); err != nil {
		t.Fatalf("delete: %v", err)
	}

	out, err = run(t, home, "status")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Label:         home", "reachable (version 1.2.3)", "https://app.example.com → [fd00::5]:8080", "Service:"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}

	// A second relay side by side; it becomes current, the first stays usable.
	p2 := agenttest.NewPanel(t)
	if out, err := run(t, home, "setup", "--label", "work", "--token", p2.Token, "--panel-url", p2.URL(), "--ca-cert", writeTemp(t, p2.CertPEM)); err != nil {
		t.Fatalf("setup work: %v\n%s", err, out)
	}
	out, _ = run(t, home, "list")
	if !strings.Contains(out, "*  work") || !strings.Contains(out, "home") {
		t.Fatalf("list:\n%s", out)
	}
	out, err = run(t, home, "--label", "home", "status")
	if err != nil || !strings.Contains(out, p.URL()) {
		t.Fatalf("status --label home: %v\n%s", err, out)
	}
	if _, err := run(t, home, "use", "home"); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, home, "use", "nobody"); err == nil {
		t.Fatal("use of an unknown label succeeded")
	}
	if _, err := run(t, home, "--label", "nobody", "status"); err == nil {
		t.Fatal("status of an unknown label succeeded")
	}
}

func TestNotSetUp(t *testing.T) {
	for _, args := range [][]string{{"status"}, {"run"}, {"tunnels", "list"}, {"list"}} {
		_, err := run(t, t.TempDir(), args...)
		if err == nil || !strings.Contains(err.Error(), "portlama-agent setup") {
			t.Errorf("%v: err = %v, want the setup hint", args, err)
		}
	}
}

func writeTemp(t *testing.T, b []byte) string {
	t.Helper()
	f := t.TempDir() + "/panel.pem"
	if err := writeFile(f, b); err != nil {
		t.Fatal(err)
	}
	return f
}

func writeFile(path string, b []byte) error { return os.WriteFile(path, b, 0o600) }

func TestRunIdleUntilCancelled(t *testing.T) {
	p := agenttest.NewPanel(t)
	home := t.TempDir()
	if out, err := run(t, home, "setup", "--token", p.Token, "--panel-url", p.URL(), "--panel-fingerprint", p.Fingerprint()); err != nil {
		t.Fatalf("setup: %v\n%s", err, out)
	}
	p.SetAgentConfig([]byte(`{"domain":"example.com","chiselServerUrl":"https://tunnel.example.com:443","auth":"home:pw",
		"fingerprint":"O6ssY+Ss0zrUaXnR0QSxtvlDW9pPHZTU2RqkG5xV3Eg=","tunnels":[]}`))
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, logs, err := runCtx(ctx, home, "run", "--poll-interval", "50ms")
	if err != nil {
		t.Fatalf("run: %v\n%s", err, logs)
	}
	for _, want := range []string{"portlama-agent starting", "label=home", "no enabled tunnels", "portlama-agent stopped"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "home:pw") {
		t.Fatal("the tunnel credential was logged")
	}
}
