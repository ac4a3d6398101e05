// Package acme keeps the relay's TLS certificates for its domain vhosts: the
// certificate store (<certs>/<name>/fullchain.pem, privkey.pem, meta.json,
// docs/architecture.md, "Certificate store"), its path layout (Files, FilesIn: nginx renders vhosts
// from them, tunnels and sites use them) and the choice of certificate for
// a host (docs/operations.md, "Certificates").
//
// A certificate and its key always change together: each installation
// writes a new version directory (<certs>/.<name>.<n>/) and then swaps the
// symlink <certs>/<name> to it with one rename, so a reader that resolves
// <certs>/<name> once (nginx at a reload, os.OpenRoot) sees a matching pair,
// never a new certificate with an old key. The previous version is kept
// for readers that resolved it just before the swap; older ones are
// removed.
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

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/store"
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

// File names inside a certificate's directory.
const (
	CertFile = "fullchain.pem"
	KeyFile  = "privkey.pem"
	MetaFile = "meta.json"
)

// Files locate a certificate and its key for a vhost.
type Files struct {
	Name     string // certificate name in the store (<certs>/<name>/)
	Cert     string // <certs>/<name>/fullchain.pem
	Key      string // <certs>/<name>/privkey.pem
	Wildcard bool   // the base domain's certificate, used for a host one label below it
}

// FilesIn returns the files of certificate name in the store at dir.
func FilesIn(dir, name string) Files {
	d := filepath.Join(dir, name)
	return Files{Name: name, Cert: filepath.Join(d, CertFile), Key: filepath.Join(d, KeyFile)}
}

// Paths returns the file paths of the certificate called name.
func (s *Store) Paths(name string) Files { return FilesIn(s.Dir, name) }

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

// Usable reports whether the certificate called name is on disk and valid
// for more than a day.
func (s *Store) Usable(name string) bool {
	na, err := s.NotAfter(name)
	return err == nil && na.Sub(s.now()) > minValidity
}

// Install writes a certificate into the store (fullchain 0644, key 0600,
// meta.json) as a new version and makes it current with one rename (see
// the package documentation).
func (s *Store) Install(name string, certPEM, keyPEM []byte, domains []string, challenge string) error {
	if err := validate.CertName(name); err != nil {
		return fmt.Errorf("certificate name %q: %w", name, err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil {
		return errors.New("certificate is not PEM")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return fmt.Errorf("parse certificate: %w", err)
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("create certificate store: %w", err)
	}
	meta, err := store.Marshal(Meta{Domains: domains, NotAfter: api.FormatTime(c.NotAfter), Challenge: challenge})
	if err != nil {
		return err
	}
	version, err := os.MkdirTemp(s.Dir, "."+name+".")
	if err != nil {
		return fmt.Errorf("create certificate version directory: %w", err)
	}
	if err := os.Chmod(version, 0o700); err != nil {
		os.RemoveAll(version)
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{{KeyFile, keyPEM, 0o600}, {CertFile, certPEM, 0o644}, {MetaFile, meta, 0o644}} {
		if err := store.WriteFileAtomic(filepath.Join(version, f.name), f.data, f.mode); err != nil {
			os.RemoveAll(version)
			return err
		}
	}
	if err := s.swap(name, version); err != nil {
		os.RemoveAll(version)
		return err
	}
	return nil
}

// swap points <dir>/<name> at version with one rename and removes versions
// older than the previous one. A plain directory left by an older relay
// is moved aside first (a one-time migration).
func (s *Store) swap(name, version string) error {
	link := filepath.Join(s.Dir, name)
	previous := ""
	if fi, err := os.Lstat(link); err == nil {
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			previous, _ = os.Readlink(link)
		case fi.IsDir():
			legacy, err := os.MkdirTemp(s.Dir, "."+name+".")
			if err != nil {
				return err
			}
			os.Remove(legacy)
			if err := os.Rename(link, legacy); err != nil {
				return fmt.Errorf("move %s aside: %w", link, err)
			}
			previous = filepath.Base(legacy)
		}
	}
	tmp := filepath.Join(s.Dir, "."+name+".link-"+filepath.Base(version))
	if err := os.Symlink(filepath.Base(version), tmp); err != nil {
		return fmt.Errorf("link certificate %s: %w", name, err)
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("switch certificate %s: %w", name, err)
	}
	if err := syncDir(s.Dir); err != nil {
		return err
	}
	// Older versions go once no reader can still be on them: one that
	// resolved the link a moment ago (nginx during a reload, a renewal run)
	// keeps its files for versionGrace even if two installs follow.
	keep := map[string]bool{filepath.Base(version): true, filepath.Base(previous): true}
	for _, v := range s.versions(name) {
		dir := filepath.Join(s.Dir, v)
		if fi, err := os.Stat(dir); !keep[v] && err == nil && s.now().Sub(fi.ModTime()) > versionGrace {
			os.RemoveAll(dir)
		}
	}
	return nil
}

// versionGrace is how long a replaced certificate version stays on disk.
const versionGrace = time.Minute

// versions lists the version directories of name (".<name>.<n>").
func (s *Store) versions(name string) []string {
	entries, err := os.ReadDir(s.Dir)
	if err != nil {
		return nil
	}
	var out []string
	prefix := "." + name + "."
	for _, e := range entries {
		if rest, ok := strings.CutPrefix(e.Name(), prefix); ok && e.IsDir() && !strings.Contains(rest, ".") {
			out = append(out, e.Name())
		}
	}
	return out
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ForHost returns the certificate to use for fqdn (docs/operations.md, "Certificates"): a
// wildcard for *.<d> valid for more than 24 h when fqdn is one label below
// <d>; else fqdn's own certificate when valid for more than 24 h; else a new
// one from the Issuer.
func (s *Store) ForHost(ctx context.Context, fqdn string) (Files, error) {
	if err := validate.FQDN(fqdn); err != nil {
		return Files{}, fmt.Errorf("host %q: %w", fqdn, err)
	}
	if f, ok := s.Existing(fqdn); ok {
		return f, nil
	}
	if s.Issuer == nil {
		return Files{}, fmt.Errorf("no valid certificate for %s and automatic issuance is not configured", fqdn)
	}
	certPEM, keyPEM, challenge, err := s.Issuer.Obtain(ctx, []string{fqdn})
	if err != nil {
		return Files{}, err
	}
	if err := s.Install(fqdn, certPEM, keyPEM, []string{fqdn}, challenge); err != nil {
		return Files{}, err
	}
	return s.Paths(fqdn), nil
}

// Existing returns the certificate ForHost would use for fqdn without
// obtaining one: the wildcard, or fqdn's own, valid for more than 24 h. ok
// is false when ForHost would have to issue a certificate.
func (s *Store) Existing(fqdn string) (_ Files, ok bool) {
	if d := s.Domain(); d != "" && strings.HasSuffix(fqdn, "."+d) && !strings.Contains(strings.TrimSuffix(fqdn, "."+d), ".") && s.Usable(d) {
		p := s.Paths(d)
		p.Wildcard = true
		return p, true
	}
	if s.Usable(fqdn) {
		return s.Paths(fqdn), true
	}
	return Files{}, false
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
		err = nil
	}
	for _, v := range s.versions(fqdn) {
		if rerr := os.RemoveAll(filepath.Join(s.Dir, v)); rerr != nil && err == nil {
			err = rerr
		}
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
		// Certificates are symlinks to their current version (plain
		// directories before the first reinstall by this release).
		if (e.IsDir() || e.Type()&fs.ModeSymlink != 0) && validate.CertName(e.Name()) == nil {
			names = append(names, e.Name())
		}
	}
	return names, nil
}
