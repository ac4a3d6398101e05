package panel

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/portlama/portlama/internal/agent"
	"github.com/portlama/portlama/internal/agents"
	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/pki"
	"github.com/portlama/portlama/internal/pki/pkitest"
)

func TestCertsList(t *testing.T) {
	e := newRelayEnv(t)
	// An individual certificate that expires in 10 days, and a broken one.
	certPEM, keyPEM, err := e.pki.IssueServer([]string{"old.example.com"}, 10*24*time.Hour+time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.certs.Install("old.example.com", certPEM, keyPEM, []string{"old.example.com"}, "http-01"); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(e.certs.Dir+"/broken.example.com", 0o700); err != nil {
		t.Fatal(err)
	}

	r := e.do("GET", "/api/certs", "", adminHeaders())
	r.expect(t, 200, "")
	var body struct {
		Certs []map[string]any `json:"certs"`
	}
	if err := json.Unmarshal([]byte(r.raw), &body); err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, c := range body.Certs {
		types = append(types, c["type"].(string))
	}
	want := []string{"letsencrypt", "letsencrypt", "mtls-client", "mtls-ca"}
	if !slices.Equal(types, want) {
		t.Fatalf("types %v, want %v (%s)", types, want, r.raw)
	}
	old := body.Certs[0]
	if old["domain"] != "old.example.com" || old["daysUntilExpiry"] != 10.0 || old["expiringSoon"] != true ||
		old["path"] != e.certs.Dir+"/old.example.com/fullchain.pem" {
		t.Fatalf("old entry %v", old)
	}
	wild := body.Certs[1]
	if wild["domain"] != "example.com" || wild["expiringSoon"] != false || wild["daysUntilExpiry"].(float64) < 89 {
		t.Fatalf("wildcard entry %v", wild)
	}
	client, ca := body.Certs[2], body.Certs[3]
	if client["domain"] != nil || client["path"] != e.pki.Path(pki.ClientCertFile) || ca["path"] != e.pki.Path(pki.CACertFile) {
		t.Fatalf("pki entries %v %v", client, ca)
	}
	if _, ok := client["domain"]; !ok {
		t.Fatal("domain key missing for PKI entry")
	}
	exp, err := time.Parse("2006-01-02T15:04:05.000Z", ca["expiresAt"].(string))
	if err != nil || !exp.Equal(e.pki.CACert().NotAfter) {
		t.Fatalf("ca expiresAt %v: %v", ca["expiresAt"], err)
	}

	a := e.newAgent(t, "home", api.CapTunnelsWrite)
	e.do("GET", "/api/certs", "", a.headers()).
		expect(t, 403, `{"error":"Insufficient certificate scope","details":{"required":["admin"],"current":"agent"}}`)
	e.do("GET", "/api/certs/admin/auth-mode", "", adminHeaders()).expect(t, 200, `{"adminAuthMode":"p12"}`)
	e.do("GET", "/api/certs/admin/auth-mode", "", a.headers()).expect(t, 403, "")
	// The renewal timer is not running in this relay.
	e.do("GET", "/api/certs/auto-renew-status", "", adminHeaders()).expect(t, 200, `{"active":false,"nextRun":null,"lastRun":null}`)
	// Out of scope (docs/api.md, "Placement and transport").
	e.do("POST", "/api/certs/agent/enroll-delegated", `{"label":"x"}`, adminHeaders()).expect(t, 404, `{"error":"Not found"}`)
	e.do("POST", "/api/certs/admin/upgrade-to-hardware-bound", "", adminHeaders()).expect(t, 404, `{"error":"Not found"}`)
}

func TestAdminRotation(t *testing.T) {
	e := newRelayEnv(t)
	oldAdmin := e.realAdminHeaders(t)
	a := e.newAgent(t, "home")
	e.do("POST", "/api/certs/mtls/rotate", "", a.headers()).expect(t, 403, "")
	e.do("GET", "/api/certs/mtls/download", "", a.headers()).expect(t, 403, "")

	r := e.do("GET", "/api/certs/mtls/download", "", oldAdmin)
	r.expect(t, 200, "")
	if r.header.Get("Content-Type") != "application/x-pkcs12" ||
		r.header.Get("Content-Disposition") != `attachment; filename="client.p12"` {
		t.Fatalf("headers %v", r.header)
	}
	onDisk, _ := os.ReadFile(e.pki.Path(pki.ClientP12File))
	if r.raw != string(onDisk) {
		t.Fatal("downloaded bundle differs from client.p12")
	}

	r = e.do("POST", "/api/certs/mtls/rotate", "{}", oldAdmin)
	r.expect(t, 200, "")
	if r.body["ok"] != true || r.body["warning"] != rotateWarning {
		t.Fatalf("body %s", r.raw)
	}
	pw, _ := r.body["p12Password"].(string)
	if len(pw) != 32 {
		t.Fatalf("password %q", pw)
	}
	p12, err := base64.StdEncoding.DecodeString(r.body["p12"].(string))
	if err != nil {
		t.Fatal(err)
	}
	_, cert, _, err := pkcs12.DecodeChain(p12, pw)
	if err != nil {
		t.Fatalf("decode new P12: %v", err)
	}
	if cert.Subject.CommonName != "admin" || api.FormatTime(cert.NotAfter) != r.body["expiresAt"] {
		t.Fatalf("new cert %v %v", cert.Subject, r.body["expiresAt"])
	}
	// The old admin certificate is refused from the next request on.
	e.do("GET", "/api/certs/admin/auth-mode", "", oldAdmin).expect(t, 403, `{"error":"Certificate has been revoked"}`)
	newAdmin := certHeaders("CN=admin,O=Portlama", pki.FormatSerial(cert.SerialNumber))
	e.do("GET", "/api/certs/admin/auth-mode", "", newAdmin).expect(t, 200, "")
	r = e.do("GET", "/api/certs/mtls/download", "", newAdmin)
	r.expect(t, 200, "")
	if r.raw != string(p12) {
		t.Fatal("download does not return the rotated bundle")
	}

	if err := os.Remove(e.pki.Path(pki.ClientP12File)); err != nil {
		t.Fatal(err)
	}
	e.do("GET", "/api/certs/mtls/download", "", newAdmin).expect(t, 404, `{"error":"No client certificate found"}`)
}

func TestAgentCertificates(t *testing.T) {
	e := newRelayEnv(t)
	admin := adminHeaders()

	r := e.do("POST", "/api/certs/agent", `{"label":"home","capabilities":["tunnels:read","tunnels:write"],"allowedSites":["blog"],"extra":1}`, admin)
	r.expect(t, 200, "")
	pw, _ := r.body["p12Password"].(string)
	serial, _ := r.body["serial"].(string)
	if r.body["ok"] != true || r.body["label"] != "home" || len(pw) != 32 || serial == "" || r.body["expiresAt"] == nil {
		t.Fatalf("body %s", r.raw)
	}
	entry, err := e.agents.Lookup("home")
	if err != nil || !slices.Equal(entry.Capabilities, []string{"tunnels:read", "tunnels:write"}) ||
		!slices.Equal(entry.AllowedSites, []string{"blog"}) || entry.Serial != serial {
		t.Fatalf("registry %+v %v", entry, err)
	}
	if e.aclPorts(t, "home") == nil {
		t.Fatal("no tunnel credentials created")
	}
	// Defaults: capabilities ["tunnels:read"], allowedSites [].
	e.do("POST", "/api/certs/agent", `{"label":"plain"}`, admin).expect(t, 200, "")
	plain, _ := e.agents.Lookup("plain")
	if !slices.Equal(plain.Capabilities, []string{"tunnels:read"}) || len(plain.AllowedSites) != 0 {
		t.Fatalf("defaults %+v", plain)
	}

	e.do("POST", "/api/certs/agent", `{"label":"home"}`, admin).
		expect(t, 409, `{"error":"Agent certificate with label \"home\" already exists"}`)
	r = e.do("POST", "/api/certs/agent", `{"label":"x","capabilities":["tunnels:read","root"]}`, admin)
	r.expect(t, 400, `{"error":"Validation failed","details":{"issues":[{"path":["capabilities",1],"message":"Invalid capability: root"}]}}`)
	for _, body := range []string{
		`{"label":"x","capabilities":["tunnels:write"]}`, // must contain tunnels:read
		`{"label":"x","capabilities":"tunnels:read"}`,
		`{"label":"x","capabilities":[1]}`,
		`{"label":"X"}`,
		`{"label":"-x"}`,
		`{"label":"a:b"}`,
		`{"label":"` + strings.Repeat("a", 51) + `"}`,
		`{"label":7}`,
		`{}`,
		`{"label":"x","allowedSites":["Blog"]}`,
		`{"label":"x","allowedSites":[""]}`,
		`{"label":"x","allowedSites":"blog"}`,
		`{"label":"x","allowedSites":["` + strings.Repeat("a", 101) + `"]}`,
	} {
		r := e.do("POST", "/api/certs/agent", body, admin)
		r.expect(t, 400, "")
		if r.body["error"] != "Validation failed" {
			t.Fatalf("%s: %s", body, r.raw)
		}
	}
	e.do("POST", "/api/certs/agent", `{"label":"x","allowedSites":["`+strings.Repeat("a", 100)+`"]}`, admin).expect(t, 200, "")

	// Agents cannot manage agents.
	home := agentCert{label: "home", serial: serial}
	scope := `{"error":"Insufficient certificate scope","details":{"required":["admin"],"current":"agent"}}`
	e.do("POST", "/api/certs/agent", `{"label":"evil"}`, home.headers()).expect(t, 403, scope)
	e.do("GET", "/api/certs/agent", "", home.headers()).expect(t, 403, scope)
	e.do("DELETE", "/api/certs/agent/plain", "", home.headers()).expect(t, 403, scope)
	e.do("PATCH", "/api/certs/agent/home/capabilities", `{"capabilities":["tunnels:read","system:read"]}`, home.headers()).expect(t, 403, scope)
	e.do("POST", "/api/certs/agent/enroll", `{"label":"evil"}`, home.headers()).expect(t, 403, scope)

	// Download.
	r = e.do("GET", "/api/certs/agent/home/download", "", admin)
	r.expect(t, 200, "")
	if r.header.Get("Content-Disposition") != `attachment; filename="home.p12"` || r.header.Get("Content-Type") != "application/x-pkcs12" {
		t.Fatalf("headers %v", r.header)
	}
	_, cert, _, err := pkcs12.DecodeChain([]byte(r.raw), pw)
	if err != nil || cert.Subject.CommonName != "agent:home" {
		t.Fatalf("agent P12: %v %v", err, cert)
	}
	e.do("GET", "/api/certs/agent/ghost/download", "", admin).expect(t, 404, `{"error":"Agent certificate \"ghost\" not found"}`)
	e.do("GET", "/api/certs/agent/Bad/download", "", admin).expect(t, 400, "")

	// Capabilities.
	e.do("PATCH", "/api/certs/agent/home/capabilities", `{"capabilities":["system:read"]}`, admin).
		expect(t, 200, `{"ok":true,"label":"home","capabilities":["tunnels:read","system:read"]}`)
	e.do("GET", "/api/system/stats", "", home.headers()).expect(t, 200, "")
	e.do("POST", "/api/tunnels", `{"subdomain":"x","port":8080}`, home.headers()).expect(t, 403, "")
	e.do("PATCH", "/api/certs/agent/home/capabilities", `{"capabilities":["nope"]}`, admin).
		expect(t, 400, `{"error":"Validation failed","details":{"issues":[{"path":["capabilities",0],"message":"Invalid capability: nope"}]}}`)
	e.do("PATCH", "/api/certs/agent/home/capabilities", `{}`, admin).expect(t, 400, "")
	e.do("PATCH", "/api/certs/agent/ghost/capabilities", `{"capabilities":[]}`, admin).
		expect(t, 404, `{"error":"Agent certificate \"ghost\" not found"}`)

	// Allowed sites.
	e.do("PATCH", "/api/certs/agent/home/allowed-sites", `{"allowedSites":["blog","docs"]}`, admin).
		expect(t, 200, `{"ok":true,"label":"home","allowedSites":["blog","docs"]}`)
	e.do("PATCH", "/api/certs/agent/home/allowed-sites", `{"allowedSites":["a b"]}`, admin).expect(t, 400, "")
	e.do("PATCH", "/api/certs/agent/home/allowed-sites", `{"allowedSites":null}`, admin).expect(t, 400, "")
	e.do("PATCH", "/api/certs/agent/ghost/allowed-sites", `{"allowedSites":[]}`, admin).expect(t, 404, "")

	// List, with expiringSoon.
	r = e.do("GET", "/api/certs/agent", "", admin)
	r.expect(t, 200, "")
	var list struct {
		Agents []map[string]any `json:"agents"`
	}
	if err := json.Unmarshal([]byte(r.raw), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Agents) != 3 || list.Agents[0]["label"] != "home" || list.Agents[0]["expiringSoon"] != false ||
		list.Agents[0]["enrollmentMethod"] != "p12" || list.Agents[0]["revoked"] != false {
		t.Fatalf("list %s", r.raw)
	}
	if _, ok := list.Agents[0]["revokedAt"]; ok {
		t.Fatal("revokedAt present for an active agent")
	}

	// Revocation: the agent is refused on its next request.
	e.do("DELETE", "/api/certs/agent/home", "", admin).expect(t, 200, `{"ok":true,"label":"home"}`)
	e.do("GET", "/api/tunnels", "", home.headers()).expect(t, 403, `{"error":"Certificate has been revoked"}`)
	if e.aclPorts(t, "home") != nil {
		t.Fatal("tunnel credentials kept after revocation")
	}
	revoked, _ := e.pki.IsRevoked(pki.NormalizeSerial(serial))
	if !revoked {
		t.Fatal("serial not in the revocation list")
	}
	e.do("DELETE", "/api/certs/agent/home", "", admin).expect(t, 404, `{"error":"Agent certificate \"home\" not found"}`)
	e.do("GET", "/api/certs/agent/home/download", "", admin).expect(t, 404, "")
	e.do("DELETE", "/api/certs/agent/Bad", "", admin).expect(t, 400, "")
	r = e.do("GET", "/api/certs/agent", "", admin)
	if !strings.Contains(r.raw, `"revoked":true`) || !strings.Contains(r.raw, `"revokedAt"`) {
		t.Fatalf("revoked entry not listed: %s", r.raw)
	}
	// The label can be reused.
	e.do("POST", "/api/certs/agent", `{"label":"home"}`, admin).expect(t, 200, "")
}

func TestAgentExpiringSoon(t *testing.T) {
	e := newRelayEnv(t)
	e.newAgent(t, "home")
	e.advance(pki.ClientValidity - 20*24*time.Hour)
	r := e.do("GET", "/api/certs/agent", "", adminHeaders())
	r.expect(t, 200, "")
	if !strings.Contains(r.raw, `"expiringSoon":true`) {
		t.Fatalf("not expiring soon: %s", r.raw)
	}
}

func TestEnrollmentTokens(t *testing.T) {
	e := newRelayEnv(t)
	admin := adminHeaders()
	r := e.do("POST", "/api/certs/agent/enroll", `{"label":"laptop","capabilities":["tunnels:read","sites:read"],"allowedSites":["blog"]}`, admin)
	r.expect(t, 200, "")
	tok, _ := r.body["token"].(string)
	if len(tok) != 64 || r.body["label"] != "laptop" || r.body["ok"] != true {
		t.Fatalf("body %s", r.raw)
	}
	// The fingerprint an agent enrolling by IP pins: the panel-IP vhost's
	// self-signed certificate.
	ipPEM, err := os.ReadFile(e.pki.Path(pki.SelfSignedCertFile))
	if err != nil {
		t.Fatal(err)
	}
	ipBlock, _ := pem.Decode(ipPEM)
	if ipBlock == nil || r.body["panelFingerprint"] != agent.Fingerprint(ipBlock.Bytes) {
		t.Fatalf("panelFingerprint %v", r.body["panelFingerprint"])
	}
	exp, err := time.Parse("2006-01-02T15:04:05.000Z", r.body["expiresAt"].(string))
	if err != nil || !exp.Equal(e.clock().Add(10*time.Minute).Truncate(time.Millisecond)) {
		t.Fatalf("expiresAt %v (%v)", r.body["expiresAt"], err)
	}
	// A second token replaces the first (still 200).
	r = e.do("POST", "/api/certs/agent/enroll", `{"label":"laptop"}`, admin)
	r.expect(t, 200, "")
	tok2 := r.body["token"].(string)
	toks, _ := e.agents.Tokens()
	if len(toks) != 1 || toks[0].Token != tok2 || tok2 == tok {
		t.Fatalf("tokens %+v", toks)
	}
	e.newAgent(t, "home")
	e.do("POST", "/api/certs/agent/enroll", `{"label":"home"}`, admin).
		expect(t, 409, `{"error":"Agent certificate with label \"home\" already exists"}`)
	e.do("POST", "/api/certs/agent/enroll", `{"label":"x","capabilities":["bad"]}`, admin).expect(t, 400, "")
	e.do("POST", "/api/certs/agent/enroll", `{"label":"x","capabilities":["sites:read"]}`, admin).expect(t, 400, "")
	e.do("POST", "/api/certs/agent/enroll", ``, admin).expect(t, 400, "")

	e.do("DELETE", "/api/certs/agent/enroll/laptop", "", admin).expect(t, 200, `{"ok":true,"revoked":true}`)
	e.do("DELETE", "/api/certs/agent/enroll/laptop", "", admin).expect(t, 200, `{"ok":true,"revoked":false}`)
	e.do("DELETE", "/api/certs/agent/enroll/Bad", "", admin).expect(t, 400, "")
	e.do("DELETE", "/api/certs/agent/other/laptop", "", admin).expect(t, 404, `{"error":"Not found"}`)
	e.do("DELETE", "/api/certs/agent/enroll/laptop", "", agentHeaders("home", mustSerial(t, e, "home"))).expect(t, 403, "")

	// Labels that collide with fixed path segments still work.
	for _, label := range []string{"download", "capabilities", "allowed-sites"} {
		e.do("POST", "/api/certs/agent/enroll", `{"label":"`+label+`"}`, admin).expect(t, 200, "")
		e.do("DELETE", "/api/certs/agent/enroll/"+label, "", admin).expect(t, 200, `{"ok":true,"revoked":true}`)
		e.do("DELETE", "/api/certs/agent/other/"+label, "", admin).expect(t, 404, "")
	}
	for _, label := range []string{"enroll", "upgrade-cert"} {
		e.do("POST", "/api/certs/agent", `{"label":"`+label+`"}`, admin).expect(t, 200, "")
		e.do("DELETE", "/api/certs/agent/"+label, "", admin).expect(t, 200, `{"ok":true,"label":"`+label+`"}`)
	}
}

func TestUpgradeCert(t *testing.T) {
	e := newRelayEnv(t)
	a := e.newAgent(t, "home", api.CapTunnelsWrite)
	e.do("POST", "/api/tunnels", `{"subdomain":"app","port":8080}`, a.headers()).expect(t, 201, "")
	pwBefore := e.password(t, "home")

	csr := pkitest.CSR(t, testCSRKey, "admin")
	e.do("POST", "/api/certs/agent/upgrade-cert", `{"csr":`+jsonString(csr)+`}`, adminHeaders()).
		expect(t, 403, `{"error":"Agent label is required (must use agent certificate)"}`)
	e.do("POST", "/api/certs/agent/upgrade-cert", `{"csr":""}`, a.headers()).expect(t, 400, "")
	e.do("POST", "/api/certs/agent/upgrade-cert", `{}`, a.headers()).expect(t, 400, "")
	r := e.do("POST", "/api/certs/agent/upgrade-cert", `{"csr":"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"}`, a.headers())
	r.expect(t, 400, "")
	if r.body["error"] != "Invalid CSR" || r.body["details"] == nil {
		t.Fatalf("body %s", r.raw)
	}

	r = e.do("POST", "/api/certs/agent/upgrade-cert", `{"csr":`+jsonString(csr)+`}`, a.headers())
	r.expect(t, 200, "")
	cert := parseCertPEM(t, r.body["cert"].(string))
	if cert.Subject.String() != "CN=agent:home,O=Portlama" {
		t.Fatalf("subject %s", cert.Subject)
	}
	if r.body["caCert"] != string(e.pki.CACertPEM()) || r.body["serial"] != pki.FormatSerial(cert.SerialNumber) ||
		r.body["expiresAt"] != api.FormatTime(cert.NotAfter) {
		t.Fatalf("body %s", r.raw)
	}
	// The old certificate is revoked; the new one works and keeps the
	// capabilities and the tunnels; the tunnel credential is new, so
	// sessions opened with the old key end.
	e.do("GET", "/api/tunnels", "", a.headers()).expect(t, 403, `{"error":"Certificate has been revoked"}`)
	newHdr := agentHeaders("home", r.body["serial"].(string))
	if list := listTunnels(t, e, newHdr); len(list) != 1 {
		t.Fatalf("tunnels after re-key %+v", list)
	}
	e.do("POST", "/api/tunnels", `{"subdomain":"app2","port":8081}`, newHdr).expect(t, 201, "")
	if pw := e.password(t, "home"); pw == pwBefore || pw == "" {
		t.Fatal("re-key kept the old tunnel credential")
	}
	entry, _ := e.agents.Lookup("home")
	if entry.EnrollmentMethod != agents.MethodHardwareBound {
		t.Fatalf("method %q", entry.EnrollmentMethod)
	}
	// No P12 left to download.
	e.do("GET", "/api/certs/agent/home/download", "", adminHeaders()).expect(t, 404, "")
}

func parseCertPEM(t *testing.T, s string) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode([]byte(s))
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("not a PEM certificate: %q", s)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// checkChain verifies cert against the relay CA for client auth.
func checkChain(t *testing.T, e *relayEnv, cert *x509.Certificate) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(e.pki.CACert())
	if _, err := cert.Verify(x509.VerifyOptions{
		Roots: pool, CurrentTime: e.clock(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		t.Fatalf("issued certificate does not chain to the relay CA: %v", err)
	}
	if !bytes.Contains(e.pki.CACertPEM(), []byte("BEGIN CERTIFICATE")) {
		t.Fatal("CA PEM")
	}
}

func TestRevokeSelf(t *testing.T) {
	e := newRelayEnv(t)
	home := e.newAgent(t, "home")
	other := e.newAgent(t, "other")
	// An admin certificate has no "self" to revoke.
	e.do("POST", "/api/certs/agent/revoke-self", "", adminHeaders()).expect(t, 403, "")
	e.do("GET", "/api/tunnels", "", home.headers()).expect(t, 200, "")

	e.do("POST", "/api/certs/agent/revoke-self", "", home.headers()).expect(t, 200, `{"ok":true,"label":"home"}`)
	e.do("GET", "/api/tunnels", "", home.headers()).expect(t, 403, `{"error":"Certificate has been revoked"}`)
	e.do("POST", "/api/certs/agent/revoke-self", "", home.headers()).expect(t, 403, "")
	// Only its own certificate: the other agent still works.
	e.do("GET", "/api/tunnels", "", other.headers()).expect(t, 200, "")
	if e.aclPorts(t, "home") != nil {
		t.Fatal("tunnel credentials kept after revocation")
	}
}
