// Package pkitest helps tests that need the PKI: a key generator that hands
// out fixed, pre-generated RSA test keys (so tests do not spend seconds per
// 4096-bit key on a loaded machine) and a CSR builder.
//
// testkeys.pem holds three 4096-bit and three 2048-bit keys made once with
// crypto/rsa for tests only; they protect nothing.
package pkitest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	_ "embed"
	"encoding/pem"
	"fmt"
	"sync"
	"testing"
)

//go:embed testkeys.pem
var testKeysPEM []byte

var (
	mu   sync.Mutex
	pool map[int][]*rsa.PrivateKey
	next = map[int]int{}
)

func loadPool() {
	pool = map[int][]*rsa.PrivateKey{}
	rest := testKeysPEM
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return
		}
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			panic(fmt.Sprintf("pkitest: parse test key: %v", err))
		}
		rk := k.(*rsa.PrivateKey)
		pool[rk.N.BitLen()] = append(pool[rk.N.BitLen()], rk)
	}
}

// GenerateKey returns an RSA key of the requested size: one of the fixed
// test keys in turn for 2048 and 4096 bits, a freshly generated key for
// other sizes. Use it as pki.Config.GenerateKey in tests only.
func GenerateKey(bits int) (*rsa.PrivateKey, error) {
	mu.Lock()
	defer mu.Unlock()
	if pool == nil {
		loadPool()
	}
	keys := pool[bits]
	if len(keys) == 0 {
		return rsa.GenerateKey(rand.Reader, bits)
	}
	k := keys[next[bits]%len(keys)]
	next[bits]++
	return k, nil
}

// CSR returns a PEM CERTIFICATE REQUEST signed by key with subject
// `CN=<cn>, O=Evil Corp` and, when dnsNames are given, a SAN extension.
func CSR(t testing.TB, key crypto.Signer, cn string, dnsNames ...string) string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: cn, Organization: []string{"Evil Corp"}},
		DNSNames: dnsNames,
	}, key)
	if err != nil {
		t.Fatalf("create CSR: %v", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}
