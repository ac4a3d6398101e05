package pki

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/portlama/portlama/internal/store"
)

// Rotation is the outcome of RotateAdmin.
type Rotation struct {
	P12       []byte    // the new client.p12
	Password  string    // its password (32 hex characters), also in .p12-password
	Serial    string    // serial of the new admin certificate
	OldSerial string    // revoked serial of the previous certificate ("" if there was none)
	ExpiresAt time.Time // NotAfter of the new certificate
	// ReloadErr is set when the rotation succeeded but nginx could not be
	// tested or reloaded (the API appends a warning; the panel still
	// refuses the old certificate).
	ReloadErr error
}

type savedFile struct {
	name string
	mode os.FileMode
	data []byte // nil: the file did not exist
}

// RotateAdmin replaces the admin credential (docs/api.md, "Certificates, agents, enrollment"): a new
// RSA-4096 key and certificate `CN=admin, O=Portlama`, a new P12 with a fresh
// hex password; the previous client.{key,crt,p12} are kept as *.bak,
// .p12-password is rewritten, the previous serial is revoked with
// revokeLabel (LabelAdminRotated for the API, LabelAdminReset for
// `portlama reset-admin`), the CRL is regenerated and nginx reloaded. If
// anything before the reload fails, the previous files are put back and
// nothing is revoked.
func (p *PKI) RotateAdmin(ctx context.Context, revokeLabel string) (*Rotation, error) {
	p.adminMu.Lock()
	defer p.adminMu.Unlock()

	var oldSerial string
	if cert, err := p.AdminCert(); err == nil {
		oldSerial = FormatSerial(cert.SerialNumber)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("rotate admin certificate: %w", err)
	}

	cred, err := p.IssueClient(AdminCommonName)
	if err != nil {
		return nil, fmt.Errorf("rotate admin certificate: %w", err)
	}
	password, err := NewHexPassword()
	if err != nil {
		return nil, fmt.Errorf("rotate admin certificate: %w", err)
	}
	p12, err := p.EncodeP12(cred, password)
	if err != nil {
		return nil, fmt.Errorf("rotate admin certificate: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("rotate admin certificate: %w", err)
	}

	files := []savedFile{
		{name: ClientKeyFile, mode: KeyMode, data: cred.KeyPEM},
		{name: ClientCertFile, mode: CertMode, data: cred.CertPEM},
		{name: ClientP12File, mode: KeyMode, data: p12},
		{name: P12PasswordFile, mode: KeyMode, data: []byte(password)},
	}
	// Keep the current content of every file (and of the .bak files) for
	// rollback.
	var saved []savedFile
	for _, f := range files {
		for _, name := range []string{f.name, f.name + ".bak"} {
			data, err := os.ReadFile(p.Path(name))
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("rotate admin certificate: read %s: %w", name, err)
			}
			saved = append(saved, savedFile{name: name, mode: f.mode, data: data})
		}
	}
	rollback := func() {
		for _, s := range saved {
			var err error
			if s.data == nil {
				err = os.Remove(p.Path(s.name))
				if errors.Is(err, fs.ErrNotExist) {
					err = nil
				}
			} else {
				err = store.WriteFileAtomic(p.Path(s.name), s.data, s.mode)
			}
			if err != nil {
				p.log.Error("admin rotation rollback failed", "file", s.name, "err", err)
			}
		}
	}

	if err := p.replaceAdminFiles(files, saved); err != nil {
		rollback()
		return nil, fmt.Errorf("rotate admin certificate: %w", err)
	}
	if oldSerial != "" {
		if err := p.Revoke(oldSerial, revokeLabel); err != nil {
			rollback()
			return nil, fmt.Errorf("rotate admin certificate: %w", err)
		}
	}
	p.log.Info("admin certificate rotated", "serial", cred.Serial, "revoked", oldSerial)
	return &Rotation{
		P12:       p12,
		Password:  password,
		Serial:    cred.Serial,
		OldSerial: oldSerial,
		ExpiresAt: cred.NotAfter,
		ReloadErr: p.Reload(ctx),
	}, nil
}

// replaceAdminFiles writes the .bak copies (key, certificate and bundle
// only) and then the new files.
func (p *PKI) replaceAdminFiles(files, saved []savedFile) error {
	for _, s := range saved {
		if s.data == nil || s.name == P12PasswordFile {
			continue
		}
		switch s.name {
		case ClientKeyFile, ClientCertFile, ClientP12File:
			if err := store.WriteFileAtomic(p.Path(s.name+".bak"), s.data, s.mode); err != nil {
				return fmt.Errorf("back up %s: %w", s.name, err)
			}
		}
	}
	for _, f := range files {
		if err := store.WriteFileAtomic(p.Path(f.name), f.data, f.mode); err != nil {
			return fmt.Errorf("write %s: %w", f.name, err)
		}
	}
	return nil
}
