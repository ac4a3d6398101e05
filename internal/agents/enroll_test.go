package agents

import (
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/pki"
)

func TestEnroll(t *testing.T) {
	e := newEnv(t)
	tok, err := e.m.CreateToken("laptop", []string{"panel:expose"}, []string{"blog"})
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Add(9 * time.Minute) // still valid
	res, err := e.m.Enroll(e.ctx, tok.Token, goodCSR(t))
	if err != nil {
		t.Fatal(err)
	}
	cert := parseCert(t, res.CertPEM)
	if cert.Subject.String() != "CN=agent:laptop,O=Portlama" {
		t.Errorf("subject = %s; the CSR's subject must be ignored", cert.Subject)
	}
	if !slices.Equal(res.CACertPEM, e.pki.CACertPEM()) {
		t.Error("caCert is not the relay CA")
	}
	roots := x509.NewCertPool()
	roots.AddCert(parseCert(t, res.CACertPEM))
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, CurrentTime: e.clock.Now()}); err != nil {
		t.Errorf("certificate does not verify: %v", err)
	}
	if pki.FormatSerial(cert.SerialNumber) != res.Serial || !cert.NotAfter.Equal(res.ExpiresAt) || res.Label != "laptop" {
		t.Errorf("result %+v does not describe the certificate", res)
	}
	en := e.entry(t, "laptop")
	if en.EnrollmentMethod != "hardware-bound" || en.Serial != res.Serial ||
		!slices.Equal(en.Capabilities, []string{"tunnels:read", "panel:expose"}) || !slices.Equal(en.AllowedSites, []string{"blog"}) {
		t.Errorf("registry entry = %+v", en)
	}
	if !e.tunnels.has("laptop") {
		t.Error("tunnel credentials not created")
	}
	toks, _ := e.m.Tokens()
	if len(toks) != 1 || !toks[0].Used || toks[0].UsedAt != "2026-03-01T12:09:00.000Z" {
		t.Errorf("token after enrollment = %+v", toks)
	}
	if _, ok, _ := e.m.Authenticate("laptop", res.Serial); !ok {
		t.Error("enrolled agent does not authenticate")
	}
	if _, err := e.m.AgentP12("laptop"); !errors.Is(err, ErrNotFound) {
		t.Errorf("enrolled agent has a P12: %v", err)
	}
}

func TestEnrollErrors(t *testing.T) {
	cases := []struct {
		name string
		// setup returns the token to use; it may change the environment.
		setup   func(t *testing.T, e *env) string
		csr     func(t *testing.T) string
		want    error  // sentinel, or nil for a CSR error
		details string // CSR error reason substring
		// usable: the token must still enroll afterwards (after fix runs).
		usable bool
		fix    func(t *testing.T, e *env)
	}{
		{
			name:  "unknown token",
			setup: func(t *testing.T, e *env) string { e.m.CreateToken("a", nil, nil); return strings.Repeat("0", 64) },
			csr:   goodCSR, want: ErrInvalidToken,
		},
		{
			name:  "empty token",
			setup: func(t *testing.T, e *env) string { e.m.CreateToken("a", nil, nil); return "" },
			csr:   goodCSR, want: ErrInvalidToken,
		},
		{
			name: "token reuse",
			setup: func(t *testing.T, e *env) string {
				tok, _ := e.m.CreateToken("a", nil, nil)
				if _, err := e.m.Enroll(e.ctx, tok.Token, goodCSR(t)); err != nil {
					t.Fatal(err)
				}
				if _, err := e.m.Revoke(e.ctx, "a"); err != nil { // even with the label free again
					t.Fatal(err)
				}
				return tok.Token
			},
			csr: goodCSR, want: ErrTokenUsed,
		},
		{
			name: "expired token",
			setup: func(t *testing.T, e *env) string {
				tok, _ := e.m.CreateToken("a", nil, nil)
				e.clock.Add(10*time.Minute + time.Millisecond)
				return tok.Token
			},
			csr: goodCSR, want: ErrTokenExpired,
		},
		{
			name: "token older than an hour is purged",
			setup: func(t *testing.T, e *env) string {
				tok, _ := e.m.CreateToken("a", nil, nil)
				e.clock.Add(61 * time.Minute)
				return tok.Token
			},
			csr: goodCSR, want: ErrInvalidToken,
		},
		{
			name:  "malformed CSR",
			setup: func(t *testing.T, e *env) string { tok, _ := e.m.CreateToken("a", nil, nil); return tok.Token },
			csr: func(t *testing.T) string {
				return "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
			},
			details: "could not be parsed", usable: true,
		},
		{
			name:    "CSR of the wrong type",
			setup:   func(t *testing.T, e *env) string { tok, _ := e.m.CreateToken("a", nil, nil); return tok.Token },
			csr:     func(t *testing.T) string { return strings.ReplaceAll(goodCSR(t), "CERTIFICATE REQUEST", "CERTIFICATE") },
			details: "expected CERTIFICATE REQUEST", usable: true,
		},
		{
			name:    "CSR too long",
			setup:   func(t *testing.T, e *env) string { tok, _ := e.m.CreateToken("a", nil, nil); return tok.Token },
			csr:     func(t *testing.T) string { return goodCSR(t) + strings.Repeat("\n", 9000) },
			details: "too long", usable: true,
		},
		{
			name: "label taken after the token was issued",
			setup: func(t *testing.T, e *env) string {
				tok, _ := e.m.CreateToken("a", nil, nil)
				if _, err := e.m.IssueP12(e.ctx, "a", nil, nil); err != nil {
					t.Fatal(err)
				}
				return tok.Token
			},
			csr: goodCSR, want: ErrExists, usable: true,
			fix: func(t *testing.T, e *env) {
				if _, err := e.m.Revoke(e.ctx, "a"); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "tunnel credentials fail",
			setup: func(t *testing.T, e *env) string {
				tok, _ := e.m.CreateToken("a", nil, nil)
				e.tunnels.addErr = errors.New("acl write failed")
				return tok.Token
			},
			csr: goodCSR, usable: true,
			fix: func(t *testing.T, e *env) { e.tunnels.addErr = nil },
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			token := tc.setup(t, e)
			before, _ := e.m.List()
			_, err := e.m.Enroll(e.ctx, token, tc.csr(t))
			switch {
			case tc.want != nil:
				if !errors.Is(err, tc.want) {
					t.Fatalf("error = %v, want %v", err, tc.want)
				}
				if tc.want == ErrInvalidToken || tc.want == ErrTokenUsed || tc.want == ErrTokenExpired {
					if err.Error() != tc.want.Error() {
						t.Errorf("message %q", err.Error())
					}
				}
			case tc.details != "":
				var ce *pki.CSRError
				if !errors.As(err, &ce) || !strings.Contains(ce.Reason, tc.details) {
					t.Fatalf("error = %v, want a CSR error about %q", err, tc.details)
				}
			default:
				if err == nil {
					t.Fatal("Enroll succeeded")
				}
				var ce *pki.CSRError
				var le *LabelError
				if errors.As(err, &ce) || errors.As(err, &le) || errors.Is(err, ErrInvalidToken) {
					t.Fatalf("server failure reported as a client error: %v", err)
				}
			}
			after, _ := e.m.List()
			if len(after) != len(before) {
				t.Errorf("failed enrollment changed the registry: %d → %d entries", len(before), len(after))
			}
			if !tc.usable {
				return
			}
			if tc.fix != nil {
				tc.fix(t, e)
			}
			if _, err := e.m.Enroll(e.ctx, token, goodCSR(t)); err != nil {
				t.Errorf("token not usable after the failure: %v", err)
			}
		})
	}
}

func TestRevoke(t *testing.T) {
	e := newEnv(t)
	res, err := e.m.IssueP12(e.ctx, "home", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Add(time.Hour)
	rev, err := e.m.Revoke(e.ctx, "home")
	if err != nil {
		t.Fatal(err)
	}
	if rev.Serial != res.Serial || rev.ReloadErr != nil {
		t.Errorf("revocation = %+v", rev)
	}
	if revoked, _ := e.pki.IsRevoked(res.Serial); !revoked {
		t.Error("serial not on the revocation list")
	}
	list, _ := e.pki.RevokedList()
	if len(list) != 1 || list[0].Label != "agent:home" {
		t.Errorf("revocation list = %+v", list)
	}
	crl, err := e.pki.CRL()
	if err != nil || len(crl.RevokedCertificateEntries) != 1 || pki.FormatSerial(crl.RevokedCertificateEntries[0].SerialNumber) != res.Serial {
		t.Errorf("CRL does not list the serial: %v", err)
	}
	if e.reloader.count() != 1 {
		t.Errorf("nginx reloaded %d times", e.reloader.count())
	}
	en := e.entry(t, "home")
	if !en.Revoked || en.RevokedAt != "2026-03-01T13:00:00.000Z" {
		t.Errorf("entry = %+v", en)
	}
	if _, err := os.Stat(filepath.Join(e.pki.Dir(), "agents", "home")); !errors.Is(err, os.ErrNotExist) {
		t.Error("agent directory not deleted")
	}
	if e.tunnels.has("home") {
		t.Error("tunnel credentials not removed")
	}
	_, err = e.m.Lookup("home")
	wantLabelErr(t, err, ErrNotFound, `Agent certificate "home" not found`)
	_, err = e.m.AgentP12("home")
	wantLabelErr(t, err, ErrNotFound, "")
	_, err = e.m.Revoke(e.ctx, "home")
	wantLabelErr(t, err, ErrNotFound, `Agent certificate "home" not found`)
	_, err = e.m.Revoke(e.ctx, "../../etc")
	wantLabelErr(t, err, ErrNotFound, "")

	// The label can be reused, by token and by P12.
	tok, err := e.m.CreateToken("home", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.m.Enroll(e.ctx, tok.Token, goodCSR(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := e.m.Authenticate("home", again.Serial); !ok {
		t.Error("re-enrolled agent does not authenticate")
	}
	if _, ok, _ := e.m.Authenticate("home", res.Serial); ok {
		t.Error("old certificate of a re-enrolled label authenticates")
	}
	if all, _ := e.m.List(); len(all) != 2 || !all[0].Revoked || all[1].Revoked {
		t.Errorf("registry = %+v", all)
	}
	if _, err := e.m.Revoke(e.ctx, "home"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.IssueP12(e.ctx, "home", nil, nil); err != nil {
		t.Errorf("IssueP12 for a revoked label: %v", err)
	}

	// A failed reload is reported but the revocation stands.
	e.reloader.err = errors.New("nginx -t failed")
	rev, err = e.m.Revoke(e.ctx, "home")
	if err != nil || rev.ReloadErr == nil {
		t.Errorf("revoke with failing reload: %+v %v", rev, err)
	}
}

func TestRevokeRetriesAfterTunnelFailure(t *testing.T) {
	e := newEnv(t)
	res, _ := e.m.IssueP12(e.ctx, "home", nil, nil)
	e.tunnels.removeErr = errors.New("acl.json locked")
	if _, err := e.m.Revoke(e.ctx, "home"); err == nil {
		t.Fatal("Revoke succeeded although tunnel credentials stayed")
	}
	if revoked, _ := e.pki.IsRevoked(res.Serial); !revoked {
		t.Error("serial must be revoked before anything else")
	}
	if en := e.entry(t, "home"); en.Revoked {
		t.Error("entry marked revoked although the tunnel credentials were not removed")
	}
	e.tunnels.removeErr = nil
	if _, err := e.m.Revoke(e.ctx, "home"); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if list, _ := e.pki.RevokedList(); len(list) != 1 {
		t.Errorf("retry duplicated the revocation: %+v", list)
	}
	if e.tunnels.has("home") || !e.entry(t, "home").Revoked {
		t.Error("retry did not finish the revocation")
	}
}

func TestRekey(t *testing.T) {
	e := newEnv(t)
	old, err := e.m.IssueP12(e.ctx, "home", []string{"sites:write"}, []string{"blog"})
	if err != nil {
		t.Fatal(err)
	}
	before := e.entry(t, "home")

	// Refusals leave everything as it was.
	_, err = e.m.Rekey(e.ctx, "nobody", goodCSR(t))
	wantLabelErr(t, err, ErrNotFound, `Agent certificate "nobody" not found`)
	_, err = e.m.Rekey(e.ctx, "home", "garbage")
	var ce *pki.CSRError
	if !errors.As(err, &ce) {
		t.Fatalf("bad CSR: %v", err)
	}
	if !entriesEqual(e.entry(t, "home"), before) {
		t.Error("refused re-key changed the entry")
	}

	e.clock.Add(24 * time.Hour)
	res, err := e.m.Rekey(e.ctx, "home", goodCSR(t))
	if err != nil {
		t.Fatal(err)
	}
	cert := parseCert(t, res.CertPEM)
	if cert.Subject.String() != "CN=agent:home,O=Portlama" || res.Serial == old.Serial {
		t.Errorf("new certificate %s serial %s", cert.Subject, res.Serial)
	}
	en := e.entry(t, "home")
	if en.Serial != res.Serial || en.EnrollmentMethod != "hardware-bound" || en.ExpiresAt != pki.Timestamp(res.ExpiresAt) ||
		!slices.Equal(en.Capabilities, before.Capabilities) || !slices.Equal(en.AllowedSites, before.AllowedSites) || en.CreatedAt != before.CreatedAt {
		t.Errorf("entry after re-key = %+v", en)
	}
	list, _ := e.pki.RevokedList()
	if len(list) != 1 || list[0].Label != "agent:home (re-keyed)" || !pki.SerialsEqual(list[0].Serial, old.Serial) {
		t.Errorf("revocation list = %+v", list)
	}
	if e.reloader.count() != 1 {
		t.Errorf("reloads = %d", e.reloader.count())
	}
	if _, ok, _ := e.m.Authenticate("home", old.Serial); ok {
		t.Error("old certificate still authenticates")
	}
	if _, ok, _ := e.m.Authenticate("home", res.Serial); !ok {
		t.Error("new certificate does not authenticate")
	}
	if _, err := e.m.AgentP12("home"); !errors.Is(err, ErrNotFound) {
		t.Error("stale P12 kept after re-key")
	}
	// New tunnel credentials: sessions opened with the old key end.
	if !e.tunnels.has("home") || e.tunnels.count("remove home") != 1 || e.tunnels.count("add home") != 2 {
		t.Errorf("re-key did not rotate the tunnel credentials: %v", e.tunnels.calls)
	}
}

func TestRekeyRestoresRegistryWhenRevocationFails(t *testing.T) {
	e := newEnv(t)
	if _, err := e.m.IssueP12(e.ctx, "home", nil, nil); err != nil {
		t.Fatal(err)
	}
	before := e.entry(t, "home")
	os.WriteFile(filepath.Join(e.pki.Dir(), pki.RevokedFile), []byte("broken"), 0o600)
	if _, err := e.m.Rekey(e.ctx, "home", goodCSR(t)); err == nil {
		t.Fatal("Rekey succeeded without revoking the old serial")
	}
	if !entriesEqual(e.entry(t, "home"), before) {
		t.Error("registry not restored")
	}
}

func TestUpdates(t *testing.T) {
	e := newEnv(t)
	if _, err := e.m.IssueP12(e.ctx, "home", nil, nil); err != nil {
		t.Fatal(err)
	}
	caps, err := e.m.UpdateCapabilities("home", []string{"sites:write", "system:read"})
	if err != nil || !slices.Equal(caps, []string{"tunnels:read", "sites:write", "system:read"}) {
		t.Errorf("UpdateCapabilities = %q, %v", caps, err)
	}
	if en := e.entry(t, "home"); !slices.Equal(en.Capabilities, caps) {
		t.Errorf("stored capabilities %q", en.Capabilities)
	}
	if _, err := e.m.UpdateCapabilities("home", []string{"root"}); err == nil || err.Error() != "Invalid capability: root" {
		t.Errorf("invalid capability: %v", err)
	}
	if en := e.entry(t, "home"); !slices.Equal(en.Capabilities, caps) {
		t.Error("refused update changed capabilities")
	}
	sites, err := e.m.UpdateAllowedSites("home", []string{"blog", "docs"})
	if err != nil || !slices.Equal(sites, []string{"blog", "docs"}) || !slices.Equal(e.entry(t, "home").AllowedSites, sites) {
		t.Errorf("UpdateAllowedSites = %q, %v", sites, err)
	}
	if sites, err := e.m.UpdateAllowedSites("home", nil); err != nil || sites == nil || len(e.entry(t, "home").AllowedSites) != 0 {
		t.Errorf("clearing sites: %q %v", sites, err)
	}
	_, err = e.m.UpdateCapabilities("ghost", nil)
	wantLabelErr(t, err, ErrNotFound, `Agent certificate "ghost" not found`)
	_, err = e.m.UpdateAllowedSites("ghost", nil)
	wantLabelErr(t, err, ErrNotFound, "")
	if _, err := e.m.Revoke(e.ctx, "home"); err != nil {
		t.Fatal(err)
	}
	_, err = e.m.UpdateCapabilities("home", nil)
	wantLabelErr(t, err, ErrNotFound, "")
}

func TestExpiringSoon(t *testing.T) {
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		e    Entry
		want bool
	}{
		{Entry{ExpiresAt: pki.Timestamp(now.Add(31 * 24 * time.Hour))}, false},
		{Entry{ExpiresAt: pki.Timestamp(now.Add(30 * 24 * time.Hour))}, true},
		{Entry{ExpiresAt: pki.Timestamp(now.Add(-time.Hour))}, true},
		{Entry{ExpiresAt: pki.Timestamp(now.Add(time.Hour)), Revoked: true}, false},
	}
	for _, tc := range cases {
		if got := tc.e.ExpiringSoon(now); got != tc.want {
			t.Errorf("ExpiringSoon(%+v) = %v", tc.e, got)
		}
	}
}

func TestConcurrentEnrollSameToken(t *testing.T) {
	e := newEnv(t)
	tok, err := e.m.CreateToken("laptop", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	csr := goodCSR(t)
	const n = 6
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, errs[i] = e.m.Enroll(e.ctx, tok.Token, csr) })
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case errors.Is(err, ErrTokenUsed):
		default:
			t.Errorf("unexpected error %v", err)
		}
	}
	if wins != 1 {
		t.Errorf("%d enrollments with one token succeeded", wins)
	}
	if list, _ := e.m.List(); len(list) != 1 {
		t.Errorf("registry has %d entries", len(list))
	}
}
