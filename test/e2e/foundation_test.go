package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"
)

// foreignCert is a client certificate from a CA that is not the relay's,
// with the admin's subject.
func foreignCert(t *testing.T) tls.Certificate {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Portlama CA", Organization: []string{"Portlama"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "admin", Organization: []string{"Portlama"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// refusedByNginx asserts that nginx answered an API call for a missing or
// bad client certificate (403 {"error":"mTLS certificate required"}), so
// the request never reached the panel: the panel answers /api/health
// without identity, and a revoked certificate with "Certificate has been
// revoked".
func refusedByNginx(t *testing.T, what string, code int, body string) {
	t.Helper()
	var e struct{ Error string }
	if code != http.StatusForbidden || json.Unmarshal([]byte(body), &e) != nil || e.Error != "mTLS certificate required" {
		t.Fatalf("%s: got %d %q; want nginx's 403 mTLS certificate required", what, code, body)
	}
}

func TestPanelRequiresValidClientCertificate(t *testing.T) {
	st := shared(t)
	health := st.Info.PanelURL + "/api/health"

	code, body := call(t, clientWith(st, nil), "GET", health, nil)
	refusedByNginx(t, "no certificate", code, body)

	fc := foreignCert(t)
	code, body = call(t, clientWith(st, &fc), "GET", health, nil)
	refusedByNginx(t, "foreign CA", code, body)

	out := mustCall(t, admin(t, st), "GET", health, nil, 200)
	var h struct{ Status, Version string }
	decode(t, out, &h)
	if h.Status != "ok" || h.Version == "" {
		t.Fatalf("health = %s", out)
	}
}

// A revoked certificate is refused by nginx itself (through the CRL), not
// only by the panel.
func TestRevokedCertificateRefusedByNginx(t *testing.T) {
	st := shared(t)
	cert := newAgentCert(t, st, "revoke-me")
	c := clientWith(st, &cert)
	mustCall(t, c, "GET", st.Info.PanelURL+"/api/tunnels", nil, 200)

	mustCall(t, admin(t, st), "DELETE", st.Info.PanelURL+"/api/certs/agent/revoke-me", nil, 200)
	// A fresh connection: the CRL is checked at the TLS handshake.
	c = clientWith(st, &cert)
	code, body := call(t, c, "GET", st.Info.PanelURL+"/api/tunnels", nil)
	refusedByNginx(t, "revoked agent certificate", code, body)
	code, body = call(t, c, "GET", hostURL(st, "panel", "/api/health"), nil)
	refusedByNginx(t, "revoked agent certificate on panel.<d>", code, body)
}

// The panel trusts identity only from nginx: a request straight to its port
// with forged certificate headers carries no identity.
func TestPanelPortIgnoresForgedIdentity(t *testing.T) {
	st := shared(t)
	direct := "http://" + st.Relay.Addrs.Panel
	for _, secret := range []string{"", strings.Repeat("0", 64)} {
		req, _ := http.NewRequest("GET", direct+"/api/onboarding/status", nil)
		req.Header.Set("X-SSL-Client-Verify", "SUCCESS")
		req.Header.Set("X-SSL-Client-DN", "CN=admin,O=Portlama")
		req.Header.Set("X-SSL-Client-Serial", "01")
		if secret != "" {
			req.Header.Set("X-Portlama-Proxy-Secret", secret)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 403 || !strings.Contains(string(body), "mTLS certificate required") {
			t.Fatalf("forged headers (secret %q): %d %s", secret, resp.StatusCode, body)
		}
	}
}

func TestOnboardingRoutesAreAdminOnly(t *testing.T) {
	st := shared(t)
	cert := newAgentCert(t, st, "onboarding-probe", "tunnels:read", "tunnels:write", "system:read")
	c := clientWith(st, &cert)
	code, body := call(t, c, "GET", st.Info.PanelURL+"/api/onboarding/status", nil)
	if code != 403 || !strings.Contains(body, "Insufficient certificate scope") {
		t.Fatalf("agent on onboarding status: %d %s", code, body)
	}
	// The demo is onboarded: the gate answers 410 before the role guard.
	code, body = call(t, c, "POST", st.Info.PanelURL+"/api/onboarding/domain", map[string]any{"domain": "x.example", "email": "a@x.example"})
	if code != 410 || !strings.Contains(body, "Onboarding already completed") {
		t.Fatalf("agent on onboarding domain after completion: %d %s", code, body)
	}
	mustCall(t, c, "GET", st.Info.PanelURL+"/api/system/stats", nil, 200)
}
