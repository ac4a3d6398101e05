package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writePanel(t *testing.T, body string) *PanelStore {
	t.Helper()
	path := filepath.Join(t.TempDir(), "panel.json")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return NewPanelStore(path)
}

func TestPanelStoreDefaultsAndUnknownKeys(t *testing.T) {
	s := writePanel(t, `{"ip":"203.0.113.7","dataDir":"/etc/portlama","domain":null,"email":null,
		"onboarding":{"status":"FRESH","note":"kept"},"panel2fa":{"enabled":false,"future":1},"custom":{"a":[1,2]}}`)
	c, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxSiteSize != DefaultMaxSiteSize || c.AdminAuthMode != "p12" || c.RelayPortRange.Min != 20000 ||
		c.RelayPortRange.Max != 29999 || c.ACME.DirectoryURL != DefaultACMEDirectoryURL {
		t.Fatalf("defaults not applied: %+v", c)
	}
	if _, err := s.Merge([]byte(`{"onboarding":{"status":"DOMAIN_SET"},"domain":"example.com","panel2fa":{"setupComplete":true}}`)); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if m["custom"] == nil {
		t.Errorf("unknown top-level key dropped: %s", data)
	}
	ob := m["onboarding"].(map[string]any)
	if ob["note"] != "kept" || ob["status"] != "DOMAIN_SET" {
		t.Errorf("onboarding not merged shallowly: %v", ob)
	}
	tfa := m["panel2fa"].(map[string]any)
	if tfa["future"] != float64(1) || tfa["setupComplete"] != true || tfa["enabled"] != false {
		t.Errorf("panel2fa not merged shallowly: %v", tfa)
	}
	if m["domain"] != "example.com" {
		t.Errorf("domain not replaced: %v", m["domain"])
	}
	if !strings.HasSuffix(string(data), "}\n") || !strings.Contains(string(data), "\n  \"") {
		t.Errorf("not pretty-printed: %s", data)
	}
	st, err := os.Stat(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o640 {
		t.Errorf("mode = %o, want 640", st.Mode().Perm())
	}
}

func TestPanelConfigValidation(t *testing.T) {
	base := `"ip":"203.0.113.7","dataDir":"/etc/portlama"`
	cases := map[string]string{
		"missing ip":        `{"dataDir":"/x"}`,
		"ipv6":              `{"ip":"::1","dataDir":"/x"}`,
		"missing dataDir":   `{"ip":"1.2.3.4"}`,
		"range low":         `{` + base + `,"relayPortRange":{"min":80,"max":2000}}`,
		"range high":        `{` + base + `,"relayPortRange":{"min":20000,"max":70000}}`,
		"range reversed":    `{` + base + `,"relayPortRange":{"min":21000,"max":20000}}`,
		"range has 3100":    `{` + base + `,"relayPortRange":{"min":3000,"max":4000}}`,
		"range has 9090":    `{` + base + `,"relayPortRange":{"min":9090,"max":9090}}`,
		"range has 9091":    `{` + base + `,"relayPortRange":{"min":9000,"max":9095}}`,
		"range has 9292":    `{` + base + `,"relayPortRange":{"min":9200,"max":9300}}`,
		"bad status":        `{` + base + `,"onboarding":{"status":"DONE"}}`,
		"bad serverId":      `{` + base + `,"serverId":"nope"}`,
		"bad secret":        `{` + base + `,"sessionSecret":"xyz"}`,
		"wildcard no dns":   `{` + base + `,"acme":{"wildcard":true}}`,
		"auth mode":         `{` + base + `,"adminAuthMode":"hardware-bound"}`,
		"upper-case domain": `{` + base + `,"domain":"Example.com"}`,
		"bad domain":        `{` + base + `,"domain":"a.com;include /etc"}`,
		"empty domain":      `{` + base + `,"domain":""}`,
		"bad email":         `{` + base + `,"email":"nope"}`,
		"wrong type":        `{` + base + `,"maxSiteSize":"big"}`,
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := writePanel(t, body).Load(); err == nil {
				t.Fatalf("Load accepted %s", body)
			}
		})
	}
	if _, err := writePanel(t, `{`+base+`,"relayPortRange":{"min":30000,"max":30010}}`).Load(); err != nil {
		t.Fatalf("valid range refused: %v", err)
	}
}

func TestPanelStoreUpdateRefusesInvalidResult(t *testing.T) {
	s := writePanel(t, `{"ip":"203.0.113.7","dataDir":"/etc/portlama"}`)
	before, _ := os.ReadFile(s.Path())
	_, err := s.Update(func(c *PanelConfig) error { c.RelayPortRange = PortRange{Min: 9000, Max: 9500}; return nil })
	if err == nil {
		t.Fatal("invalid update accepted")
	}
	after, _ := os.ReadFile(s.Path())
	if string(before) != string(after) {
		t.Fatal("invalid update was written")
	}
}

func FuzzPanelConfigJSON(f *testing.F) {
	f.Add([]byte(`{"ip":"1.2.3.4","dataDir":"/d","x":{"y":1},"onboarding":{"status":"FRESH","z":true}}`))
	f.Add([]byte(`{"panel2fa":null,"onboarding":null}`))
	f.Add([]byte(`{"agentLimits":{"tunnels":3,"changesPerMinute":0,"changeBurst":-1,"other":1}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c PanelConfig
		if json.Unmarshal(data, &c) != nil {
			return
		}
		out, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		var c2 PanelConfig
		if err := json.Unmarshal(out, &c2); err != nil {
			t.Fatalf("re-read own output: %v", err)
		}
		out2, _ := json.Marshal(c2)
		if string(out) != string(out2) {
			t.Fatalf("round trip not stable:\n%s\n%s", out, out2)
		}
	})
}

func TestAgentLimits(t *testing.T) {
	var none AgentLimits
	if none.TunnelLimit() != DefaultAgentTunnels || none.ChangeRate() != DefaultChangesPerMinute || none.Burst() != DefaultChangeBurst {
		t.Fatalf("defaults %d %d %d", none.TunnelLimit(), none.ChangeRate(), none.Burst())
	}
	set := AgentLimits{Tunnels: 100, ChangesPerMinute: 60, ChangeBurst: 5}
	if set.TunnelLimit() != 100 || set.ChangeRate() != 60 || set.Burst() != 5 {
		t.Fatalf("set values %+v", set)
	}
	s := writePanel(t, `{"ip":"203.0.113.7","dataDir":"/etc/portlama"}`)
	for _, bad := range []AgentLimits{{Tunnels: -1}, {ChangesPerMinute: -5}, {ChangeBurst: 100001}} {
		if _, err := s.Update(func(c *PanelConfig) error { c.AgentLimits = bad; return nil }); err == nil || !strings.Contains(err.Error(), "agentLimits.") {
			t.Errorf("%+v accepted: %v", bad, err)
		}
	}
	// Absent limits stay absent in the file.
	if data, _ := os.ReadFile(s.Path()); strings.Contains(string(data), "agentLimits") {
		t.Fatalf("defaults written: %s", data)
	}
	c, err := s.Update(func(c *PanelConfig) error { c.AgentLimits.Tunnels = 7; return nil })
	if err != nil || c.AgentLimits.TunnelLimit() != 7 {
		t.Fatalf("set a limit: %+v %v", c.AgentLimits, err)
	}
}

func TestAddrsURLs(t *testing.T) {
	for _, tc := range []struct {
		addrs       Addrs
		ip, sub, d  string
		host, panel string
	}{
		{DefaultAddrs(), "203.0.113.7", "app", "example.com", "https://app.example.com", "https://203.0.113.7:9292"},
		{DefaultAddrs(), "2001:db8::7", "", "example.com", "https://example.com", "https://[2001:db8::7]:9292"},
		{Addrs{HTTPSPort: 8443, PanelIPPort: 9443}, "127.0.0.1", "panel", "example.com", "https://panel.example.com:8443", "https://127.0.0.1:9443"},
	} {
		if got := tc.addrs.HostURL(tc.sub, tc.d); got != tc.host {
			t.Errorf("HostURL(%q, %q) = %q, want %q", tc.sub, tc.d, got, tc.host)
		}
		if got := tc.addrs.PanelIPURL(tc.ip); got != tc.panel {
			t.Errorf("PanelIPURL(%q) = %q, want %q", tc.ip, got, tc.panel)
		}
	}
}
