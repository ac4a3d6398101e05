package servers

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/agent"
	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/keychain"
	"github.com/portlama/portlama/internal/relaytest"
	"github.com/portlama/portlama/internal/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	relaytest.Cleanup()
	os.Exit(code)
}

func TestRegistryAgainstRelay(t *testing.T) {
	st := relaytest.NewStack(t, relaytest.WithRelayCA())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	home := agent.Home{Dir: filepath.Join(t.TempDir(), ".portlama")}
	keys, err := keychain.Open(keychain.Options{Backend: keychain.BackendFile, File: filepath.Join(t.TempDir(), "secrets.json")})
	if err != nil {
		t.Fatal(err)
	}
	reg := New(home, keys)
	if _, err := reg.Current(); err != ErrNoServer {
		t.Fatalf("Current on an empty registry = %v", err)
	}
	ipCert, err := os.ReadFile(st.Info.IPCert)
	if err != nil {
		t.Fatal(err)
	}
	enroll := func(label string) Server {
		t.Helper()
		caps := []api.Capability{api.CapTunnelsRead, api.CapTunnelsWrite}
		tok, err := st.Admin().CreateEnrollmentToken(ctx, api.NewAgentRequest{Label: label, Capabilities: &caps})
		if err != nil {
			t.Fatal(err)
		}
		var steps []string
		s, err := reg.AddByToken(ctx, agent.SetupOptions{Token: tok.Token, PanelURL: st.Info.PanelURL, CACertPEM: ipCert,
			Report: func(e agent.Event) { steps = append(steps, e.Step+":"+e.Status) }})
		if err != nil {
			t.Fatalf("add %s: %v", label, err)
		}
		if s.ID != label || s.Kind != KindAgent || steps[len(steps)-1] != agent.StepComplete+":"+agent.StatusDone {
			t.Fatalf("server %+v, steps %v", s, steps)
		}
		return s
	}
	enroll("laptop")

	// The admin P12 of the relay: a wrong password is refused, nothing saved.
	p12, err := os.ReadFile(st.Info.AdminP12)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.ImportP12("relay-admin", st.Info.PanelURL, p12, "wrong"); err == nil {
		t.Fatal("a wrong P12 password was accepted")
	}
	if _, err := reg.ImportP12("laptop", st.Info.PanelURL, p12, st.Info.AdminP12Password); err == nil {
		t.Fatal("an admin server took an agent's name")
	}
	adm, err := reg.ImportP12("relay-admin", st.Info.PanelURL, p12, st.Info.AdminP12Password)
	if err != nil {
		t.Fatal(err)
	}
	if cur, _ := reg.Current(); cur.ID != "relay-admin" {
		t.Fatalf("current after import = %+v", cur)
	}
	if _, pw, err := reg.AdminP12("relay-admin"); err != nil || pw != st.Info.AdminP12Password {
		t.Fatalf("AdminP12 = %q, %v", pw, err)
	}
	raw, _ := os.ReadFile(reg.Path())
	if strings.Contains(string(raw), st.Info.AdminP12Password) {
		t.Fatal("the P12 password is in servers.json")
	}
	for _, p := range []string{reg.Path(), adm.AdminP12} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", p, fi.Mode(), err)
		}
	}

	if err := reg.Use("laptop"); err != nil {
		t.Fatal(err)
	}
	if cur, _ := reg.Current(); cur.ID != "laptop" {
		t.Fatalf("current after use = %+v", cur)
	}
	if err := reg.Use("ghost"); err == nil {
		t.Fatal("Use of an unknown server succeeded")
	}

	// Remove revokes the agent's certificate on the relay.
	rm, err := reg.Remove(ctx, "laptop")
	if err != nil || !rm.Revoked || rm.Warning != "" {
		t.Fatalf("remove laptop = %+v, %v", rm, err)
	}
	agents, err := st.Admin().ListAgents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range agents {
		if a.Label == "laptop" && !a.Revoked {
			t.Fatal("laptop is not revoked on the relay")
		}
	}
	if _, err := os.Stat(home.LabelDir("laptop")); !os.IsNotExist(err) {
		t.Fatalf("the agent's directory is still there: %v", err)
	}

	// An unreachable relay: removed here, with a warning.
	enroll("desk")
	cfgPath := home.Paths("desk").Config
	var prof map[string]any
	data, _ := os.ReadFile(cfgPath)
	if err := json.Unmarshal(data, &prof); err != nil {
		t.Fatal(err)
	}
	prof["panelUrl"] = "https://127.0.0.1:" + strconv.Itoa(testutil.FreePort(t))
	data, _ = json.Marshal(prof)
	if err := os.WriteFile(cfgPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	rm, err = reg.Remove(ctx, "desk")
	if err != nil || rm.Revoked || !strings.Contains(rm.Warning, "Certificates page") {
		t.Fatalf("remove desk = %+v, %v", rm, err)
	}

	if _, err := reg.Remove(ctx, "relay-admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Get("p12-password/relay-admin"); err == nil {
		t.Fatal("the P12 password stayed in the keychain")
	}
	f, err := reg.List()
	if err != nil || len(f.Servers) != 0 || f.Current != "" {
		t.Fatalf("registry after removals %+v, %v", f, err)
	}
}
