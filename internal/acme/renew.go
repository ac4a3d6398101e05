package acme

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/portlama/portlama/internal/errkind"
	"github.com/portlama/portlama/internal/validate"
)

// RenewWindow: certificates with less than this left are renewed by the
// daily run (docs/operations.md, "Certificates").
const RenewWindow = 30 * 24 * time.Hour

// ErrNoCertificate is returned for a name the store does not hold.
var ErrNoCertificate = errkind.New(errkind.NotFound, "Certificate not found")

// Meta returns the meta.json of the certificate called name.
func (s *Store) Meta(name string) (Meta, error) {
	if err := validate.CertName(name); err != nil {
		return Meta{}, err
	}
	data, err := os.ReadFile(filepath.Join(s.Dir, name, MetaFile))
	if errors.Is(err, fs.ErrNotExist) {
		return Meta{}, ErrNoCertificate
	}
	if err != nil {
		return Meta{}, err
	}
	var m Meta
	if err := json.Unmarshal(data, &m); err != nil {
		return Meta{}, fmt.Errorf("parse %s meta.json: %w", name, err)
	}
	return m, nil
}

// Renew obtains a new certificate for name with the names it has now and
// installs it; it returns the new expiry. Unknown names are
// ErrNoCertificate.
func (s *Store) Renew(ctx context.Context, name string) (time.Time, error) {
	m, err := s.Meta(name)
	if err != nil {
		return time.Time{}, err
	}
	if len(m.Domains) == 0 {
		m.Domains = []string{name}
	}
	if s.Issuer == nil {
		return time.Time{}, errors.New("renew: automatic issuance is not configured")
	}
	certPEM, keyPEM, challenge, err := s.Issuer.Obtain(ctx, m.Domains)
	if err != nil {
		return time.Time{}, err
	}
	if err := s.Install(name, certPEM, keyPEM, m.Domains, challenge); err != nil {
		return time.Time{}, err
	}
	return s.NotAfter(name)
}

// Obtain obtains and installs a certificate called name for domains unless
// the store holds one for exactly those domains that is valid for longer
// than RenewWindow (so provisioning can run again without new orders).
// It reports whether it ordered one.
func (s *Store) Obtain(ctx context.Context, name string, domains []string) (bool, error) {
	if m, err := s.Meta(name); err == nil && sameSet(m.Domains, domains) {
		if na, err := s.NotAfter(name); err == nil && na.Sub(s.now()) > RenewWindow {
			return false, nil
		}
	}
	if s.Issuer == nil {
		return false, fmt.Errorf("no valid certificate for %s and automatic issuance is not configured", name)
	}
	certPEM, keyPEM, challenge, err := s.Issuer.Obtain(ctx, domains)
	if err != nil {
		return false, err
	}
	return true, s.Install(name, certPEM, keyPEM, domains, challenge)
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, x := range a {
		seen[x]++
	}
	for _, x := range b {
		if seen[x] == 0 {
			return false
		}
		seen[x]--
	}
	return true
}

// RenewResult is what RenewDue did.
type RenewResult struct {
	Renewed []string         // names renewed
	Kept    []string         // names with more than the window left
	Failed  map[string]error // names whose renewal failed
}

// RenewDue renews every certificate in the store with less than window
// left. One failure does not stop the others.
func (s *Store) RenewDue(ctx context.Context, window time.Duration) (RenewResult, error) {
	res := RenewResult{Failed: map[string]error{}}
	names, err := s.Names()
	if err != nil {
		return res, err
	}
	for _, name := range names {
		na, err := s.NotAfter(name)
		if err == nil && na.Sub(s.now()) >= window {
			res.Kept = append(res.Kept, name)
			continue
		}
		if _, err := s.Renew(ctx, name); err != nil {
			res.Failed[name] = err
			continue
		}
		res.Renewed = append(res.Renewed, name)
	}
	return res, nil
}
