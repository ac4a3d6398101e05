// Package pki runs the relay's private certificate authority: the CA, the
// admin client certificate, agent client certificates (generated here or
// signed from an agent's CSR), PKCS#12 bundles, the self-signed certificate of
// the IP vhost, the revocation list (revoked.json) and the CRL nginx loads.
// Everything is pure Go (crypto/x509); nothing shells out to openssl.
//
// API overview:
//
//	p, res, err := pki.Init(pki.Config{Dir: layout.PKIDir()}, ip) // installer, demo: create what is missing
//	p, err := pki.Open(pki.Config{Dir: layout.PKIDir(), Reloader: r}) // panel, CLI: load, never regenerate
//
//	p.CACertPEM(), p.CACert(), p.AdminCert(), p.Path(pki.ClientP12File)
//	p.IssueClient(cn) / p.EncodeP12(cred, password)   // key generated here (agent P12 route)
//	pki.ParseCSR(text) → *CSRError with a plain reason    // enrollment / re-key step 2
//	p.SignCSR(csr, pki.AgentCN(label))                 // subject forced, extensions ignored
//	p.Revoke(serial, label), p.IsRevoked(serial), p.RevokedList()  // revoked.json + crl.pem
//	p.CRLNeedsRenewal(), p.RenewCRL()                   // daily renewal run
//	p.RotateAdmin(ctx, pki.LabelAdminRotated)          // docs/api.md, "Certificates, agents, enrollment", reloads nginx via Config.Reloader
//	p.Reload(ctx)                                       // nginx -t + reload after a CRL change
//	p.IssueServer(names, validity)                      // demo only: CA-signed TLS server certificate
//
// Serials are random 128-bit positive integers written as upper-case hex
// (FormatSerial); every comparison goes through NormalizeSerial.
package pki

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/portlama/portlama/internal/store"
)

// File names inside the PKI directory (docs/architecture.md, "PKI directory").
const (
	CACertFile         = "ca.crt"
	CAKeyFile          = "ca.key"
	ClientCertFile     = "client.crt"
	ClientKeyFile      = "client.key"
	ClientP12File      = "client.p12"
	P12PasswordFile    = ".p12-password"
	SelfSignedCertFile = "self-signed.pem"
	SelfSignedKeyFile  = "self-signed-key.pem"
	RevokedFile        = "revoked.json"
	CRLFile            = "crl.pem"
)

// File modes (docs/architecture.md, "PKI directory").
const (
	DirMode  os.FileMode = 0o700
	KeyMode  os.FileMode = 0o600
	CertMode os.FileMode = 0o644
)

// Key sizes and lifetimes (docs/architecture.md, "PKI").
const (
	CAKeyBits         = 4096
	ClientKeyBits     = 4096
	SelfSignedKeyBits = 2048
	CAValidity        = 3650 * 24 * time.Hour
	ClientValidity    = 730 * 24 * time.Hour
	SelfSignedValid   = 3650 * 24 * time.Hour
	Organization      = "Portlama"
	CACommonName      = "Portlama CA"
	AdminCommonName   = "admin"
)

// Reloader tests and reloads nginx after the CRL changed (nginx -t, reload).
type Reloader interface {
	Reload(ctx context.Context) error
}

// Config configures a PKI. Only Dir is required.
type Config struct {
	// Dir is the PKI directory (/etc/portlama/pki).
	Dir string
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Logger receives informational messages; nil discards them.
	Logger *slog.Logger
	// Reloader is called by Reload (after revocations and admin rotation);
	// nil means no reload (tests, installer before nginx exists).
	Reloader Reloader
	// GenerateKey makes RSA keys; nil means rsa.GenerateKey(crypto/rand).
	// Tests may hand out pre-generated keys to stay fast.
	GenerateKey func(bits int) (*rsa.PrivateKey, error)
}

// PKI is an opened PKI directory with its CA loaded. It is safe for
// concurrent use.
type PKI struct {
	cfg     Config
	log     *slog.Logger
	caCert  *x509.Certificate
	caKey   crypto.Signer
	caPEM   []byte
	revoked *store.Doc[RevocationList]
	adminMu sync.Mutex // serialises admin rotation
}

func (c Config) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c Config) genKey(bits int) (*rsa.PrivateKey, error) {
	if c.GenerateKey != nil {
		return c.GenerateKey(bits)
	}
	return rsa.GenerateKey(rand.Reader, bits)
}

func newPKI(cfg Config) *PKI {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &PKI{
		cfg:     cfg,
		log:     log,
		revoked: store.NewDoc[RevocationList](filepath.Join(cfg.Dir, RevokedFile), KeyMode),
	}
}

// Open loads an existing PKI. It never creates or regenerates anything; a
// missing or unreadable CA is an error.
func Open(cfg Config) (*PKI, error) {
	if cfg.Dir == "" {
		return nil, errors.New("open pki: no directory configured")
	}
	p := newPKI(cfg)
	if err := p.loadCA(); err != nil {
		return nil, fmt.Errorf("open pki: %w", err)
	}
	return p, nil
}

// Dir returns the PKI directory.
func (p *PKI) Dir() string { return p.cfg.Dir }

// Path returns the path of a file in the PKI directory, e.g.
// p.Path(pki.ClientP12File).
func (p *PKI) Path(name string) string { return filepath.Join(p.cfg.Dir, name) }

// Now returns the PKI's notion of the current time.
func (p *PKI) Now() time.Time { return p.cfg.now() }

// CACert returns the CA certificate.
func (p *PKI) CACert() *x509.Certificate { return p.caCert }

// CACertPEM returns the CA certificate in PEM form (as in ca.crt).
func (p *PKI) CACertPEM() []byte { return append([]byte(nil), p.caPEM...) }

// AdminCert reads and parses the current admin certificate (client.crt).
func (p *PKI) AdminCert() (*x509.Certificate, error) {
	return readCertFile(p.Path(ClientCertFile))
}

// Reload runs the configured Reloader (nginx -t and reload). Without a
// Reloader it does nothing.
func (p *PKI) Reload(ctx context.Context) error {
	if p.cfg.Reloader == nil {
		return nil
	}
	if err := p.cfg.Reloader.Reload(ctx); err != nil {
		return fmt.Errorf("reload nginx: %w", err)
	}
	return nil
}

func (p *PKI) loadCA() error {
	certPEM, err := os.ReadFile(p.Path(CACertFile))
	if err != nil {
		return fmt.Errorf("read CA certificate: %w", err)
	}
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return fmt.Errorf("parse %s: %w", p.Path(CACertFile), err)
	}
	key, err := readKeyFile(p.Path(CAKeyFile))
	if err != nil {
		return fmt.Errorf("read CA key: %w", err)
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return fmt.Errorf("CA key %s does not match %s", p.Path(CAKeyFile), p.Path(CACertFile))
	}
	p.caCert, p.caKey, p.caPEM = cert, key, certPEM
	return nil
}

// --- PEM helpers ---

func encodeCertPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeKeyPEM(key *rsa.PrivateKey) []byte {
	// PKCS#8 "PRIVATE KEY", which nginx, openssl and Go all read.
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		// MarshalPKCS8PrivateKey cannot fail for a valid RSA key.
		panic(fmt.Sprintf("marshal RSA key: %v", err))
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func parseCertPEM(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no CERTIFICATE PEM block")
	}
	return x509.ParseCertificate(block.Bytes)
}

func readCertFile(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read certificate: %w", err)
	}
	c, err := parseCertPEM(data)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return c, nil
}

func parseKeyPEM(data []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	switch block.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, errors.New("not an RSA key")
		}
		return rk, nil
	case "RSA PRIVATE KEY":
		return x509.ParsePKCS1PrivateKey(block.Bytes)
	}
	return nil, fmt.Errorf("unexpected PEM block %q", block.Type)
}

func readKeyFile(path string) (*rsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := parseKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return k, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ae, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ae.Equal(b)
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, err
}
