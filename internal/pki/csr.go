package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"unicode/utf8"

	"github.com/portlama/portlama/internal/errkind"
)

// MaxCSRLength is the longest CSR text accepted, in characters.
const MaxCSRLength = 8192

// CSRError says why a CSR was refused. Reason is plain text meant for the
// `details` of a 400 `Invalid CSR` response.
type CSRError struct {
	Reason string
}

func (e *CSRError) Error() string { return e.Reason }

// Unwrap gives the error its kind (errkind.Invalid).
func (e *CSRError) Unwrap() error { return errkind.Invalid }

func csrErr(format string, args ...any) error {
	return &CSRError{Reason: fmt.Sprintf(format, args...)}
}

// ParseCSR checks a PEM certificate signing request as enrollment and
// re-key require (docs/api.md, "Enrollment" step 2): at most 8192 characters, exactly
// one PEM block of type CERTIFICATE REQUEST and nothing else but whitespace,
// parseable, a valid self-signature, and an RSA key of at least 2048 bits or
// an ECDSA key on P-256 or P-384. Every refusal is a *CSRError.
func ParseCSR(text string) (*x509.CertificateRequest, error) {
	if utf8.RuneCountInString(text) > MaxCSRLength {
		return nil, csrErr("CSR is too long (at most %d characters)", MaxCSRLength)
	}
	data := []byte(text)
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, csrErr("CSR is not a PEM block (expected -----BEGIN CERTIFICATE REQUEST-----)")
	}
	if block.Type != "CERTIFICATE REQUEST" {
		return nil, csrErr("PEM block is of type %q, expected CERTIFICATE REQUEST", block.Type)
	}
	// pem.Decode skips text (and broken blocks) before the block: refuse
	// them, and anything after it.
	if bytes.Count(data, []byte("-----BEGIN")) != 1 ||
		!bytes.HasPrefix(bytes.TrimSpace(data), []byte("-----BEGIN")) ||
		len(bytes.TrimSpace(rest)) != 0 {
		return nil, csrErr("CSR must contain exactly one PEM block and nothing else")
	}
	if len(block.Headers) != 0 {
		return nil, csrErr("CSR PEM block must not have headers")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, csrErr("CSR could not be parsed")
	}
	if err := checkCSRKey(csr.PublicKey); err != nil {
		return nil, err
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, csrErr("CSR signature is invalid")
	}
	return csr, nil
}

func checkCSRKey(pub any) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return csrErr("RSA key is %d bits, at least 2048 are required", k.N.BitLen())
		}
		return nil
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() || k.Curve == elliptic.P384() {
			return nil
		}
		return csrErr("ECDSA key must use curve P-256 or P-384")
	default:
		return csrErr("key type is not supported (use RSA of at least 2048 bits or ECDSA P-256/P-384)")
	}
}
