package pki

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"
	"unicode"

	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

// Issued is a certificate signed by the CA.
type Issued struct {
	Cert     *x509.Certificate
	CertPEM  []byte
	Serial   string    // upper-case hex (FormatSerial)
	NotAfter time.Time // UTC
}

// Credential is an issued certificate together with its private key, made
// by the relay (admin certificate, agent P12 route).
type Credential struct {
	Issued
	Key    *rsa.PrivateKey
	KeyPEM []byte
}

// AgentCN returns the common name of agent label's certificate,
// "agent:<label>".
func AgentCN(label string) string { return "agent:" + label }

// NewSerial returns a random positive 128-bit serial number.
func NewSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("generate serial: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// FormatSerial writes a serial as upper-case hex in whole bytes, the way
// nginx prints $ssl_client_serial.
func FormatSerial(n *big.Int) string {
	s := strings.ToUpper(n.Text(16))
	if len(s)%2 == 1 {
		s = "0" + s
	}
	return s
}

// NormalizeSerial brings a hex serial into the form used for comparisons:
// whitespace and colons (as in "0A:1B") removed, upper case, leading zeros
// removed ("0" for zero). Compare serials only after normalising both sides.
func NormalizeSerial(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) || r == ':' {
			return -1
		}
		return unicode.ToUpper(r)
	}, s)
	s = strings.TrimLeft(s, "0")
	if s == "" {
		return "0"
	}
	return s
}

// ParseSerial checks a serial taken from a request (nginx's
// X-SSL-Client-Serial, a session cookie): hex digits, optionally with
// colons between bytes, at most 128 digits, no white space. It returns the
// serial normalised as NormalizeSerial does; ok is false otherwise.
func ParseSerial(s string) (serial string, ok bool) {
	if strings.IndexFunc(s, unicode.IsSpace) >= 0 {
		return "", false
	}
	n := NormalizeSerial(s)
	if len(n) > 128 {
		return "", false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return "", false
		}
	}
	if strings.TrimSpace(s) == "" {
		return "", false
	}
	return n, true
}

// SerialsEqual reports whether two hex serials are the same number; a
// serial that is not hex equals nothing.
func SerialsEqual(a, b string) bool {
	na, okA := ParseSerial(a)
	nb, okB := ParseSerial(b)
	return okA && okB && na == nb
}

// NewInstallerPassword returns the installer's P12 password: 24 random
// bytes, base64url (32 characters).
func NewInstallerPassword() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// NewHexPassword returns a P12 password for rotation, agents and reset: 16
// random bytes, hex (32 characters).
func NewHexPassword() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate password: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func subject(cn string) pkix.Name {
	return pkix.Name{CommonName: cn, Organization: []string{Organization}}
}

// newCA creates a self-signed CA certificate and key.
func newCA(cfg Config) (certPEM, keyPEM []byte, err error) {
	key, err := cfg.genKey(CAKeyBits)
	if err != nil {
		return nil, nil, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := NewSerial()
	if err != nil {
		return nil, nil, err
	}
	now := cfg.now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject(CACommonName),
		NotBefore:             now.Add(-5 * time.Minute).UTC(),
		NotAfter:              now.Add(CAValidity).UTC(),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SignatureAlgorithm:    x509.SHA256WithRSA,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create CA certificate: %w", err)
	}
	return encodeCertPEM(der), encodeKeyPEM(key), nil
}

// sign issues a client certificate for pub with the given common name.
func (p *PKI) sign(pub any, cn string) (*Issued, error) {
	serial, err := NewSerial()
	if err != nil {
		return nil, err
	}
	now := p.cfg.now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject(cn),
		NotBefore:             now.Add(-5 * time.Minute).UTC(),
		NotAfter:              now.Add(ClientValidity).UTC(),
		BasicConstraintsValid: true,
		IsCA:                  false,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		SignatureAlgorithm:    x509.SHA256WithRSA,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, pub, p.caKey)
	if err != nil {
		return nil, fmt.Errorf("sign certificate for %s: %w", cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse new certificate: %w", err)
	}
	return &Issued{Cert: cert, CertPEM: encodeCertPEM(der), Serial: FormatSerial(serial), NotAfter: cert.NotAfter.UTC()}, nil
}

// IssueClient generates an RSA-4096 key and a client certificate
// `CN=<cn>, O=Portlama` valid for 730 days.
func (p *PKI) IssueClient(cn string) (*Credential, error) {
	key, err := p.cfg.genKey(ClientKeyBits)
	if err != nil {
		return nil, fmt.Errorf("generate key for %s: %w", cn, err)
	}
	iss, err := p.sign(&key.PublicKey, cn)
	if err != nil {
		return nil, err
	}
	return &Credential{Issued: *iss, Key: key, KeyPEM: encodeKeyPEM(key)}, nil
}

// SignCSR issues a client certificate for the key in csr, which must have
// passed ParseCSR. The CSR's subject and extensions are ignored: the
// certificate always gets `CN=<cn>, O=Portlama`, 730 days and the client
// certificate extensions.
func (p *PKI) SignCSR(csr *x509.CertificateRequest, cn string) (*Issued, error) {
	if err := checkCSRKey(csr.PublicKey); err != nil {
		return nil, err
	}
	return p.sign(csr.PublicKey, cn)
}

// EncodeP12 bundles a credential and the CA certificate in a legacy
// (PBE-SHA1-3DES, SHA-1 MAC) PKCS#12 file protected by password.
func (p *PKI) EncodeP12(cred *Credential, password string) ([]byte, error) {
	data, err := pkcs12.Legacy.Encode(cred.Key, cred.Cert, []*x509.Certificate{p.caCert}, password)
	if err != nil {
		return nil, fmt.Errorf("encode PKCS#12 bundle: %w", err)
	}
	return data, nil
}

// newSelfSigned creates the IP vhost's self-signed certificate.
func newSelfSigned(cfg Config, ip net.IP) (certPEM, keyPEM []byte, err error) {
	key, err := cfg.genKey(SelfSignedKeyBits)
	if err != nil {
		return nil, nil, fmt.Errorf("generate IP certificate key: %w", err)
	}
	serial, err := NewSerial()
	if err != nil {
		return nil, nil, err
	}
	now := cfg.now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject(ip.String()),
		NotBefore:             now.Add(-5 * time.Minute).UTC(),
		NotAfter:              now.Add(SelfSignedValid).UTC(),
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{ip},
		SignatureAlgorithm:    x509.SHA256WithRSA,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create IP certificate: %w", err)
	}
	return encodeCertPEM(der), encodeKeyPEM(key), nil
}
