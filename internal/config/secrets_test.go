package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const legacyPanel = `{"ip":"203.0.113.7","dataDir":"/etc/portlama","domain":"example.com","email":"a@example.com",
"panel2fa":{"enabled":true,"secret":"JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP","setupComplete":true},
"sessionSecret":"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
"onboarding":{"status":"COMPLETED"},"custom":{"kept":true}}`

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// A panel.json written before the secrets moved out is migrated on the
// first update (the panel does one at start): the secrets end up in
// panel-secrets.json (0600), panel.json (0640) keeps everything else and
// no secret, and nothing is lost.
func TestSecretsMigrateOutOfPanelJSON(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "panel.json")
	if err := os.WriteFile(path, []byte(legacyPanel), 0o640); err != nil {
		t.Fatal(err)
	}
	s := NewPanelStore(path)
	before, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if before.Panel2FA.Secret == nil || before.SessionSecret == nil {
		t.Fatal("legacy secrets not read before the migration")
	}
	if _, err := s.Update(func(c *PanelConfig) error { c.ServerID = "1b4e28ba-2fa1-4d2e-883f-0016d3cca427"; return nil }); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if strings.Contains(string(data), "JBSWY3DP") || strings.Contains(string(data), "00112233") ||
		strings.Contains(string(data), `"secret"`) || strings.Contains(string(data), "sessionSecret") {
		t.Fatalf("panel.json still holds a secret:\n%s", data)
	}
	if !strings.Contains(string(data), `"custom"`) {
		t.Fatalf("unknown key lost:\n%s", data)
	}
	if m := mode(t, path); m != 0o640 {
		t.Fatalf("panel.json mode %o", m)
	}
	if m := mode(t, s.SecretsPath()); m != 0o600 {
		t.Fatalf("panel-secrets.json mode %o", m)
	}
	var sec PanelSecrets
	raw, _ := os.ReadFile(s.SecretsPath())
	if err := json.Unmarshal(raw, &sec); err != nil || sec.Panel2FASecret == nil || *sec.Panel2FASecret != *before.Panel2FA.Secret ||
		sec.SessionSecret == nil || *sec.SessionSecret != *before.SessionSecret {
		t.Fatalf("secrets file %s", raw)
	}
	after, err := s.Load()
	if err != nil || !eqPtr(after.Panel2FA.Secret, before.Panel2FA.Secret) || !eqPtr(after.SessionSecret, before.SessionSecret) || !after.Panel2FA.Enabled {
		t.Fatalf("after migration: %+v %v", after, err)
	}
}

// Clearing secrets (2FA disabled) removes them from the secrets file, and
// setting them never writes them into panel.json.
func TestSecretsSetAndClear(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "panel.json")
	s := NewPanelStore(path)
	if _, err := s.Init(func(c *PanelConfig) error { c.IP, c.DataDir = "203.0.113.7", dir; return nil }); err != nil {
		t.Fatal(err)
	}
	seed, key := "JBSWY3DPEHPK3PXP", "abcdef"
	if _, err := s.Update(func(c *PanelConfig) error { c.Panel2FA.Secret, c.SessionSecret = &seed, &key; return nil }); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); strings.Contains(string(data), seed) || strings.Contains(string(data), key) {
		t.Fatalf("panel.json holds a secret:\n%s", data)
	}
	if c, _ := s.Load(); c.Panel2FA.Secret == nil || *c.Panel2FA.Secret != seed {
		t.Fatalf("seed not stored: %+v", c.Panel2FA)
	}
	if _, err := s.Update(func(c *PanelConfig) error { c.Panel2FA.Secret, c.SessionSecret = nil, nil; return nil }); err != nil {
		t.Fatal(err)
	}
	if raw, _ := os.ReadFile(s.SecretsPath()); strings.Contains(string(raw), seed) || strings.Contains(string(raw), key) {
		t.Fatalf("cleared secrets still stored: %s", raw)
	}
	if c, _ := s.Load(); c.Panel2FA.Secret != nil || c.SessionSecret != nil {
		t.Fatalf("cleared secrets loaded: %+v", c)
	}
	// A failed update changes neither file.
	beforeP, _ := os.ReadFile(path)
	beforeS, _ := os.ReadFile(s.SecretsPath())
	if _, err := s.Update(func(c *PanelConfig) error { c.Panel2FA.Secret = &seed; c.IP = "not an ip"; return nil }); err == nil {
		t.Fatal("invalid update accepted")
	}
	afterP, _ := os.ReadFile(path)
	afterS, _ := os.ReadFile(s.SecretsPath())
	if string(beforeP) != string(afterP) || string(beforeS) != string(afterS) {
		t.Fatal("a refused update changed a file")
	}
}
