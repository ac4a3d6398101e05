package pki

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/portlama/portlama/internal/pki/pkitest"
)

const testIP = "203.0.113.7"

type countingReloader struct {
	mu    sync.Mutex
	calls int
	err   error
}

func (r *countingReloader) Reload(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	return r.err
}

func testConfig(t *testing.T) Config {
	t.Helper()
	return Config{Dir: filepath.Join(t.TempDir(), "pki"), GenerateKey: pkitest.GenerateKey}
}

func newTestPKI(t *testing.T) (*PKI, *InitResult) {
	t.Helper()
	p, res, err := Init(testConfig(t), testIP)
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	return p, res
}

func fileMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func roughly(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if d := got.Sub(want); d < -10*time.Minute || d > 10*time.Minute {
		t.Errorf("%s = %v, want about %v", what, got, want)
	}
}

// checkClientCert verifies a client certificate as docs/architecture.md, "PKI" describes it.
func checkClientCert(t *testing.T, p *PKI, cert *x509.Certificate, cn string) {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(p.CACert())
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate does not chain to the CA: %v", err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("client certificate is also valid for server auth")
	}
	if cert.Subject.CommonName != cn || len(cert.Subject.Organization) != 1 || cert.Subject.Organization[0] != "Portlama" {
		t.Errorf("subject = %q, want CN=%s,O=Portlama", cert.Subject.String(), cn)
	}
	if len(cert.Subject.OrganizationalUnit)+len(cert.Subject.Country)+len(cert.Subject.Locality) != 0 {
		t.Errorf("subject has extra attributes: %s", cert.Subject)
	}
	if cert.IsCA || !cert.BasicConstraintsValid {
		t.Error("client certificate must carry basic constraints CA:false")
	}
	if cert.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("key usage = %v, want digital signature only", cert.KeyUsage)
	}
	if len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("extended key usage = %v, want client auth only", cert.ExtKeyUsage)
	}
	if len(cert.DNSNames)+len(cert.IPAddresses)+len(cert.EmailAddresses)+len(cert.URIs) != 0 {
		t.Error("client certificate has subject alternative names")
	}
	if cert.SignatureAlgorithm != x509.SHA256WithRSA {
		t.Errorf("signature algorithm = %v", cert.SignatureAlgorithm)
	}
	if cert.SerialNumber.Sign() <= 0 || cert.SerialNumber.BitLen() > 128 {
		t.Errorf("serial %x is not a positive 128-bit number", cert.SerialNumber)
	}
	roughly(t, "NotAfter", cert.NotAfter, p.Now().Add(730*24*time.Hour))
}

func TestInitCreatesPKI(t *testing.T) {
	p, res := newTestPKI(t)
	dir := p.Dir()

	if got := fileMode(t, dir); got != 0o700 {
		t.Errorf("pki dir mode = %o, want 700", got)
	}
	modes := map[string]os.FileMode{
		CAKeyFile: 0o600, CACertFile: 0o644, ClientKeyFile: 0o600, ClientCertFile: 0o644,
		ClientP12File: 0o600, P12PasswordFile: 0o600, SelfSignedCertFile: 0o644,
		SelfSignedKeyFile: 0o600, RevokedFile: 0o600, CRLFile: 0o644,
	}
	for name, want := range modes {
		if got := fileMode(t, filepath.Join(dir, name)); got != want {
			t.Errorf("%s mode = %o, want %o", name, got, want)
		}
	}
	if len(res.Created) != len(modes) {
		t.Errorf("Created = %v, want all %d files", res.Created, len(modes))
	}

	// CA (docs/architecture.md, "PKI").
	ca := p.CACert()
	if !ca.IsCA || !ca.BasicConstraintsValid || ca.MaxPathLen != 0 || !ca.MaxPathLenZero {
		t.Errorf("CA basic constraints wrong: isCA=%v pathlen=%d zero=%v", ca.IsCA, ca.MaxPathLen, ca.MaxPathLenZero)
	}
	if ca.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("CA key usage = %v", ca.KeyUsage)
	}
	if ca.Subject.String() != "CN=Portlama CA,O=Portlama" || ca.Issuer.String() != ca.Subject.String() {
		t.Errorf("CA subject %q issuer %q", ca.Subject, ca.Issuer)
	}
	if err := ca.CheckSignatureFrom(ca); err != nil {
		t.Errorf("CA is not self-signed: %v", err)
	}
	if bits := ca.PublicKey.(*rsa.PublicKey).N.BitLen(); bits != 4096 {
		t.Errorf("CA key = %d bits", bits)
	}
	if ca.SignatureAlgorithm != x509.SHA256WithRSA {
		t.Errorf("CA signature algorithm = %v", ca.SignatureAlgorithm)
	}
	roughly(t, "CA NotAfter", ca.NotAfter, time.Now().Add(3650*24*time.Hour))
	if !bytes.Equal(p.CACertPEM(), readFile(t, filepath.Join(dir, CACertFile))) {
		t.Error("CACertPEM differs from ca.crt")
	}

	// Admin credential.
	admin, err := p.AdminCert()
	if err != nil {
		t.Fatal(err)
	}
	checkClientCert(t, p, admin, "admin")
	if bits := admin.PublicKey.(*rsa.PublicKey).N.BitLen(); bits != 4096 {
		t.Errorf("admin key = %d bits", bits)
	}
	password := string(readFile(t, filepath.Join(dir, P12PasswordFile)))
	if password != res.AdminP12Password {
		t.Errorf(".p12-password %q != returned %q", password, res.AdminP12Password)
	}
	if len(password) != 32 || strings.ContainsAny(password, "\n\r =+/") {
		t.Errorf("installer password %q: want 32 base64url characters, no newline", password)
	}
	if raw, err := base64.RawURLEncoding.DecodeString(password); err != nil || len(raw) != 24 {
		t.Errorf("installer password is not 24 bytes base64url: %v", err)
	}
	key, cert, cas, err := pkcs12.DecodeChain(readFile(t, filepath.Join(dir, ClientP12File)), password)
	if err != nil {
		t.Fatalf("decode client.p12: %v", err)
	}
	if !cert.Equal(admin) || !key.(*rsa.PrivateKey).PublicKey.Equal(admin.PublicKey) {
		t.Error("client.p12 does not hold the admin certificate and key")
	}
	if len(cas) != 1 || !cas[0].Equal(ca) {
		t.Error("client.p12 does not include the CA certificate")
	}
	if _, _, _, err := pkcs12.DecodeChain(readFile(t, filepath.Join(dir, ClientP12File)), "wrong"); err == nil {
		t.Error("client.p12 decodes with a wrong password")
	}
	if k, err := readKeyFile(filepath.Join(dir, ClientKeyFile)); err != nil || !k.PublicKey.Equal(admin.PublicKey) {
		t.Errorf("client.key does not match client.crt: %v", err)
	}

	// IP vhost certificate.
	ipCert, err := readCertFile(filepath.Join(dir, SelfSignedCertFile))
	if err != nil {
		t.Fatal(err)
	}
	if ipCert.Subject.String() != "CN="+testIP+",O=Portlama" {
		t.Errorf("IP certificate subject = %s", ipCert.Subject)
	}
	if len(ipCert.IPAddresses) != 1 || !ipCert.IPAddresses[0].Equal(net.ParseIP(testIP)) {
		t.Errorf("IP certificate SANs = %v", ipCert.IPAddresses)
	}
	if err := ipCert.CheckSignature(ipCert.SignatureAlgorithm, ipCert.RawTBSCertificate, ipCert.Signature); err != nil || ipCert.Issuer.String() != ipCert.Subject.String() {
		t.Errorf("IP certificate is not self-signed: %v", err)
	}
	if bits := ipCert.PublicKey.(*rsa.PublicKey).N.BitLen(); bits != 2048 {
		t.Errorf("IP certificate key = %d bits", bits)
	}
	roughly(t, "IP certificate NotAfter", ipCert.NotAfter, time.Now().Add(3650*24*time.Hour))
	if err := ipCert.VerifyHostname(testIP); err != nil {
		t.Errorf("IP certificate not valid for %s: %v", testIP, err)
	}

	// Revocation list and CRL.
	list, err := p.RevokedList()
	if err != nil || len(list) != 0 {
		t.Errorf("RevokedList = %v, %v; want empty", list, err)
	}
	if !strings.Contains(string(readFile(t, filepath.Join(dir, RevokedFile))), `"revoked": []`) {
		t.Error("revoked.json does not hold an empty list")
	}
	crl, err := p.CRL()
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(ca); err != nil {
		t.Errorf("CRL not signed by the CA: %v", err)
	}
	if len(crl.RevokedCertificateEntries) != 0 || crl.Number == nil || crl.Number.Sign() <= 0 {
		t.Errorf("new CRL: %d entries, number %v", len(crl.RevokedCertificateEntries), crl.Number)
	}
	if crl.SignatureAlgorithm != x509.SHA256WithRSA {
		t.Errorf("CRL signature algorithm = %v", crl.SignatureAlgorithm)
	}
	roughly(t, "CRL nextUpdate", crl.NextUpdate, time.Now().Add(180*24*time.Hour))
}

func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() || strings.HasSuffix(e.Name(), ".lock") {
			continue
		}
		out[e.Name()] = string(readFile(t, filepath.Join(dir, e.Name())))
	}
	return out
}

func TestInitIsIdempotent(t *testing.T) {
	cfg := testConfig(t)
	if _, _, err := Init(cfg, testIP); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, cfg.Dir)
	_, res, err := Init(cfg, testIP)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Created) != 0 || res.AdminP12Password != "" {
		t.Errorf("second Init created %v", res.Created)
	}
	after := snapshot(t, cfg.Dir)
	for name, content := range before {
		if after[name] != content {
			t.Errorf("second Init changed %s", name)
		}
	}
	p, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.CACertPEM(), []byte(before[CACertFile])) {
		t.Error("Open loaded another CA")
	}
	for name, content := range snapshot(t, cfg.Dir) {
		if before[name] != content {
			t.Errorf("Open changed %s", name)
		}
	}
}

func TestInitRepairs(t *testing.T) {
	cfg := testConfig(t)
	if _, _, err := Init(cfg, testIP); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, cfg.Dir)

	// A lost password: the bundle is rebuilt from the existing key and certificate.
	os.Remove(filepath.Join(cfg.Dir, P12PasswordFile))
	// Another IP: only the IP certificate changes.
	_, res, err := Init(cfg, "198.51.100.9")
	if err != nil {
		t.Fatal(err)
	}
	after := snapshot(t, cfg.Dir)
	for _, name := range []string{CAKeyFile, CACertFile, ClientKeyFile, ClientCertFile, RevokedFile, CRLFile} {
		if before[name] != after[name] {
			t.Errorf("%s changed", name)
		}
	}
	for _, name := range []string{ClientP12File, P12PasswordFile, SelfSignedCertFile, SelfSignedKeyFile} {
		if before[name] == after[name] {
			t.Errorf("%s was not rebuilt", name)
		}
	}
	if res.AdminP12Password != after[P12PasswordFile] {
		t.Error("returned password differs from .p12-password")
	}
	_, cert, _, err := pkcs12.DecodeChain([]byte(after[ClientP12File]), res.AdminP12Password)
	if err != nil || string(encodeCertPEM(cert.Raw)) != before[ClientCertFile] {
		t.Errorf("rebuilt bundle does not hold the existing admin certificate: %v", err)
	}
	ipCert, _ := readCertFile(filepath.Join(cfg.Dir, SelfSignedCertFile))
	if !certHasIP(ipCert, net.ParseIP("198.51.100.9")) {
		t.Error("IP certificate not replaced for the new IP")
	}
}

func TestInitRefuses(t *testing.T) {
	t.Run("bad ip", func(t *testing.T) {
		if _, _, err := Init(testConfig(t), "not-an-ip"); err == nil {
			t.Error("Init accepted a bad IP")
		}
	})
	t.Run("CA key lost", func(t *testing.T) {
		cfg := testConfig(t)
		if _, _, err := Init(cfg, testIP); err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(cfg.Dir, CAKeyFile))
		if _, _, err := Init(cfg, testIP); err == nil {
			t.Error("Init silently replaced a CA whose key is missing")
		}
		if _, err := Open(cfg); err == nil {
			t.Error("Open succeeded without a CA key")
		}
	})
	t.Run("open missing", func(t *testing.T) {
		cfg := testConfig(t)
		if _, err := Open(cfg); err == nil {
			t.Error("Open succeeded on an empty directory")
		}
		if _, err := os.Stat(cfg.Dir); err == nil {
			t.Error("Open created the directory")
		}
	})
}

func TestIssueClientAndP12(t *testing.T) {
	p, _ := newTestPKI(t)
	cred, err := p.IssueClient(AgentCN("home"))
	if err != nil {
		t.Fatal(err)
	}
	checkClientCert(t, p, cred.Cert, "agent:home")
	if cred.Serial != FormatSerial(cred.Cert.SerialNumber) {
		t.Errorf("Serial %s does not match the certificate", cred.Serial)
	}
	password, err := NewHexPassword()
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(password) {
		t.Errorf("hex password %q", password)
	}
	data, err := p.EncodeP12(cred, password)
	if err != nil {
		t.Fatal(err)
	}
	// Legacy format for macOS Keychain: PBE-SHA1-3DES and a SHA-1 MAC, no PBES2.
	oid3DES := []byte{0x06, 0x0a, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x03}
	oidPBES2 := []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d}
	oidSHA1 := []byte{0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a}
	if bytes.Count(data, oid3DES) < 2 || bytes.Contains(data, oidPBES2) || !bytes.Contains(data, oidSHA1) {
		t.Error("P12 is not in the legacy PBE-SHA1-3DES / SHA-1 MAC format")
	}
	key, cert, cas, err := pkcs12.DecodeChain(data, password)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.Equal(cred.Cert) || !key.(*rsa.PrivateKey).Equal(cred.Key) || len(cas) != 1 || !cas[0].Equal(p.CACert()) {
		t.Error("P12 content wrong")
	}
}

func ecKey(t *testing.T, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSignCSRIgnoresSubjectAndExtensions(t *testing.T) {
	p, _ := newTestPKI(t)
	rsaKey, _ := pkitest.GenerateKey(2048)
	for name, key := range map[string]crypto.Signer{"rsa": rsaKey, "p256": ecKey(t, elliptic.P256()), "p384": ecKey(t, elliptic.P384())} {
		t.Run(name, func(t *testing.T) {
			text := pkitest.CSR(t, key, "admin", "evil.example.com")
			csr, err := ParseCSR(text)
			if err != nil {
				t.Fatal(err)
			}
			iss, err := p.SignCSR(csr, AgentCN("laptop"))
			if err != nil {
				t.Fatal(err)
			}
			checkClientCert(t, p, iss.Cert, "agent:laptop")
			if !publicKeysEqual(iss.Cert.PublicKey, csr.PublicKey) {
				t.Error("certificate is not for the CSR's key")
			}
			if parsed, err := parseCertPEM(iss.CertPEM); err != nil || !parsed.Equal(iss.Cert) {
				t.Error("CertPEM does not hold the certificate")
			}
		})
	}
}

func TestDefaultKeyGenerator(t *testing.T) {
	k, err := Config{}.genKey(2048)
	if err != nil || k.N.BitLen() != 2048 {
		t.Fatalf("default generator: %v", err)
	}
	k2, _ := Config{}.genKey(2048)
	if k.Equal(k2) {
		t.Error("default generator repeats keys")
	}
}
