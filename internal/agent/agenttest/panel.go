// Package agenttest has a stand-in relay panel for tests of the agent and
// its command: it really signs CSRs on POST /api/enroll with its own CA, and
// demands a client certificate from that CA on the other /api routes,
// answering with the contract's JSON and error envelopes. It is a stand-in
// until end-to-end tests run against the real panel behind nginx.
package agenttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// CA is a small certificate authority for tests.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	PEM  []byte
}

// NewCA makes a CA with the given common name.
func NewCA(t testing.TB, cn string) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Portlama"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &CA{Cert: cert, Key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n.Add(n, big.NewInt(1))
}

// Sign issues a certificate for pub from tmpl (serial and validity filled
// in when missing) and returns it as PEM.
func (ca *CA) Sign(pub any, tmpl *x509.Certificate) ([]byte, error) {
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = serial()
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = time.Now().Add(-time.Hour)
		tmpl.NotAfter = time.Now().Add(730 * 24 * time.Hour)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// ServerCert issues a TLS server certificate for 127.0.0.1.
func (ca *CA) ServerCert(t testing.TB) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := ca.Sign(&key.PublicKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		t.Fatal(err)
	}
	return keyPair(t, certPEM, key)
}

func keyPair(t testing.TB, certPEM []byte, key *ecdsa.PrivateKey) tls.Certificate {
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	c, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// SelfSignedIPCert is like the relay's panel-IP vhost certificate:
// self-signed, CN and SAN 127.0.0.1. It returns the pair and the PEM.
func SelfSignedIPCert(t testing.TB) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "127.0.0.1", Organization: []string{"Portlama"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(3650 * 24 * time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, // not a CA, like internal/pki's IP certificate

	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return keyPair(t, certPEM, key), certPEM
}

// Panel is the stand-in panel. Label is the relay label the enrollment
// token belongs to; Token is the valid one-time token.
type Panel struct {
	Server  *httptest.Server
	CA      *CA
	CertPEM []byte
	Token   string
	Label   string
	// EnrollCalls counts requests that reached POST /api/enroll.
	EnrollCalls atomic.Int32

	mu          sync.Mutex
	used        bool
	agentConfig []byte
	tunnels     []map[string]any
}

// NewPanel starts a panel on 127.0.0.1 with a self-signed IP certificate.
func NewPanel(t testing.TB) *Panel {
	t.Helper()
	p := &Panel{CA: NewCA(t, "Portlama CA"), Token: strings.Repeat("ab", 32), Label: "home"}
	cert, certPEM := SelfSignedIPCert(t)
	p.CertPEM = certPEM
	pool := x509.NewCertPool()
	pool.AddCert(p.CA.Cert)
	p.Server = httptest.NewUnstartedServer(http.HandlerFunc(p.serve))
	p.Server.TLS = &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    pool,
	}
	p.Server.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	p.Server.StartTLS()
	t.Cleanup(p.Server.Close)
	return p
}

// URL is the panel URL (https://127.0.0.1:<port>).
func (p *Panel) URL() string { return p.Server.URL }

// Fingerprint is the SHA-256 fingerprint of the panel certificate
// (colon-separated upper-case hex).
func (p *Panel) Fingerprint() string {
	b, _ := pem.Decode(p.CertPEM)
	sum := sha256.Sum256(b.Bytes)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	parts := make([]string, 0, 32)
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

// SetAgentConfig sets the body of GET /api/tunnels/agent-config.
func (p *Panel) SetAgentConfig(body []byte) {
	p.mu.Lock()
	p.agentConfig = body
	p.mu.Unlock()
}

// SetTunnels sets the tunnels GET /api/tunnels lists (docs/api.md, "Tunnels" objects).
func (p *Panel) SetTunnels(ts []map[string]any) {
	p.mu.Lock()
	p.tunnels = ts
	p.mu.Unlock()
}

// WriteJSON writes v with status code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (p *Panel) serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/api/health":
		WriteJSON(w, 200, map[string]string{"status": "ok", "version": "1.2.3"})
		return
	case r.URL.Path == "/api/enroll" && r.Method == http.MethodPost:
		p.enroll(w, r)
		return
	}
	// nginx: a certificate is required on everything else.
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		w.WriteHeader(400)
		_, _ = io.WriteString(w, "<html>400 No required SSL certificate was sent</html>")
		return
	}
	if cn := r.TLS.PeerCertificates[0].Subject.CommonName; cn != "agent:"+p.Label {
		WriteJSON(w, 403, map[string]string{"error": "mTLS certificate required"})
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case r.URL.Path == "/api/tunnels/agent-config" && r.Method == http.MethodGet:
		if p.agentConfig == nil {
			WriteJSON(w, 400, map[string]string{"error": "Domain not configured"})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(p.agentConfig)
	case r.URL.Path == "/api/tunnels" && r.Method == http.MethodGet:
		ts := p.tunnels
		if ts == nil {
			ts = []map[string]any{}
		}
		WriteJSON(w, 200, map[string]any{"tunnels": ts})
	case r.URL.Path == "/api/tunnels" && r.Method == http.MethodPost:
		// This agent holds only tunnels:read.
		WriteJSON(w, 403, map[string]any{"error": "Insufficient certificate capability",
			"details": map[string]any{"required": "tunnels:write", "granted": []string{"tunnels:read"}}})
	case strings.HasPrefix(r.URL.Path, "/api/tunnels/") && (r.Method == http.MethodPatch || r.Method == http.MethodDelete):
		id := strings.TrimPrefix(r.URL.Path, "/api/tunnels/")
		var body map[string]any
		if r.Method == http.MethodPatch {
			if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
				WriteJSON(w, 400, map[string]string{"error": "Invalid JSON body"})
				return
			}
		}
		for i, t := range p.tunnels {
			if t["id"] != id {
				continue
			}
			if r.Method == http.MethodDelete {
				p.tunnels = append(p.tunnels[:i], p.tunnels[i+1:]...)
				WriteJSON(w, 200, map[string]any{"ok": true})
				return
			}
			if en, ok := body["enabled"].(bool); ok {
				t["enabled"] = en
			}
			WriteJSON(w, 200, map[string]any{"ok": true, "tunnel": t})
			return
		}
		WriteJSON(w, 404, map[string]string{"error": "Tunnel not found"})
	default:
		WriteJSON(w, 404, map[string]string{"error": "Not found"})
	}
}

func (p *Panel) enroll(w http.ResponseWriter, r *http.Request) {
	p.EnrollCalls.Add(1)
	var body struct {
		Token string `json:"token"`
		CSR   string `json:"csr"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Token == "" || body.CSR == "" {
		WriteJSON(w, 400, map[string]string{"error": "Validation failed"})
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if body.Token != p.Token {
		WriteJSON(w, 401, map[string]string{"error": "Invalid enrollment token"})
		return
	}
	if p.used {
		WriteJSON(w, 401, map[string]string{"error": "Enrollment token has already been used"})
		return
	}
	b, _ := pem.Decode([]byte(body.CSR))
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		WriteJSON(w, 400, map[string]any{"error": "Invalid CSR", "details": "not a PEM certificate request"})
		return
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err == nil {
		err = csr.CheckSignature()
	}
	if err != nil {
		WriteJSON(w, 400, map[string]any{"error": "Invalid CSR", "details": err.Error()})
		return
	}
	if k, ok := csr.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		WriteJSON(w, 400, map[string]any{"error": "Invalid CSR", "details": "key must be RSA >= 2048 or ECDSA P-256/P-384"})
		return
	}
	sn := serial()
	cert, err := p.CA.Sign(csr.PublicKey, &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: "agent:" + p.Label, Organization: []string{"Portlama"}},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		WriteJSON(w, 500, map[string]string{"error": "Enrollment failed"})
		return
	}
	p.used = true
	WriteJSON(w, 200, map[string]any{"ok": true, "cert": string(cert), "caCert": string(p.CA.PEM),
		"label": p.Label, "serial": strings.ToUpper(sn.Text(16)), "expiresAt": "2028-11-27T00:00:00.000Z"})
}
