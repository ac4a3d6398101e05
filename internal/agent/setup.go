package agent

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/portlama/portlama/internal/store"
)

// Setup step identifiers, in the order they run.
const (
	StepGenerateKey = "generate-key"
	StepCreateCSR   = "create-csr"
	StepEnroll      = "enroll"
	StepSaveConfig  = "save-config"
	StepCheckHealth = "check-health"
	StepComplete    = "complete"
)

// Event statuses.
const (
	StatusRunning = "running"
	StatusDone    = "done"
	StatusError   = "error"
)

// Event is one setup progress event (one NDJSON line with --json).
type Event struct {
	Step        string `json:"step"`
	Status      string `json:"status"`
	Message     string `json:"message,omitempty"`
	Error       string `json:"error,omitempty"`
	Fingerprint string `json:"fingerprint,omitempty"`
	Label       string `json:"label,omitempty"`
	PanelURL    string `json:"panelUrl,omitempty"`
}

// NDJSONReporter returns a reporter writing one JSON object per line to w.
func NDJSONReporter(w io.Writer) func(Event) {
	var mu sync.Mutex
	enc := json.NewEncoder(w)
	return func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(e)
	}
}

// TextReporter returns a reporter writing plain progress lines to w. A
// failed step is named but its error is not repeated (Setup returns it).
func TextReporter(w io.Writer) func(Event) {
	return func(e Event) {
		switch {
		case e.Step == StepComplete:
			fmt.Fprintf(w, "Agent %q is set up for %s.\n", e.Label, e.PanelURL)
		case e.Status == StatusRunning:
			fmt.Fprintf(w, "[%s] %s...\n", e.Step, e.Message)
		case e.Status == StatusDone:
			fmt.Fprintf(w, "[%s] done: %s\n", e.Step, e.Message)
		case e.Status == StatusError:
			// The error itself is returned to the caller, which prints it.
			fmt.Fprintf(w, "[%s] failed\n", e.Step)
		}
	}
}

// SetupOptions are the inputs of Setup.
type SetupOptions struct {
	// Token is the one-time enrollment token.
	Token string
	// PanelURL is the panel, e.g. https://203.0.113.7:9292.
	PanelURL string
	// Label is the local label; empty means the label the relay returns.
	Label string
	// PanelFingerprint pins the panel's certificate (SHA-256).
	PanelFingerprint string
	// CACertPEM holds extra trust anchors for the panel (--ca-cert).
	CACertPEM []byte
	// Force replaces an existing label of the same name.
	Force bool
	// Report receives progress events; nil discards them.
	Report func(Event)
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// SetupResult describes a finished setup.
type SetupResult struct {
	Label   string
	Profile Profile
	Paths   Paths
	Version string
}

type stepError struct {
	step        string
	err         error
	fingerprint string
}

func (e *stepError) Error() string { return e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

// Setup enrolls this machine with a relay: it generates the key (written
// 0600, never sent), creates a CSR, calls POST /api/enroll over a verified
// connection (see the package documentation for the trust rules), saves
// the certificate, relay CA, panel pin and config under h, registers the
// label as current, and checks the relay's health with the new identity.
// Each step is reported; on failure the failing step gets an error event and
// the returned error says what went wrong.
func Setup(ctx context.Context, h Home, o SetupOptions) (*SetupResult, error) {
	report := o.Report
	if report == nil {
		report = func(Event) {}
	}
	res, err := setup(ctx, h, o, report)
	if err != nil {
		var se *stepError
		step := StepGenerateKey
		fp := ""
		if errors.As(err, &se) {
			step = se.step
			fp = se.fingerprint
		}
		report(Event{Step: step, Status: StatusError, Error: err.Error(), Fingerprint: fp})
		return nil, err
	}
	report(Event{Step: StepComplete, Status: StatusDone, Label: res.Label, PanelURL: res.Profile.PanelURL})
	return res, nil
}

func setup(ctx context.Context, h Home, o SetupOptions, report func(Event)) (_ *SetupResult, err error) {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	fail := func(step string, err error) error { return &stepError{step: step, err: err} }

	// Input checks belong to the first step: nothing has happened yet.
	if o.Token == "" {
		return nil, fail(StepGenerateKey, errors.New("an enrollment token is required (--token or PORTLAMA_ENROLLMENT_TOKEN)"))
	}
	panelURL, err := NormalizePanelURL(o.PanelURL)
	if err != nil {
		return nil, fail(StepGenerateKey, err)
	}
	if o.Label != "" {
		if err := ValidateLabel(o.Label); err != nil {
			return nil, fail(StepGenerateKey, err)
		}
		if !o.Force {
			if _, err := os.Stat(h.LabelDir(o.Label)); err == nil {
				return nil, fail(StepGenerateKey, fmt.Errorf("label %q is already set up in %s: choose another --label or pass --force to replace it", o.Label, h.Dir))
			}
		}
	}
	pin := ""
	if o.PanelFingerprint != "" {
		if pin, err = NormalizeFingerprint(o.PanelFingerprint); err != nil {
			return nil, fail(StepGenerateKey, err)
		}
	}
	host, err := hostOf(panelURL)
	if err != nil {
		return nil, fail(StepGenerateKey, err)
	}
	if len(o.CACertPEM) > 0 && !x509.NewCertPool().AppendCertsFromPEM(o.CACertPEM) {
		return nil, fail(StepGenerateKey, errors.New("--ca-cert file holds no PEM certificate"))
	}

	// 1. Key, in a private staging directory that becomes the label's.
	report(Event{Step: StepGenerateKey, Status: StatusRunning, Message: "Generating ECDSA P-256 key"})
	if err := os.MkdirAll(h.Dir, 0o700); err != nil {
		return nil, fail(StepGenerateKey, fmt.Errorf("create %s: %w", h.Dir, err))
	}
	staging := filepath.Join(h.Dir, ".setup-"+randomHex(6))
	if err := os.Mkdir(staging, 0o700); err != nil {
		return nil, fail(StepGenerateKey, fmt.Errorf("create %s: %w", staging, err))
	}
	defer func() {
		if err != nil {
			os.RemoveAll(staging)
		}
	}()
	sp := pathsIn(staging)
	key, err := GenerateKey()
	if err != nil {
		return nil, fail(StepGenerateKey, err)
	}
	keyPEM, err := EncodeKey(key)
	if err != nil {
		return nil, fail(StepGenerateKey, err)
	}
	if err := store.WriteFileAtomic(sp.Key, keyPEM, 0o600); err != nil {
		return nil, fail(StepGenerateKey, fmt.Errorf("write private key: %w", err))
	}
	report(Event{Step: StepGenerateKey, Status: StatusDone, Message: "Private key created (it never leaves this machine)"})

	// 2. CSR.
	report(Event{Step: StepCreateCSR, Status: StatusRunning, Message: "Creating certificate signing request"})
	csrPEM, err := CreateCSR(key, o.Label)
	if err != nil {
		return nil, fail(StepCreateCSR, err)
	}
	report(Event{Step: StepCreateCSR, Status: StatusDone, Message: "Certificate signing request created"})

	// 3. Enroll over a verified connection.
	report(Event{Step: StepEnroll, Status: StatusRunning, Message: "Enrolling with " + panelURL})
	v := &panelVerifier{host: host, pin: pin, roots: systemPoolWith(o.CACertPEM)}
	var (
		seenMu  sync.Mutex
		seen    *x509.Certificate
		seenPin bool
	)
	v.accepted = func(leaf *x509.Certificate, viaPin bool) {
		seenMu.Lock()
		defer seenMu.Unlock()
		seen, seenPin = leaf, viaPin
	}
	boot := NewClient(panelURL, v.tlsConfig(nil))
	defer boot.CloseIdle()
	enr, err := boot.Enroll(ctx, o.Token, csrPEM)
	if err != nil {
		se := &stepError{step: StepEnroll, err: fmt.Errorf("enroll: %w", err)}
		var ue *UntrustedPanelError
		if errors.As(err, &ue) {
			se.err = ue
			se.fingerprint = ue.Fingerprint
		}
		return nil, se
	}
	seenMu.Lock()
	panelLeaf, viaPin := seen, seenPin
	seenMu.Unlock()
	if panelLeaf == nil {
		return nil, fail(StepEnroll, errors.New("enroll: no panel certificate was verified"))
	}
	label := o.Label
	if label == "" {
		label = enr.Label
		if err := ValidateLabel(label); err != nil {
			return nil, fail(StepEnroll, fmt.Errorf("the relay returned label %q that cannot be used locally; run setup with --label: %w", enr.Label, err))
		}
	}
	certPEM := []byte(enr.Cert)
	if err := checkIssuedCert(certPEM, []byte(enr.CACert), key.Public()); err != nil {
		return nil, fail(StepEnroll, err)
	}
	report(Event{Step: StepEnroll, Status: StatusDone, Message: fmt.Sprintf("Enrolled as agent %q (serial %s, expires %s)", enr.Label, enr.Serial, enr.ExpiresAt)})

	// 4. Save.
	report(Event{Step: StepSaveConfig, Status: StatusRunning, Message: "Saving configuration in " + h.LabelDir(label)})
	trust := PanelTrust{Mode: TrustChain, Fingerprint: Fingerprint(panelLeaf.Raw)}
	if viaPin {
		trust.Mode = TrustPin
	}
	prof := Profile{
		Label: label, PanelURL: panelURL, RelayLabel: enr.Label, Serial: enr.Serial,
		ExpiresAt: enr.ExpiresAt, EnrolledAt: now().UTC().Format("2006-01-02T15:04:05.000Z"), PanelTrust: trust,
	}
	if err := saveProfileFiles(sp, prof, certPEM, []byte(enr.CACert), panelLeaf, o.CACertPEM); err != nil {
		return nil, fail(StepSaveConfig, err)
	}
	final := h.LabelDir(label)
	savedMsg := fmt.Sprintf("Saved as label %q (current)", label)
	if _, statErr := os.Stat(final); statErr == nil {
		// Replacing an existing label (--force, or the relay's label equals
		// an existing one): keep the old files aside, never delete a key.
		old := final + ".old-" + now().UTC().Format("20060102T150405")
		if err := os.Rename(final, old); err != nil {
			return nil, fail(StepSaveConfig, fmt.Errorf("move old %s aside: %w", final, err))
		}
		savedMsg += "; the previous files of this label were moved to " + old
	}
	if err := os.Rename(staging, final); err != nil {
		return nil, fail(StepSaveConfig, fmt.Errorf("move configuration into %s: %w", final, err))
	}
	if err := h.Register(RegistryEntry{Label: label, PanelURL: panelURL, EnrolledAt: prof.EnrolledAt}); err != nil {
		return nil, fail(StepSaveConfig, err)
	}
	report(Event{Step: StepSaveConfig, Status: StatusDone, Message: savedMsg})

	// 5. Health with the new identity and pinned trust.
	report(Event{Step: StepCheckHealth, Status: StatusRunning, Message: "Checking the relay with the new certificate"})
	version, err := CheckRelay(ctx, h, label)
	if err != nil {
		return nil, fail(StepCheckHealth, err)
	}
	report(Event{Step: StepCheckHealth, Status: StatusDone, Message: fmt.Sprintf("Relay reachable (version %s); certificate accepted", version)})
	return &SetupResult{Label: label, Profile: prof, Paths: h.Paths(label), Version: version}, nil
}

// CheckRelay calls /api/health and /api/tunnels with label's identity and
// returns the relay version.
func CheckRelay(ctx context.Context, h Home, label string) (string, error) {
	id, err := h.LoadIdentity(label)
	if err != nil {
		return "", err
	}
	tc, err := id.PanelTLSConfig()
	if err != nil {
		return "", err
	}
	c := NewClient(id.Profile.PanelURL, tc)
	defer c.CloseIdle()
	hl, err := c.Health(ctx)
	if err != nil {
		return "", fmt.Errorf("relay health check: %w", err)
	}
	if _, err := c.ListTunnels(ctx); err != nil {
		return hl.Version, fmt.Errorf("relay did not accept the new certificate: %w", err)
	}
	return hl.Version, nil
}

func saveProfileFiles(p Paths, prof Profile, certPEM, caPEM []byte, panelLeaf *x509.Certificate, extraCA []byte) error {
	files := []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{p.Cert, certPEM, 0o644},
		{p.CA, caPEM, 0o644},
		{p.PanelCert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: panelLeaf.Raw}), 0o644},
	}
	if len(extraCA) > 0 {
		files = append(files, struct {
			path string
			data []byte
			mode os.FileMode
		}{p.PanelCA, extraCA, 0o644})
	}
	for _, f := range files {
		if err := store.WriteFileAtomic(f.path, f.data, f.mode); err != nil {
			return fmt.Errorf("save %s: %w", filepath.Base(f.path), err)
		}
	}
	if err := store.NewDoc[Profile](p.Config, 0o600).Save(prof); err != nil {
		return fmt.Errorf("save config.json: %w", err)
	}
	return nil
}

// checkIssuedCert makes sure the relay signed our key with its CA and that
// the certificate is meant for client authentication.
func checkIssuedCert(certPEM, caPEM []byte, pub crypto.PublicKey) error {
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		return errors.New("enroll: the relay's certificate is not PEM")
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return fmt.Errorf("enroll: parse issued certificate: %w", err)
	}
	if eq, ok := pub.(interface{ Equal(x crypto.PublicKey) bool }); !ok || !eq.Equal(cert.PublicKey) {
		return errors.New("enroll: the issued certificate is not for this machine's key")
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return errors.New("enroll: the relay's CA certificate is not PEM")
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return fmt.Errorf("enroll: the issued certificate does not chain to the relay CA: %w", err)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
