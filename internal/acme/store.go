// Package acme keeps the relay's TLS certificates for its domain vhosts: the
// certificate store (<certs>/<name>/fullchain.pem, privkey.pem, meta.json,
// contract §17.10) and the choice of certificate for a host (§11.1).
//
// Issuance through an ACME client plugs in as an Issuer; without one, a host
// that has no usable certificate in the store is refused with a plain error.
package acme

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/portlama/portlama/internal/store"
	"github.com/portlama/portlama/internal/tunnels"
	"github.com/portlama/portlama/internal/validate"
)

// Meta is a certificate's meta.json.
type Meta struct {
	Domains   []string `json:"domains"`
	NotAfter  string   `json:"notAfter"`
	Challenge string   `json:"challenge"`
}

// Issuer obtains a certificate for the given names (an ACME client).
type Issuer interface {
	Obtain(ctx context.Context, names []string) (certPEM, keyPEM []byte, challenge string, err error)
}

// Store is the certificate directory.
type Store struct {
	Dir    string
	Domain func() string // the relay's base domain, read when needed
	Issuer Issuer        // nil: no automatic issuance
	Now    func() time.Time
}

// minValidity is how long a certificate must still be valid to be reused.
const minValidity = 24 * time.Hour

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Paths returns the file paths of the certificate called name.
func (s *Store) Paths(name string) tunnels.CertPaths {
	dir := filepath.Join(s.Dir, name)
	return tunnels.CertPaths{Name: name, Cert: filepath.Join(dir, "fullchain.pem"), Key: filepath.Join(dir, "privkey.pem")}
}

// NotAfter returns the expiry of the certificate called name.
func (s *Store) NotAfter(name string) (time.Time, error) {
	if err := validate.CertName(name); err != nil {
		return time.Time{}, err
	}
	data, err := os.ReadFile(s.Paths(name).Cert)
	if err != nil {
		return time.Time{}, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return time.Time{}, fmt.Errorf("%s: no PEM certificate", s.Paths(name).Cert)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse %s: %w", s.Paths(name).Cert, err)
	}
	return c.NotAfter, nil
}

func (s *Store) usable(name string) bool {
	na, err := s.NotAfter(name)
	return err == nil && na.Sub(s.now()) > minValidity
}

// Install writes a certificate into the store (fullchain 0644, key 0600,
// meta.json).
func (s *Store) Install(name string, certPEM, keyPEM []byte, domains []string, challenge string) error {
	if err := validate.CertName(name); err != nil {
		return fmt.Errorf("certificate name %q: %w", name, err)
	}
	p := s.Paths(name)
	if err := os.MkdirAll(filepath.Dir(p.Cert), 0o700); err != nil {
		return fmt.Errorf("create certificate directory: %w", err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil {
		return errors.New("certificate is not PEM")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return fmt.Errorf("parse certificate: %w", err)
	}
	if err := store.WriteFileAtomic(p.Key, keyPEM, 0o600); err != nil {
		return err
	}
	if err := store.WriteFileAtomic(p.Cert, certPEM, 0o644); err != nil {
		return err
	}
	meta, _ := store.Marshal(Meta{Domains: domains, NotAfter: c.NotAfter.UTC().Format("2006-01-02T15:04:05.000Z"), Challenge: challenge})
	return store.WriteFileAtomic(filepath.Join(filepath.Dir(p.Cert), "meta.json"), meta, 0o644)
}

// ForHost returns the certificate to use for fqdn (contract §11.1): a
// wildcard for *.<d> valid for more than 24 h when fqdn is one label below
// <d>; else fqdn's own certificate when valid for more than 24 h; else a new
// one from the Issuer.
func (s *Store) ForHost(ctx context.Context, fqdn string) (tunnels.CertPaths, error) {
	if err := validate.FQDN(fqdn); err != nil {
		return tunnels.CertPaths{}, fmt.Errorf("host %q: %w", fqdn, err)
	}
	if d := s.Domain(); d != "" && strings.HasSuffix(fqdn, "."+d) && !strings.Contains(strings.TrimSuffix(fqdn, "."+d), ".") && s.usable(d) {
		p := s.Paths(d)
		p.Wildcard = true
		return p, nil
	}
	if s.usable(fqdn) {
		return s.Paths(fqdn), nil
	}
	if s.Issuer == nil {
		return tunnels.CertPaths{}, fmt.Errorf("no valid certificate for %s and automatic issuance is not configured", fqdn)
	}
	certPEM, keyPEM, challenge, err := s.Issuer.Obtain(ctx, []string{fqdn})
	if err != nil {
		return tunnels.CertPaths{}, err
	}
	if err := s.Install(fqdn, certPEM, keyPEM, []string{fqdn}, challenge); err != nil {
		return tunnels.CertPaths{}, err
	}
	return s.Paths(fqdn), nil
}

// DeleteIndividual removes fqdn's own certificate. The base domain's
// (wildcard) certificate and the panel/auth/tunnel certificates stay.
func (s *Store) DeleteIndividual(_ context.Context, fqdn string) error {
	if validate.CertName(fqdn) != nil {
		return nil
	}
	if d := s.Domain(); fqdn == d || fqdn == "panel."+d || fqdn == "auth."+d || fqdn == "tunnel."+d {
		return nil
	}
	err := os.RemoveAll(filepath.Join(s.Dir, fqdn))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Names lists the certificates in the store.
func (s *Store) Names() ([]string, error) {
	entries, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && validate.CertName(e.Name()) == nil {
			names = append(names, e.Name())
		}
	}
	return names, nil
}
