package pki

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/portlama/portlama/internal/store"
)

// InitResult says what Init created.
type InitResult struct {
	// Created lists the files (names inside the PKI directory) that Init
	// wrote, in order.
	Created []string
	// AdminP12Password is the password of a newly created client.p12; empty
	// when the admin bundle already existed.
	AdminP12Password string
}

// Init creates whatever is missing in the PKI directory and opens it: the
// directory (0700), the CA, the admin credential (client.key, client.crt,
// client.p12 and .p12-password, with an installer password), the IP vhost's
// self-signed certificate for ip, an empty revoked.json and the CRL. Existing
// files are loaded, never regenerated, with two exceptions: a client.p12 or
// .p12-password missing its partner is rebuilt from client.key/client.crt with
// a new password, and a self-signed certificate for another IP is replaced.
// Init is idempotent; the installer and `portlama demo` call it.
func Init(cfg Config, ip string) (*PKI, *InitResult, error) {
	if cfg.Dir == "" {
		return nil, nil, errors.New("init pki: no directory configured")
	}
	parsedIP := net.ParseIP(ip)
	if parsedIP == nil {
		return nil, nil, fmt.Errorf("init pki: %q is not an IP address", ip)
	}
	if v4 := parsedIP.To4(); v4 != nil {
		parsedIP = v4
	}
	if err := os.MkdirAll(cfg.Dir, DirMode); err != nil {
		return nil, nil, fmt.Errorf("init pki: create %s: %w", cfg.Dir, err)
	}
	if err := os.Chmod(cfg.Dir, DirMode); err != nil {
		return nil, nil, fmt.Errorf("init pki: %w", err)
	}
	p := newPKI(cfg)
	res := &InitResult{}
	steps := []func(*InitResult) error{
		p.initCA,
		p.initAdmin,
		func(r *InitResult) error { return p.initSelfSigned(r, parsedIP) },
		p.initRevocation,
	}
	for _, step := range steps {
		if err := step(res); err != nil {
			return nil, nil, fmt.Errorf("init pki: %w", err)
		}
	}
	if len(res.Created) > 0 {
		p.log.Info("PKI initialised", "dir", cfg.Dir, "created", res.Created)
	}
	return p, res, nil
}

func (p *PKI) initCA(res *InitResult) error {
	haveCert, err := exists(p.Path(CACertFile))
	if err != nil {
		return err
	}
	haveKey, err := exists(p.Path(CAKeyFile))
	if err != nil {
		return err
	}
	switch {
	case haveCert && haveKey:
		return p.loadCA()
	case haveCert || haveKey:
		return fmt.Errorf("only one of %s and %s exists; restore the other or remove both to create a new CA (all issued certificates then stop working)", CACertFile, CAKeyFile)
	}
	certPEM, keyPEM, err := newCA(p.cfg)
	if err != nil {
		return err
	}
	if err := store.WriteFileAtomic(p.Path(CAKeyFile), keyPEM, KeyMode); err != nil {
		return fmt.Errorf("write CA key: %w", err)
	}
	if err := store.WriteFileAtomic(p.Path(CACertFile), certPEM, CertMode); err != nil {
		return fmt.Errorf("write CA certificate: %w", err)
	}
	res.Created = append(res.Created, CAKeyFile, CACertFile)
	return p.loadCA()
}

func (p *PKI) initAdmin(res *InitResult) error {
	var have [4]bool
	for i, name := range []string{ClientKeyFile, ClientCertFile, ClientP12File, P12PasswordFile} {
		ok, err := exists(p.Path(name))
		if err != nil {
			return err
		}
		have[i] = ok
	}
	if have[0] && have[1] && have[2] && have[3] {
		return nil
	}
	var cred *Credential
	if have[0] && have[1] {
		// Key and certificate exist: only the bundle is missing.
		key, err := readKeyFile(p.Path(ClientKeyFile))
		if err != nil {
			return fmt.Errorf("read admin key: %w", err)
		}
		cert, err := readCertFile(p.Path(ClientCertFile))
		if err != nil {
			return err
		}
		if !publicKeysEqual(cert.PublicKey, key.Public()) {
			return fmt.Errorf("admin key %s does not match %s", ClientKeyFile, ClientCertFile)
		}
		cred = &Credential{Issued: Issued{Cert: cert, Serial: FormatSerial(cert.SerialNumber), NotAfter: cert.NotAfter}, Key: key}
	} else {
		var err error
		if cred, err = p.IssueClient(AdminCommonName); err != nil {
			return err
		}
		if err := store.WriteFileAtomic(p.Path(ClientKeyFile), cred.KeyPEM, KeyMode); err != nil {
			return fmt.Errorf("write admin key: %w", err)
		}
		if err := store.WriteFileAtomic(p.Path(ClientCertFile), cred.CertPEM, CertMode); err != nil {
			return fmt.Errorf("write admin certificate: %w", err)
		}
		res.Created = append(res.Created, ClientKeyFile, ClientCertFile)
	}
	password, err := NewInstallerPassword()
	if err != nil {
		return err
	}
	p12, err := p.EncodeP12(cred, password)
	if err != nil {
		return err
	}
	if err := store.WriteFileAtomic(p.Path(ClientP12File), p12, KeyMode); err != nil {
		return fmt.Errorf("write admin P12: %w", err)
	}
	if err := store.WriteFileAtomic(p.Path(P12PasswordFile), []byte(password), KeyMode); err != nil {
		return fmt.Errorf("write admin P12 password: %w", err)
	}
	res.Created = append(res.Created, ClientP12File, P12PasswordFile)
	res.AdminP12Password = password
	return nil
}

func (p *PKI) initSelfSigned(res *InitResult, ip net.IP) error {
	haveCert, err := exists(p.Path(SelfSignedCertFile))
	if err != nil {
		return err
	}
	haveKey, err := exists(p.Path(SelfSignedKeyFile))
	if err != nil {
		return err
	}
	if haveCert && haveKey {
		cert, err := readCertFile(p.Path(SelfSignedCertFile))
		if err == nil && certHasIP(cert, ip) {
			return nil
		}
		p.log.Info("replacing the IP vhost certificate", "ip", ip.String())
	}
	certPEM, keyPEM, err := newSelfSigned(p.cfg, ip)
	if err != nil {
		return err
	}
	if err := store.WriteFileAtomic(p.Path(SelfSignedKeyFile), keyPEM, KeyMode); err != nil {
		return fmt.Errorf("write IP certificate key: %w", err)
	}
	if err := store.WriteFileAtomic(p.Path(SelfSignedCertFile), certPEM, CertMode); err != nil {
		return fmt.Errorf("write IP certificate: %w", err)
	}
	res.Created = append(res.Created, SelfSignedKeyFile, SelfSignedCertFile)
	return nil
}

func certHasIP(cert *x509.Certificate, ip net.IP) bool {
	for _, a := range cert.IPAddresses {
		if a.Equal(ip) {
			return true
		}
	}
	return false
}

func (p *PKI) initRevocation(res *InitResult) error {
	haveList, err := exists(p.Path(RevokedFile))
	if err != nil {
		return err
	}
	if !haveList {
		if err := store.WriteFileAtomic(p.Path(RevokedFile), []byte("{\n  \"revoked\": []\n}\n"), KeyMode); err != nil {
			return fmt.Errorf("write revocation list: %w", err)
		}
		res.Created = append(res.Created, RevokedFile)
	}
	if _, err := p.RevokedList(); err != nil {
		return err
	}
	crl, err := p.CRL()
	if err == nil && crl.CheckSignatureFrom(p.caCert) == nil && bytes.Equal(crl.RawIssuer, p.caCert.RawSubject) {
		return nil
	}
	if err := p.RenewCRL(); err != nil {
		return err
	}
	res.Created = append(res.Created, CRLFile)
	return nil
}
