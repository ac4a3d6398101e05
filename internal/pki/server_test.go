package pki

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"
)

func TestIssueServer(t *testing.T) {
	p, _ := newTestPKI(t)
	if _, _, err := p.IssueServer(nil, time.Hour); err == nil {
		t.Error("IssueServer accepted no names")
	}
	chain, key, err := p.IssueServer([]string{"panel.demo.localhost", "*.demo.localhost"}, 90*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(chain, key)
	if err != nil {
		t.Fatalf("certificate and key do not form a pair: %v", err)
	}
	if len(pair.Certificate) != 2 {
		t.Fatalf("fullchain has %d certificates, want leaf + CA", len(pair.Certificate))
	}
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	ca, _ := x509.ParseCertificate(pair.Certificate[1])
	if !ca.Equal(p.CACert()) {
		t.Error("second certificate is not the CA")
	}
	roots := x509.NewCertPool()
	roots.AddCert(p.CACert())
	for _, name := range []string{"panel.demo.localhost", "app.demo.localhost"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err != nil {
			t.Errorf("not valid for %s: %v", name, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "evil.example.com"}); err == nil {
		t.Error("valid for a name it was not issued for")
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("server certificate usable as a client certificate")
	}
	if leaf.IsCA {
		t.Error("server certificate is a CA")
	}
	if block, _ := pem.Decode(key); block == nil || block.Type != "EC PRIVATE KEY" {
		t.Error("key is not a PEM EC key")
	}
}
