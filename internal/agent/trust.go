package agent

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
)

// Fingerprint is the SHA-256 fingerprint of a DER certificate in the form
// browsers and `openssl x509 -fingerprint -sha256` print: upper-case hex
// pairs separated by colons.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

// NormalizeFingerprint accepts a SHA-256 fingerprint with or without colons,
// spaces, a "sha256:" / "SHA256=" prefix, in any case, and returns it in the
// Fingerprint form.
func NormalizeFingerprint(s string) (string, error) {
	v := strings.TrimSpace(s)
	low := strings.ToLower(v)
	for _, p := range []string{"sha256:", "sha256=", "sha256 fingerprint=", "sha-256:"} {
		if strings.HasPrefix(low, p) {
			v = v[len(p):]
			break
		}
	}
	v = strings.NewReplacer(":", "", " ", "", "-", "").Replace(v)
	b, err := hex.DecodeString(v)
	if err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("invalid certificate fingerprint %q: expected 32 bytes of hex (SHA-256), e.g. AB:CD:...", s)
	}
	h := strings.ToUpper(hex.EncodeToString(b))
	var out strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			out.WriteByte(':')
		}
		out.WriteString(h[i : i+2])
	}
	return out.String(), nil
}

// UntrustedPanelError is returned when the panel presented a certificate that
// matches no pin and chains to no trusted root.
type UntrustedPanelError struct {
	// Host is the panel URL's host.
	Host string
	// Fingerprint is the SHA-256 fingerprint of the presented certificate.
	Fingerprint string
	// Reason is why it was not trusted.
	Reason string
}

func (e *UntrustedPanelError) Error() string {
	return fmt.Sprintf("the panel at %s presented a certificate this machine does not trust (%s); "+
		"its SHA-256 fingerprint is %s. Compare it with the certificate your browser shows for the panel, "+
		"then re-run setup with --panel-fingerprint %s (or pass the panel's certificate with --ca-cert FILE)",
		e.Host, e.Reason, e.Fingerprint, e.Fingerprint)
}

// ErrFingerprintMismatch is wrapped when a pinned panel certificate changed.
var ErrFingerprintMismatch = errors.New("panel certificate does not match the pinned fingerprint")

// panelVerifier checks the panel's certificate: pinned fingerprint or
// chain to roots. It holds no per-connection state, so one value serves
// concurrent connections.
type panelVerifier struct {
	host    string
	pin     string         // normalised fingerprint, "" for none
	roots   *x509.CertPool // nil: chain verification disabled
	onlyPin bool           // pin mode: a mismatching fingerprint is fatal

	// accepted, when set, is told how each accepted certificate passed.
	accepted func(leaf *x509.Certificate, viaPin bool)
}

func (v *panelVerifier) verify(cs tls.ConnectionState) error {
	viaPin, err := v.check(cs)
	if err == nil && v.accepted != nil {
		v.accepted(cs.PeerCertificates[0], viaPin)
	}
	return err
}

func (v *panelVerifier) check(cs tls.ConnectionState) (viaPin bool, err error) {
	if len(cs.PeerCertificates) == 0 {
		return false, errors.New("panel presented no certificate")
	}
	leaf := cs.PeerCertificates[0]
	presented := Fingerprint(leaf.Raw)
	if v.pin != "" && presented == v.pin {
		return true, nil
	}
	if v.onlyPin {
		return false, fmt.Errorf("%w (pinned %s, presented %s): if the relay's certificate was replaced on purpose, run setup again",
			ErrFingerprintMismatch, v.pin, presented)
	}
	if v.pin != "" {
		// A fingerprint the user gave is a pin: a certificate that does not
		// match it is refused even if it chains to a trusted root.
		return false, &UntrustedPanelError{Host: v.host, Fingerprint: presented, Reason: "fingerprint does not match " + v.pin}
	}
	var reason string
	if v.roots == nil {
		reason = "no trusted roots"
	} else {
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		_, err := leaf.Verify(x509.VerifyOptions{
			DNSName:       v.host,
			Roots:         v.roots,
			Intermediates: inter,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		if err == nil {
			return false, nil
		}
		reason = err.Error()
	}
	return false, &UntrustedPanelError{Host: v.host, Fingerprint: presented, Reason: reason}
}

// tlsConfig returns a client TLS config whose server check is v.verify.
// Standard verification is replaced (InsecureSkipVerify) only so that the
// pin can be honoured; VerifyConnection always runs and either matches the
// pin or performs the full chain and host name verification itself.
func (v *panelVerifier) tlsConfig(cert *tls.Certificate) *tls.Config {
	c := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, //nolint:gosec // verified in VerifyConnection (pin or full chain + host name)
		VerifyConnection:   v.verify,
	}
	if cert != nil {
		c.Certificates = []tls.Certificate{*cert}
	}
	return c
}

func hostOf(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("parse URL %q: %w", rawURL, err)
	}
	h := u.Hostname()
	if h == "" {
		return "", fmt.Errorf("URL %q has no host", rawURL)
	}
	return h, nil
}

// NormalizePanelURL checks a panel URL (https, a host, no query or fragment)
// and returns it without a trailing slash.
func NormalizePanelURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", fmt.Errorf("invalid panel URL %q: %w", raw, err)
	}
	if u.Scheme != "https" {
		return "", fmt.Errorf("invalid panel URL %q: it must start with https:// (e.g. https://203.0.113.7:9292)", raw)
	}
	if u.Hostname() == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("invalid panel URL %q: expected https://<host>[:port]", raw)
	}
	if p := u.Port(); p != "" {
		if _, err := net.LookupPort("tcp", p); err != nil {
			return "", fmt.Errorf("invalid panel URL %q: bad port", raw)
		}
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// Identity is a label's credentials loaded from disk: the client certificate
// and key, the relay CA, and how the panel is trusted.
type Identity struct {
	Label   string
	Profile Profile
	Paths   Paths
	// Cert is the client certificate with its key.
	Cert tls.Certificate
	// Leaf is the parsed client certificate.
	Leaf *x509.Certificate
	// RelayCA holds the pinned relay CA.
	RelayCA *x509.CertPool
	// extra anchors saved with --ca-cert at enrollment
	panelCA *x509.CertPool
}

// LoadIdentity loads the credentials of label (already resolved).
func (h Home) LoadIdentity(label string) (*Identity, error) {
	prof, err := h.LoadProfile(label)
	if err != nil {
		return nil, err
	}
	p := h.Paths(label)
	cert, err := tls.LoadX509KeyPair(p.Cert, p.Key)
	if err != nil {
		return nil, fmt.Errorf("load client certificate of %q: %w", label, err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("parse client certificate of %q: %w", label, err)
	}
	cert.Leaf = leaf
	caPEM, err := os.ReadFile(p.CA)
	if err != nil {
		return nil, fmt.Errorf("read relay CA of %q: %w", label, err)
	}
	ca := x509.NewCertPool()
	if !ca.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("relay CA file %s holds no certificate", p.CA)
	}
	id := &Identity{Label: label, Profile: prof, Paths: p, Cert: cert, Leaf: leaf, RelayCA: ca}
	if b, err := os.ReadFile(p.PanelCA); err == nil {
		pool := x509.NewCertPool()
		if pool.AppendCertsFromPEM(b) {
			id.panelCA = pool
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", p.PanelCA, err)
	}
	return id, nil
}

// systemPoolWith returns the system roots (empty pool if unavailable) plus
// the certificates of the given pools' PEM.
func systemPoolWith(extra ...[]byte) *x509.CertPool {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	for _, b := range extra {
		pool.AppendCertsFromPEM(b)
	}
	return pool
}

// PanelTLSConfig is the TLS config for API calls to this label's panel: the
// client certificate, and the panel verified as pinned at enrollment.
func (id *Identity) PanelTLSConfig() (*tls.Config, error) {
	host, err := hostOf(id.Profile.PanelURL)
	if err != nil {
		return nil, err
	}
	v := &panelVerifier{host: host}
	switch id.Profile.PanelTrust.Mode {
	case TrustPin:
		v.pin = id.Profile.PanelTrust.Fingerprint
		v.onlyPin = true
		if v.pin == "" {
			return nil, fmt.Errorf("config of %q pins the panel but has no fingerprint: run setup again", id.Label)
		}
	case TrustChain:
		caPEM, err := os.ReadFile(id.Paths.CA)
		if err != nil {
			return nil, fmt.Errorf("read relay CA: %w", err)
		}
		extra, _ := os.ReadFile(id.Paths.PanelCA)
		v.roots = systemPoolWith(caPEM, extra)
	default:
		return nil, fmt.Errorf("config of %q has unknown panel trust mode %q: run setup again", id.Label, id.Profile.PanelTrust.Mode)
	}
	return v.tlsConfig(&id.Cert), nil
}

// TunnelTLSConfig is the TLS config for the tunnel server: the client
// certificate, and the server verified (chain and host name of serverURL)
// against the system roots plus the pinned relay CA.
func (id *Identity) TunnelTLSConfig(serverURL string) (*tls.Config, error) {
	host, err := hostOf(serverURL)
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(id.Paths.CA)
	if err != nil {
		return nil, fmt.Errorf("read relay CA: %w", err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		ServerName:   host,
		RootCAs:      systemPoolWith(caPEM),
		Certificates: []tls.Certificate{id.Cert},
	}, nil
}

// GenerateKey makes the agent's ECDSA P-256 key.
func GenerateKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate ECDSA P-256 key: %w", err)
	}
	return k, nil
}

// EncodeKey returns the key as a PEM "PRIVATE KEY" (PKCS #8) block.
func EncodeKey(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// CreateCSR returns a PEM certificate request for k. The relay ignores the
// subject and sets CN=agent:<label> itself.
func CreateCSR(k *ecdsa.PrivateKey, label string) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:            pkix.Name{CommonName: "agent:" + label, Organization: []string{"Portlama"}},
		SignatureAlgorithm: x509.ECDSAWithSHA256,
	}, k)
	if err != nil {
		return nil, fmt.Errorf("create certificate request: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}
