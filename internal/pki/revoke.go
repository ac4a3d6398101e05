package pki

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"time"

	"github.com/portlama/portlama/internal/store"
)

// CRL parameters (docs/architecture.md, "PKI").
const (
	CRLValidity     = 180 * 24 * time.Hour
	CRLRenewBefore  = 30 * 24 * time.Hour
	timestampFormat = "2006-01-02T15:04:05.000Z"
)

// Labels of revocation list entries made by this package.
const (
	LabelAdminRotated = "admin (rotated)"
	LabelAdminReset   = "admin (reset)"
)

// RevokedEntry is one entry of revoked.json.
type RevokedEntry struct {
	Serial    string `json:"serial"`
	Label     string `json:"label"`
	RevokedAt string `json:"revokedAt"`
}

// RevocationList is the content of revoked.json (docs/architecture.md, "Revocation list").
type RevocationList struct {
	Revoked []RevokedEntry `json:"revoked"`
}

// Timestamp formats t as the contract's ISO 8601 UTC with milliseconds.
func Timestamp(t time.Time) string { return t.UTC().Format(timestampFormat) }

// RevokedList returns the revocation list (empty when revoked.json does not
// exist yet).
func (p *PKI) RevokedList() ([]RevokedEntry, error) {
	l, err := p.revoked.Load()
	if err != nil {
		return nil, fmt.Errorf("load revocation list: %w", err)
	}
	if l.Revoked == nil {
		return []RevokedEntry{}, nil
	}
	return l.Revoked, nil
}

// IsRevoked reports whether serial (hex, any case, leading zeros allowed) is
// on the revocation list.
func (p *PKI) IsRevoked(serial string) (bool, error) {
	list, err := p.RevokedList()
	if err != nil {
		return false, err
	}
	for _, e := range list {
		if SerialsEqual(e.Serial, serial) {
			return true, nil
		}
	}
	return false, nil
}

// Revoke adds serial to revoked.json with label and regenerates crl.pem from
// the whole list. Revoking a serial that is already listed only refreshes the
// CRL. The new CRL is written before revoked.json; when the CRL cannot be
// written the list is left unchanged. Revoke does not reload nginx: call
// Reload afterwards.
func (p *PKI) Revoke(serial, label string) error {
	if _, ok := ParseSerial(serial); !ok {
		return fmt.Errorf("revoke: %q is not a hex serial", serial)
	}
	_, err := p.revoked.Update(func(l *RevocationList) error {
		listed := false
		for _, e := range l.Revoked {
			if SerialsEqual(e.Serial, serial) {
				listed = true
			}
		}
		if !listed {
			l.Revoked = append(l.Revoked, RevokedEntry{Serial: serial, Label: label, RevokedAt: Timestamp(p.cfg.now())})
		}
		if l.Revoked == nil {
			l.Revoked = []RevokedEntry{}
		}
		return p.writeCRL(l.Revoked)
	})
	if err != nil {
		return fmt.Errorf("revoke %s: %w", serial, err)
	}
	p.log.Info("certificate revoked", "serial", serial, "label", label)
	return nil
}

// RenewCRL regenerates crl.pem from revoked.json (new thisUpdate, nextUpdate
// and CRL number). It also creates an empty revoked.json when missing.
func (p *PKI) RenewCRL() error {
	_, err := p.revoked.Update(func(l *RevocationList) error {
		if l.Revoked == nil {
			l.Revoked = []RevokedEntry{}
		}
		return p.writeCRL(l.Revoked)
	})
	if err != nil {
		return fmt.Errorf("renew CRL: %w", err)
	}
	return nil
}

// CRL reads and parses crl.pem.
func (p *PKI) CRL() (*x509.RevocationList, error) {
	data, err := os.ReadFile(p.Path(CRLFile))
	if err != nil {
		return nil, fmt.Errorf("read CRL: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "X509 CRL" {
		return nil, fmt.Errorf("parse %s: no X509 CRL PEM block", p.Path(CRLFile))
	}
	crl, err := x509.ParseRevocationList(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", p.Path(CRLFile), err)
	}
	return crl, nil
}

// CRLNeedsRenewal reports whether crl.pem is missing, unreadable, not signed
// by the CA, or has fewer than 30 days left before its nextUpdate.
func (p *PKI) CRLNeedsRenewal() (bool, error) {
	crl, err := p.CRL()
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		p.log.Warn("CRL unreadable, it will be regenerated", "err", err)
		return true, nil
	}
	if crl.CheckSignatureFrom(p.caCert) != nil {
		return true, nil
	}
	return crl.NextUpdate.Sub(p.cfg.now()) < CRLRenewBefore, nil
}

// RenewCRLIfNeeded renews the CRL when CRLNeedsRenewal says so and reports
// whether it did. The caller reloads nginx when it returns true.
func (p *PKI) RenewCRLIfNeeded() (bool, error) {
	need, err := p.CRLNeedsRenewal()
	if err != nil || !need {
		return false, err
	}
	if err := p.RenewCRL(); err != nil {
		return false, err
	}
	return true, nil
}

// writeCRL signs a CRL listing entries and writes crl.pem. The CRL number
// is the larger of the previous number + 1 and the current time in
// milliseconds, so it increases even if crl.pem was lost.
func (p *PKI) writeCRL(entries []RevokedEntry) error {
	now := p.cfg.now()
	number := big.NewInt(now.UnixMilli())
	if prev, err := p.CRL(); err == nil && prev.Number != nil {
		if next := new(big.Int).Add(prev.Number, big.NewInt(1)); next.Cmp(number) > 0 {
			number = next
		}
	}
	tmpl := &x509.RevocationList{
		Number:     number,
		ThisUpdate: now.UTC(),
		NextUpdate: now.Add(CRLValidity).UTC(),
	}
	for _, e := range entries {
		n, ok := new(big.Int).SetString(NormalizeSerial(e.Serial), 16)
		if !ok {
			return fmt.Errorf("revocation list entry %q has an invalid serial", e.Serial)
		}
		at, err := time.Parse(timestampFormat, e.RevokedAt)
		if err != nil {
			at = now
		}
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber: n, RevocationTime: at.UTC(),
		})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, p.caCert, p.caKey)
	if err != nil {
		return fmt.Errorf("sign CRL: %w", err)
	}
	if err := store.WriteFileAtomic(p.Path(CRLFile), pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), CertMode); err != nil {
		return fmt.Errorf("write CRL: %w", err)
	}
	return nil
}
