package acme

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"
)

func selfSigned(t *testing.T, names []string, notAfter time.Time) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

type issuer struct {
	t     *testing.T
	calls int
	fail  bool
}

func (i *issuer) Obtain(_ context.Context, names []string) ([]byte, []byte, string, error) {
	i.calls++
	if i.fail {
		return nil, nil, "", errors.New("DNS for " + names[0] + " does not point to this server yet")
	}
	c, k := selfSigned(i.t, names, time.Now().Add(90*24*time.Hour))
	return c, k, "http-01", nil
}

func TestForHostChoosesWildcardThenIndividualThenIssues(t *testing.T) {
	ctx := context.Background()
	is := &issuer{t: t}
	s := &Store{Dir: t.TempDir(), Domain: func() string { return "example.com" }, Issuer: is}

	c, k := selfSigned(t, []string{"example.com", "*.example.com"}, time.Now().Add(60*24*time.Hour))
	if err := s.Install("example.com", c, k, []string{"example.com", "*.example.com"}, "dns-01"); err != nil {
		t.Fatal(err)
	}
	p, err := s.ForHost(ctx, "app.example.com")
	if err != nil || !p.Wildcard || p.Name != "example.com" {
		t.Fatalf("one label below: %+v %v; want the wildcard", p, err)
	}
	// Two labels below: the wildcard does not cover it; issue.
	p, err = s.ForHost(ctx, "a.b.example.com")
	if err != nil || p.Wildcard || p.Name != "a.b.example.com" || is.calls != 1 {
		t.Fatalf("two labels below: %+v %v calls %d", p, err, is.calls)
	}
	if st, err := os.Stat(p.Key); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode: %v %v", st, err)
	}
	// Now reused, not issued again.
	if _, err := s.ForHost(ctx, "a.b.example.com"); err != nil || is.calls != 1 {
		t.Fatalf("reuse: %v calls %d", err, is.calls)
	}
	// A wildcard that expires within 24 h is not used.
	c, k = selfSigned(t, []string{"example.com"}, time.Now().Add(time.Hour))
	s.Install("example.com", c, k, []string{"example.com"}, "dns-01")
	if p, _ := s.ForHost(ctx, "app.example.com"); p.Wildcard || is.calls != 2 {
		t.Fatalf("expiring wildcard reused: %+v calls %d", p, is.calls)
	}
}

func TestForHostWithoutIssuerAndBadNames(t *testing.T) {
	s := &Store{Dir: t.TempDir(), Domain: func() string { return "example.com" }}
	if _, err := s.ForHost(context.Background(), "app.example.com"); err == nil || !strings.Contains(err.Error(), "automatic issuance is not configured") {
		t.Fatalf("err = %v", err)
	}
	for _, bad := range []string{"../etc", "a/b.example.com", "", "APP.example.com"} {
		if _, err := s.ForHost(context.Background(), bad); err == nil {
			t.Fatalf("ForHost(%q) accepted", bad)
		}
		if err := s.Install(bad, nil, nil, nil, ""); err == nil {
			t.Fatalf("Install(%q) accepted", bad)
		}
	}
}

func TestDeleteIndividualKeepsSharedCertificates(t *testing.T) {
	s := &Store{Dir: t.TempDir(), Domain: func() string { return "example.com" }}
	for _, n := range []string{"example.com", "panel.example.com", "app.example.com"} {
		c, k := selfSigned(t, []string{n}, time.Now().Add(48*time.Hour))
		if err := s.Install(n, c, k, []string{n}, "http-01"); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"example.com", "panel.example.com", "app.example.com", "../x"} {
		s.DeleteIndividual(context.Background(), n)
	}
	names, _ := s.Names()
	if strings.Join(names, ",") != "example.com,panel.example.com" {
		t.Fatalf("left %v", names)
	}
}
