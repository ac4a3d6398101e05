package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"
)

// IssueServer issues a TLS server certificate for dnsNames, signed by the
// relay CA, with an ECDSA P-256 key. Only the demo uses it: it has no public
// CA to get certificates for its made-up domain from, and its clients trust
// the relay CA. An installed relay's domain certificates come from ACME.
func (p *PKI) IssueServer(dnsNames []string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if len(dnsNames) == 0 {
		return nil, nil, errors.New("issue server certificate: no names")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("issue server certificate: %w", err)
	}
	serial, err := NewSerial()
	if err != nil {
		return nil, nil, err
	}
	now := p.cfg.now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject(dnsNames[0]),
		DNSNames:              dnsNames,
		NotBefore:             now.Add(-5 * time.Minute).UTC(),
		NotAfter:              now.Add(validity).UTC(),
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("issue server certificate for %s: %w", dnsNames[0], err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode server key: %w", err)
	}
	// fullchain: the leaf, then the CA, as ACME stores them.
	chain := append(encodeCertPEM(der), p.caPEM...)
	return chain, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}
