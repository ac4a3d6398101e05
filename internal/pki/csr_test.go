package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"github.com/portlama/portlama/internal/pki/pkitest"
)

func csrDER(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	block, _ := pem.Decode([]byte(pkitest.CSR(t, key, "x")))
	return block.Bytes
}

func TestParseCSR(t *testing.T) {
	rsa2048, _ := pkitest.GenerateKey(2048)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	good := pkitest.CSR(t, rsa2048, "agent:x")
	goodEC := pkitest.CSR(t, ecKey(t, elliptic.P256()), "y")

	tampered := csrDER(t, rsa2048)
	tampered[len(tampered)-5] ^= 0xff // inside the signature
	wrongType := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: csrDER(t, rsa2048)}))
	withHeaders := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: csrDER(t, rsa2048)}))

	cases := []struct {
		name   string
		text   string
		reason string // substring of the CSRError reason; "" means accepted
	}{
		{"rsa 2048", good, ""},
		{"rsa 2048 with surrounding whitespace", "\n\n" + good + "\n \n", ""},
		{"ecdsa p256", goodEC, ""},
		{"ecdsa p384", pkitest.CSR(t, ecKey(t, elliptic.P384()), "z"), ""},
		{"empty", "", "not a PEM block"},
		{"not pem", "hello world", "not a PEM block"},
		{"too long", good + strings.Repeat(" ", MaxCSRLength), "too long"},
		{"wrong block type", wrongType, `"CERTIFICATE"`},
		{"two blocks", good + good, "exactly one PEM block"},
		{"leading text", "junk\n" + good, "exactly one PEM block"},
		{"trailing text", good + "junk", "exactly one PEM block"},
		{"broken block before", "-----BEGIN JUNK-----\n" + good, "exactly one PEM block"},
		{"pem headers", withHeaders, "headers"},
		{"garbage body", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte("garbage")})), "could not be parsed"},
		{"bad signature", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: tampered})), "signature is invalid"},
		{"rsa 1024", pkitest.CSR(t, small, "x"), "at least 2048"},
		{"ecdsa p224", pkitest.CSR(t, ecKey(t, elliptic.P224()), "x"), "P-256 or P-384"},
		{"ecdsa p521", pkitest.CSR(t, ecKey(t, elliptic.P521()), "x"), "P-256 or P-384"},
		{"ed25519", pkitest.CSR(t, edKey, "x"), "not supported"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			csr, err := ParseCSR(tc.text)
			if tc.reason == "" {
				if err != nil || csr == nil {
					t.Fatalf("ParseCSR refused a valid CSR: %v", err)
				}
				return
			}
			var ce *CSRError
			if !errors.As(err, &ce) {
				t.Fatalf("ParseCSR error = %v, want a *CSRError", err)
			}
			if !strings.Contains(ce.Reason, tc.reason) {
				t.Errorf("reason %q does not mention %q", ce.Reason, tc.reason)
			}
		})
	}
}

func TestSignCSRRefusesWeakKey(t *testing.T) {
	p, _ := newTestPKI(t)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(csrDER(t, small))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.SignCSR(csr, AgentCN("x")); err == nil {
		t.Error("SignCSR signed a 1024-bit key")
	}
}

func FuzzParseCSR(f *testing.F) {
	key, _ := pkitest.GenerateKey(2048)
	good := pkitest.CSR(f, key, "agent:x")
	f.Add(good)
	f.Add("")
	f.Add("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")
	f.Add(good + good)
	f.Add(strings.Replace(good, "CERTIFICATE REQUEST", "CERTIFICATE", 2))
	f.Fuzz(func(t *testing.T, text string) {
		csr, err := ParseCSR(text)
		if err != nil {
			var ce *CSRError
			if !errors.As(err, &ce) || ce.Reason == "" {
				t.Fatalf("error %v is not a *CSRError with a reason", err)
			}
			return
		}
		if len([]rune(text)) > MaxCSRLength {
			t.Fatal("accepted an over-long CSR")
		}
		if csr.CheckSignature() != nil {
			t.Fatal("accepted a CSR with a bad signature")
		}
		switch k := csr.PublicKey.(type) {
		case *rsa.PublicKey:
			if k.N.BitLen() < 2048 {
				t.Fatal("accepted a small RSA key")
			}
		case *ecdsa.PublicKey:
			if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
				t.Fatal("accepted a wrong curve")
			}
		default:
			t.Fatalf("accepted key type %T", k)
		}
	})
}
