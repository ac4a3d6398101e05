package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portlama/portlama/internal/agent/agenttest"
	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/panelclient"
)

func setupOpts(p *agenttest.Panel) SetupOptions {
	return SetupOptions{Token: p.Token, PanelURL: p.URL(), PanelFingerprint: p.Fingerprint()}
}

func TestSetupPinnedFingerprint(t *testing.T) {
	p := agenttest.NewPanel(t)
	h := Home{Dir: filepath.Join(t.TempDir(), "agent")}
	var events []Event
	o := setupOpts(p)
	o.Report = func(e Event) { events = append(events, e) }
	res, err := Setup(context.Background(), h, o)
	if err != nil {
		t.Fatalf("setup: %v", err)
	}
	if res.Label != "home" {
		t.Fatalf("label = %q, want the relay's label home", res.Label)
	}
	// Steps in order, each running then done, then complete.
	var got []string
	for _, e := range events {
		got = append(got, e.Step+":"+e.Status)
	}
	want := "generate-key:running generate-key:done create-csr:running create-csr:done enroll:running enroll:done " +
		"save-config:running save-config:done check-health:running check-health:done complete:done"
	if strings.Join(got, " ") != want {
		t.Fatalf("events:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	last := events[len(events)-1]
	if last.Label != "home" || last.PanelURL != p.URL() {
		t.Fatalf("complete event = %+v", last)
	}

	paths := h.Paths("home")
	for path, mode := range map[string]os.FileMode{paths.Key: 0o600, paths.Config: 0o600, paths.Dir: 0o700 | os.ModeDir, h.RegistryPath(): 0o600} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != mode {
			t.Errorf("%s mode = %v, want %v", path, st.Mode(), mode)
		}
	}
	prof, err := h.LoadProfile("home")
	if err != nil {
		t.Fatal(err)
	}
	if prof.PanelTrust.Mode != TrustPin || prof.PanelTrust.Fingerprint != p.Fingerprint() {
		t.Fatalf("trust = %+v, want pin of %s", prof.PanelTrust, p.Fingerprint())
	}
	reg, _ := h.LoadRegistry()
	if reg.Current != "home" || len(reg.Agents) != 1 || reg.Agents[0].PanelURL != p.URL() {
		t.Fatalf("registry = %+v", reg)
	}
	// No staging directory is left behind.
	if m, _ := filepath.Glob(filepath.Join(h.Dir, ".setup-*")); len(m) != 0 {
		t.Fatalf("staging left: %v", m)
	}
	// The stored key is the certified key and the identity works with mTLS.
	st, err := GetStatus(context.Background(), h, "home")
	if err != nil {
		t.Fatal(err)
	}
	if !st.RelayReachable || st.RelayVersion != "1.2.3" {
		t.Fatalf("status = %+v", st)
	}
}

func TestSetupRefusesUntrustedPanelWithoutSendingToken(t *testing.T) {
	p := agenttest.NewPanel(t)
	h := Home{Dir: t.TempDir()}
	for name, fp := range map[string]string{
		"no pin":    "",
		"wrong pin": strings.Repeat("00:", 31) + "00",
	} {
		t.Run(name, func(t *testing.T) {
			var events []Event
			_, err := Setup(context.Background(), h, SetupOptions{
				Token: p.Token, PanelURL: p.URL(), PanelFingerprint: fp,
				Report: func(e Event) { events = append(events, e) },
			})
			var ue *UntrustedPanelError
			if !errors.As(err, &ue) {
				t.Fatalf("err = %v, want UntrustedPanelError", err)
			}
			if ue.Fingerprint != p.Fingerprint() {
				t.Fatalf("reported fingerprint %s, want %s", ue.Fingerprint, p.Fingerprint())
			}
			if !strings.Contains(err.Error(), "--panel-fingerprint "+p.Fingerprint()) {
				t.Fatalf("message lacks the hint: %v", err)
			}
			last := events[len(events)-1]
			if last.Step != StepEnroll || last.Status != StatusError || last.Fingerprint != p.Fingerprint() {
				t.Fatalf("last event = %+v", last)
			}
			if n := p.EnrollCalls.Load(); n != 0 {
				t.Fatalf("enroll reached the server %d times over an untrusted connection", n)
			}
			if m, _ := filepath.Glob(filepath.Join(h.Dir, "*")); len(m) != 0 {
				t.Fatalf("files left after failure: %v", m)
			}
		})
	}
}

func TestSetupWithCACertUsesChainTrust(t *testing.T) {
	p := agenttest.NewPanel(t)
	h := Home{Dir: t.TempDir()}
	o := SetupOptions{Token: p.Token, PanelURL: p.URL() + "/", Label: "laptop", CACertPEM: p.CertPEM}
	res, err := Setup(context.Background(), h, o)
	if err != nil {
		t.Fatalf("setup: %v", err)
	}
	if res.Label != "laptop" || res.Profile.RelayLabel != "home" || res.Profile.PanelURL != p.URL() {
		t.Fatalf("result = %+v", res)
	}
	if res.Profile.PanelTrust.Mode != TrustChain {
		t.Fatalf("trust mode = %q, want chain", res.Profile.PanelTrust.Mode)
	}
	if _, err := os.Stat(h.Paths("laptop").PanelCA); err != nil {
		t.Fatalf("panel CA not saved: %v", err)
	}
}

func TestSetupAPIErrorVerbatimAndNoFilesKept(t *testing.T) {
	p := agenttest.NewPanel(t)
	h := Home{Dir: t.TempDir()}
	o := setupOpts(p)
	o.Token = strings.Repeat("cd", 32)
	_, err := Setup(context.Background(), h, o)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != 401 || ae.Message != "Invalid enrollment token" {
		t.Fatalf("err = %v, want 401 Invalid enrollment token", err)
	}
	entries, _ := os.ReadDir(h.Dir)
	if len(entries) != 0 {
		t.Fatalf("files left after failed enrollment: %v", entries)
	}
}

func TestSetupInputChecks(t *testing.T) {
	p := agenttest.NewPanel(t)
	h := Home{Dir: t.TempDir()}
	if err := os.MkdirAll(h.LabelDir("taken"), 0o700); err != nil {
		t.Fatal(err)
	}
	cases := map[string]SetupOptions{
		"no token":      {PanelURL: p.URL()},
		"http url":      {Token: "x", PanelURL: "http://127.0.0.1:9292"},
		"bad label":     {Token: "x", PanelURL: p.URL(), Label: "../etc"},
		"label exists":  {Token: "x", PanelURL: p.URL(), Label: "taken"},
		"bad pin":       {Token: "x", PanelURL: p.URL(), PanelFingerprint: "nothex"},
		"bad ca file":   {Token: "x", PanelURL: p.URL(), CACertPEM: []byte("junk")},
		"url with path": {Token: "x", PanelURL: p.URL() + "?a=b"},
	}
	for name, o := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Setup(context.Background(), h, o); err == nil {
				t.Fatal("setup succeeded, want an error")
			}
			if p.EnrollCalls.Load() != 0 {
				t.Fatal("enroll was called")
			}
		})
	}
}

func TestPinnedTrustRejectsOtherCertificate(t *testing.T) {
	p := agenttest.NewPanel(t)
	h := Home{Dir: t.TempDir()}
	if _, err := Setup(context.Background(), h, setupOpts(p)); err != nil {
		t.Fatal(err)
	}
	// An impostor at another address with its own self-signed certificate,
	// and the same CA-issued client expectations.
	other := agenttest.NewPanel(t)
	prof, _ := h.LoadProfile("home")
	prof.PanelURL = other.URL()
	if err := writeProfile(h, prof); err != nil {
		t.Fatal(err)
	}
	_, err := CheckRelay(context.Background(), h, "home")
	if !errors.Is(err, ErrFingerprintMismatch) {
		t.Fatalf("err = %v, want fingerprint mismatch", err)
	}
}

func TestChainTrustRejectsUnknownCertificate(t *testing.T) {
	p := agenttest.NewPanel(t)
	h := Home{Dir: t.TempDir()}
	if _, err := Setup(context.Background(), h, SetupOptions{Token: p.Token, PanelURL: p.URL(), CACertPEM: p.CertPEM}); err != nil {
		t.Fatal(err)
	}
	other := agenttest.NewPanel(t)
	prof, _ := h.LoadProfile("home")
	prof.PanelURL = other.URL()
	if err := writeProfile(h, prof); err != nil {
		t.Fatal(err)
	}
	_, err := CheckRelay(context.Background(), h, "home")
	var ue *UntrustedPanelError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %v, want UntrustedPanelError", err)
	}
}

func writeProfile(h Home, p Profile) error {
	b, _ := json.Marshal(p)
	return os.WriteFile(h.Paths(p.Label).Config, b, 0o600)
}

func TestNDJSONReporter(t *testing.T) {
	var buf bytes.Buffer
	r := NDJSONReporter(&buf)
	r(Event{Step: StepEnroll, Status: StatusRunning, Message: "x"})
	r(Event{Step: StepEnroll, Status: StatusError, Error: "boom"})
	r(Event{Step: StepComplete, Status: StatusDone, Label: "home", PanelURL: "https://1.2.3.4:9292"})
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := []string{
		`{"step":"enroll","status":"running","message":"x"}`,
		`{"step":"enroll","status":"error","error":"boom"}`,
		`{"step":"complete","status":"done","label":"home","panelUrl":"https://1.2.3.4:9292"}`,
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", buf.String(), strings.Join(want, "\n"))
	}
}

func TestNormalizeFingerprint(t *testing.T) {
	want := strings.TrimSuffix(strings.Repeat("AB:", 32), ":")
	for _, in := range []string{want, strings.ToLower(want), strings.ReplaceAll(want, ":", ""), "sha256:" + want, "SHA256=" + strings.ReplaceAll(want, ":", "")} {
		got, err := NormalizeFingerprint(in)
		if err != nil || got != want {
			t.Errorf("NormalizeFingerprint(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "AB", strings.Repeat("AB", 31), strings.Repeat("ZZ", 32), strings.Repeat("AB", 33)} {
		if _, err := NormalizeFingerprint(bad); err == nil {
			t.Errorf("NormalizeFingerprint(%q) accepted", bad)
		}
	}
}

func FuzzNormalizeFingerprint(f *testing.F) {
	f.Add("sha256:" + strings.Repeat("ab", 32))
	f.Add(strings.TrimSuffix(strings.Repeat("AB:", 32), ":"))
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := NormalizeFingerprint(s)
		if err != nil {
			return
		}
		if len(got) != 95 {
			t.Fatalf("normalised %q to %q", s, got)
		}
		again, err := NormalizeFingerprint(got)
		if err != nil || again != got {
			t.Fatalf("not idempotent: %q → %q (%v)", got, again, err)
		}
	})
}

func TestSetupForceReplacesLabelKeepingOldFiles(t *testing.T) {
	h := Home{Dir: t.TempDir()}
	p1 := agenttest.NewPanel(t)
	if _, err := Setup(context.Background(), h, setupOpts(p1)); err != nil {
		t.Fatal(err)
	}
	oldKey, _ := os.ReadFile(h.Paths("home").Key)
	p2 := agenttest.NewPanel(t)
	o := setupOpts(p2)
	o.Label = "home"
	if _, err := Setup(context.Background(), h, o); err == nil {
		t.Fatal("second setup of label home without --force succeeded")
	}
	o.Force = true
	if _, err := Setup(context.Background(), h, o); err != nil {
		t.Fatal(err)
	}
	prof, _ := h.LoadProfile("home")
	if prof.PanelURL != p2.URL() {
		t.Fatalf("panel URL %s, want the new relay", prof.PanelURL)
	}
	old, _ := filepath.Glob(filepath.Join(h.Dir, "home.old-*", "client.key"))
	if len(old) != 1 {
		t.Fatalf("old files not kept: %v", old)
	}
	if b, _ := os.ReadFile(old[0]); !bytes.Equal(b, oldKey) {
		t.Fatal("kept key differs from the old key")
	}
}

func TestAPIErrorMessages(t *testing.T) {
	err := Explain(panelclient.ParseError(403, "application/json", []byte(`{"error":"Insufficient certificate capability","details":{"required":"tunnels:write","granted":["tunnels:read"]}}`)))
	if got := err.Error(); !strings.HasPrefix(got, "Insufficient certificate capability (HTTP 403)") || !strings.Contains(got, `"tunnels:write" capability`) {
		t.Fatalf("got %q", got)
	}
	// nginx's HTML page and its JSON answer for a missing certificate.
	for _, e := range []error{
		panelclient.ParseError(400, "text/html", []byte("<html><head><title>400 No required SSL certificate was sent</title></head></html>")),
		panelclient.ParseError(400, "application/json", []byte(`{"error":"mTLS certificate required"}`)),
	} {
		err = Explain(e)
		if !errors.Is(err, api.ErrCertificateRequired) || !strings.Contains(err.Error(), "refused this agent's client certificate") {
			t.Fatalf("got %q", err)
		}
	}
	err = Explain(panelclient.ParseError(502, "text/plain", []byte("bad gateway")))
	if !strings.Contains(err.Error(), "Bad Gateway (HTTP 502)") {
		t.Fatalf("got %q", err)
	}
	if Explain(nil) != nil {
		t.Fatal("Explain(nil) is not nil")
	}
}

// A fingerprint given on the command line is a pin: a panel certificate
// that does not match it is refused even when it chains to a trusted root.
func TestSetupEnforcesGivenPinOverChain(t *testing.T) {
	p := agenttest.NewPanel(t)
	_, err := Setup(context.Background(), Home{Dir: t.TempDir()}, SetupOptions{
		Token: p.Token, PanelURL: p.URL(), CACertPEM: p.CertPEM,
		PanelFingerprint: strings.Repeat("00:", 31) + "00",
	})
	var ue *UntrustedPanelError
	if !errors.As(err, &ue) || ue.Fingerprint != p.Fingerprint() {
		t.Fatalf("err = %v, want UntrustedPanelError naming the presented fingerprint", err)
	}
	if n := p.EnrollCalls.Load(); n != 0 {
		t.Fatalf("token sent %d times to a panel that did not match the pin", n)
	}
}
