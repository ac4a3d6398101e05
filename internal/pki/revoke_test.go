package pki

import (
	"context"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/portlama/portlama/internal/testutil"
)

func TestSerials(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		n, err := NewSerial()
		if err != nil {
			t.Fatal(err)
		}
		if n.Sign() <= 0 || n.BitLen() > 128 {
			t.Fatalf("serial %x is not a positive 128-bit number", n)
		}
		s := FormatSerial(n)
		if s != strings.ToUpper(s) || len(s)%2 != 0 {
			t.Errorf("FormatSerial = %q, want upper-case hex in whole bytes", s)
		}
		if seen[s] {
			t.Fatalf("serial %s repeated", s)
		}
		seen[s] = true
	}
	if got := FormatSerial(big.NewInt(0xabc)); got != "0ABC" {
		t.Errorf("FormatSerial(0xabc) = %q", got)
	}
	for in, want := range map[string]string{
		"0ABC": "ABC", "abc": "ABC", "000aBc": "ABC", "ABC": "ABC", "0": "0", "": "0", "00": "0", " 0a ": "A", "0a:1b": "A1B", "0 000": "0",
	} {
		if got := NormalizeSerial(in); got != want {
			t.Errorf("NormalizeSerial(%q) = %q, want %q", in, got, want)
		}
	}
	if !SerialsEqual("00ff", "FF") || SerialsEqual("FF", "FE") {
		t.Error("SerialsEqual wrong")
	}
}

func TestParseSerial(t *testing.T) {
	for in, want := range map[string]string{"0a1b": "A1B", "A1B": "A1B", "00": "0", "0a:1b": "A1B"} {
		if got, ok := ParseSerial(in); !ok || got != want {
			t.Errorf("ParseSerial(%q) = %q %v", in, got, ok)
		}
	}
	for _, bad := range []string{"", "xyz", "12 34", "-1", " 0a", strings.Repeat("A", 129)} {
		if _, ok := ParseSerial(bad); ok {
			t.Errorf("ParseSerial(%q) accepted", bad)
		}
	}
	if SerialsEqual("zz", "zz") || SerialsEqual("", "0") {
		t.Error("a serial that is not hex equals something")
	}
}

// FuzzParseSerial: an accepted serial is normalised upper-case hex, and
// SerialsEqual agrees with comparing the parsed values.
func FuzzParseSerial(f *testing.F) {
	for _, s := range []string{"", "0", "0a1B", "0a:1b", "zz", " 01", "12 34"} {
		f.Add(s, "A1B")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		na, okA := ParseSerial(a)
		nb, okB := ParseSerial(b)
		if okA && (na != NormalizeSerial(na) || strings.Trim(na, "0123456789ABCDEF") != "") {
			t.Fatalf("ParseSerial(%q) = %q", a, na)
		}
		if SerialsEqual(a, b) != (okA && okB && na == nb) {
			t.Fatalf("SerialsEqual(%q, %q) disagrees with ParseSerial", a, b)
		}
	})
}

func FuzzNormalizeSerial(f *testing.F) {
	for _, s := range []string{"", "0", "00", "0a1B", "DEADBEEF", "zz", " 01 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := NormalizeSerial(s)
		if NormalizeSerial(n) != n {
			t.Fatalf("not idempotent: %q → %q → %q", s, n, NormalizeSerial(n))
		}
		if n != strings.ToUpper(n) || strings.ContainsAny(n, " :\t\n") {
			t.Fatalf("%q has lower-case letters", n)
		}
		if n != "0" && strings.HasPrefix(n, "0") {
			t.Fatalf("%q keeps a leading zero", n)
		}
		trimmed := strings.NewReplacer(" ", "", ":", "").Replace(s)
		if v, ok := new(big.Int).SetString(trimmed, 16); ok && strings.Trim(trimmed, "0123456789abcdefABCDEF") == "" {
			if want := strings.ToUpper(v.Text(16)); n != want {
				t.Fatalf("NormalizeSerial(%q) = %q, want %q", s, n, want)
			}
		}
	})
}

func crlSerials(t *testing.T, p *PKI) (map[string]bool, *big.Int) {
	t.Helper()
	crl, err := p.CRL()
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(p.CACert()); err != nil {
		t.Fatalf("CRL signature: %v", err)
	}
	out := map[string]bool{}
	for _, e := range crl.RevokedCertificateEntries {
		out[FormatSerial(e.SerialNumber)] = true
	}
	return out, crl.Number
}

func TestRevoke(t *testing.T) {
	p, _ := newTestPKI(t)
	_, n0 := crlSerials(t, p)
	a, _ := p.IssueClient(AgentCN("a"))
	b, _ := p.IssueClient(AgentCN("b"))

	if revoked, err := p.IsRevoked(a.Serial); err != nil || revoked {
		t.Fatalf("IsRevoked before revocation = %v, %v", revoked, err)
	}
	if err := p.Revoke(a.Serial, "agent:a"); err != nil {
		t.Fatal(err)
	}
	got, n1 := crlSerials(t, p)
	if !got[a.Serial] || got[b.Serial] || len(got) != 1 {
		t.Errorf("CRL after first revocation = %v", got)
	}
	if n1.Cmp(n0) <= 0 {
		t.Errorf("CRL number did not increase: %v → %v", n0, n1)
	}
	// Lower case and leading zeros still match.
	for _, form := range []string{a.Serial, strings.ToLower(a.Serial), "000" + a.Serial} {
		if revoked, err := p.IsRevoked(form); err != nil || !revoked {
			t.Errorf("IsRevoked(%q) = %v, %v", form, revoked, err)
		}
	}
	if revoked, _ := p.IsRevoked(b.Serial); revoked {
		t.Error("unrevoked serial reported revoked")
	}
	if err := p.Revoke(strings.ToLower(b.Serial), "agent:b"); err != nil {
		t.Fatal(err)
	}
	if err := p.Revoke(a.Serial, "agent:a again"); err != nil {
		t.Fatal(err)
	}
	got, n2 := crlSerials(t, p)
	if !got[a.Serial] || !got[b.Serial] || len(got) != 2 || n2.Cmp(n1) <= 0 {
		t.Errorf("CRL after second revocation = %v (number %v)", got, n2)
	}
	list, err := p.RevokedList()
	if err != nil || len(list) != 2 || list[0].Label != "agent:a" || list[1].Label != "agent:b" {
		t.Errorf("RevokedList = %+v, %v", list, err)
	}
	if _, err := time.Parse("2006-01-02T15:04:05.000Z", list[0].RevokedAt); err != nil {
		t.Errorf("revokedAt %q: %v", list[0].RevokedAt, err)
	}
	if err := p.Revoke("not hex", "x"); err == nil {
		t.Error("Revoke accepted a non-hex serial")
	}
	// A broken revoked.json is an error and is not overwritten.
	path := filepath.Join(p.Dir(), RevokedFile)
	os.WriteFile(path, []byte("{broken"), 0o600)
	if err := p.Revoke(b.Serial, "x"); err == nil {
		t.Error("Revoke succeeded on a broken revoked.json")
	}
	if _, err := p.IsRevoked(a.Serial); err == nil {
		t.Error("IsRevoked succeeded on a broken revoked.json")
	}
	if data, _ := os.ReadFile(path); string(data) != "{broken" {
		t.Error("broken revoked.json was overwritten")
	}
}

func TestCRLRenewal(t *testing.T) {
	clock := testutil.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	cfg := testConfig(t)
	cfg.Now = clock.Now
	p, _, err := Init(cfg, testIP)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := p.IssueClient(AgentCN("a"))
	if err := p.Revoke(a.Serial, "agent:a"); err != nil {
		t.Fatal(err)
	}
	_, n0 := crlSerials(t, p)

	if need, err := p.CRLNeedsRenewal(); err != nil || need {
		t.Fatalf("fresh CRL needs renewal: %v %v", need, err)
	}
	clock.Add(149 * 24 * time.Hour) // 31 days left
	if renewed, err := p.RenewCRLIfNeeded(); err != nil || renewed {
		t.Fatalf("CRL with 31 days left renewed: %v %v", renewed, err)
	}
	clock.Add(2 * 24 * time.Hour) // 29 days left
	if need, _ := p.CRLNeedsRenewal(); !need {
		t.Fatal("CRL with 29 days left does not need renewal")
	}
	if renewed, err := p.RenewCRLIfNeeded(); err != nil || !renewed {
		t.Fatalf("RenewCRLIfNeeded = %v, %v", renewed, err)
	}
	got, n1 := crlSerials(t, p)
	if !got[a.Serial] {
		t.Error("renewed CRL lost a revoked serial")
	}
	if n1.Cmp(n0) <= 0 {
		t.Errorf("CRL number did not increase: %v → %v", n0, n1)
	}
	crl, _ := p.CRL()
	if !crl.NextUpdate.Equal(clock.Now().Add(180 * 24 * time.Hour).Truncate(time.Second)) {
		t.Errorf("nextUpdate = %v", crl.NextUpdate)
	}
	if need, _ := p.CRLNeedsRenewal(); need {
		t.Error("renewed CRL still needs renewal")
	}
	// A missing CRL needs renewal.
	os.Remove(filepath.Join(p.Dir(), CRLFile))
	if need, err := p.CRLNeedsRenewal(); err != nil || !need {
		t.Errorf("missing CRL: need=%v err=%v", need, err)
	}
}

func TestRotateAdmin(t *testing.T) {
	cfg := testConfig(t)
	reloader := &countingReloader{}
	cfg.Reloader = reloader
	p, _, err := Init(cfg, testIP)
	if err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, cfg.Dir)
	old, _ := p.AdminCert()

	rot, err := p.RotateAdmin(context.Background(), LabelAdminRotated)
	if err != nil {
		t.Fatal(err)
	}
	if rot.ReloadErr != nil || reloader.calls != 1 {
		t.Errorf("reload: err=%v calls=%d", rot.ReloadErr, reloader.calls)
	}
	after := snapshot(t, cfg.Dir)
	for _, name := range []string{ClientKeyFile, ClientCertFile, ClientP12File} {
		if after[name+".bak"] != before[name] {
			t.Errorf("%s.bak does not hold the previous %s", name, name)
		}
		if after[name] == before[name] {
			t.Errorf("%s not replaced", name)
		}
		if fileMode(t, filepath.Join(cfg.Dir, name+".bak")) != fileMode(t, filepath.Join(cfg.Dir, name)) {
			t.Errorf("%s.bak mode differs", name)
		}
	}
	if after[P12PasswordFile] != rot.Password || len(rot.Password) != 32 || strings.Trim(rot.Password, "0123456789abcdef") != "" {
		t.Errorf("password %q (file %q)", rot.Password, after[P12PasswordFile])
	}
	if after[ClientP12File] != string(rot.P12) {
		t.Error("returned P12 differs from client.p12")
	}
	_, cert, _, err := pkcs12.DecodeChain(rot.P12, rot.Password)
	if err != nil {
		t.Fatal(err)
	}
	checkClientCert(t, p, cert, "admin")
	if FormatSerial(cert.SerialNumber) != rot.Serial || !cert.NotAfter.Equal(rot.ExpiresAt) {
		t.Error("Serial/ExpiresAt do not describe the new certificate")
	}
	if rot.OldSerial != FormatSerial(old.SerialNumber) {
		t.Errorf("OldSerial = %s", rot.OldSerial)
	}
	if revoked, _ := p.IsRevoked(rot.OldSerial); !revoked {
		t.Error("old admin serial not revoked")
	}
	if revoked, _ := p.IsRevoked(rot.Serial); revoked {
		t.Error("new admin serial revoked")
	}
	list, _ := p.RevokedList()
	if len(list) != 1 || list[0].Label != "admin (rotated)" {
		t.Errorf("revocation list = %+v", list)
	}
	if crl, _ := crlSerials(t, p); !crl[rot.OldSerial] {
		t.Error("old admin serial not in the CRL")
	}

	// A failing reload is reported, the rotation stays.
	reloader.err = errors.New("nginx: [emerg] test failed")
	rot2, err := p.RotateAdmin(context.Background(), LabelAdminReset)
	if err != nil {
		t.Fatal(err)
	}
	if rot2.ReloadErr == nil {
		t.Error("ReloadErr not set")
	}
	if cur, _ := p.AdminCert(); FormatSerial(cur.SerialNumber) != rot2.Serial {
		t.Error("rotation with a failed reload was undone")
	}
	if revoked, _ := p.IsRevoked(rot.Serial); !revoked {
		t.Error("second rotation did not revoke the first rotated serial")
	}
}

func TestRotateAdminFailureKeepsOldCredential(t *testing.T) {
	p, _ := newTestPKI(t)
	before := snapshot(t, p.Dir())
	// revoked.json that does not parse makes the revocation step fail.
	os.WriteFile(filepath.Join(p.Dir(), RevokedFile), []byte("not json"), 0o600)
	before[RevokedFile] = "not json"

	if _, err := p.RotateAdmin(context.Background(), LabelAdminRotated); err == nil {
		t.Fatal("RotateAdmin succeeded with a broken revocation list")
	}
	after := snapshot(t, p.Dir())
	for name, content := range before {
		if after[name] != content {
			t.Errorf("%s changed by a failed rotation", name)
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok {
			t.Errorf("failed rotation left %s behind", name)
		}
	}
}
