package panel

import (
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/agents"
	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/pki"
	"github.com/portlama/portlama/internal/pki/pkitest"
)

// newToken issues an enrollment token through the API.
func newToken(t *testing.T, e *relayEnv, body string) string {
	t.Helper()
	r := e.do("POST", "/api/certs/agent/enroll", body, adminHeaders())
	r.expect(t, 200, "")
	return r.body["token"].(string)
}

func enrollBody(token, csr string) string {
	return `{"token":` + jsonString(token) + `,"csr":` + jsonString(csr) + `}`
}

func TestEnroll(t *testing.T) {
	e := newRelayEnv(t)
	tok := newToken(t, e, `{"label":"laptop","capabilities":["tunnels:read","tunnels:write"],"allowedSites":["blog"]}`)
	// The CSR asks to be admin; its subject is ignored.
	csr := pkitest.CSR(t, testCSRKey, "admin", "evil.example.net")

	// Public route: no certificate, no proof of origin needed.
	r := e.do("POST", "/api/enroll", enrollBody(tok, csr), nil)
	r.expect(t, 200, "")
	cert := parseCertPEM(t, r.body["cert"].(string))
	if cert.Subject.String() != "CN=agent:laptop,O=Portlama" || len(cert.DNSNames) != 0 {
		t.Fatalf("issued subject %s, SANs %v", cert.Subject, cert.DNSNames)
	}
	checkChain(t, e, cert)
	serial := pki.FormatSerial(cert.SerialNumber)
	if r.body["ok"] != true || r.body["label"] != "laptop" || r.body["serial"] != serial ||
		r.body["caCert"] != string(e.pki.CACertPEM()) || r.body["expiresAt"] != api.FormatTime(cert.NotAfter) {
		t.Fatalf("body %s", r.raw)
	}
	entry, err := e.agents.Lookup("laptop")
	if err != nil || entry.EnrollmentMethod != agents.MethodHardwareBound ||
		!slices.Equal(entry.Capabilities, []string{"tunnels:read", "tunnels:write"}) || !slices.Equal(entry.AllowedSites, []string{"blog"}) {
		t.Fatalf("registry %+v %v", entry, err)
	}
	// The new agent works at once, with its capabilities and tunnel credentials.
	hdr := agentHeaders("laptop", serial)
	e.do("POST", "/api/tunnels", `{"subdomain":"lap","port":8080}`, hdr).expect(t, 201, "")
	cfg := e.do("GET", "/api/tunnels/agent-config", "", hdr)
	cfg.expect(t, 200, "")
	if !strings.HasPrefix(cfg.body["auth"].(string), "laptop:") {
		t.Fatalf("agent-config %s", cfg.raw)
	}
	// Token reuse.
	csr2 := pkitest.CSR(t, testCSRKey, "laptop")
	e.do("POST", "/api/enroll", enrollBody(tok, csr2), nil).
		expect(t, 401, `{"error":"Enrollment token has already been used"}`)

	// Revoked: refused on the next request.
	e.do("DELETE", "/api/certs/agent/laptop", "", adminHeaders()).expect(t, 200, "")
	e.do("GET", "/api/tunnels", "", hdr).expect(t, 403, `{"error":"Certificate has been revoked"}`)
	// Enrolling again under the same label does not adopt the revoked
	// agent's tunnels: they stay disabled until an admin enables them.
	tok = newToken(t, e, `{"label":"laptop","capabilities":["tunnels:read"]}`)
	r = e.do("POST", "/api/enroll", enrollBody(tok, csr2), nil)
	r.expect(t, 200, "")
	hdr = agentHeaders("laptop", r.body["serial"].(string))
	list := listTunnels(t, e, hdr)
	if len(list) != 1 || list[0].Subdomain != "lap" || list[0].IsEnabled() {
		t.Fatalf("tunnels after re-enrollment %+v", list)
	}
	if ports := e.aclPorts(t, "laptop"); len(ports) != 0 {
		t.Fatalf("acl after re-enrollment %v, want no port", ports)
	}
	e.do("PATCH", "/api/tunnels/"+list[0].ID, `{"enabled":true}`, adminHeaders()).expect(t, 200, "")
	if ports := e.aclPorts(t, "laptop"); len(ports) != 1 || ports[0] != list[0].RelayPort {
		t.Fatalf("acl after the admin enabled the tunnel %v", ports)
	}
}

func TestEnrollTokenErrors(t *testing.T) {
	e := newRelayEnv(t)
	csr := pkitest.CSR(t, testCSRKey, "x")
	e.do("POST", "/api/enroll", enrollBody(strings.Repeat("a", 64), csr), nil).
		expect(t, 401, `{"error":"Invalid enrollment token"}`)

	tok := newToken(t, e, `{"label":"late"}`)
	e.advance(10*time.Minute + time.Second)
	e.do("POST", "/api/enroll", enrollBody(tok, csr), nil).
		expect(t, 401, `{"error":"Enrollment token has expired"}`)
	// Purged after an hour: then simply unknown.
	e.advance(time.Hour)
	e.do("POST", "/api/enroll", enrollBody(tok, csr), nil).
		expect(t, 401, `{"error":"Invalid enrollment token"}`)

	// A revoked token is unknown.
	tok = newToken(t, e, `{"label":"gone"}`)
	e.do("DELETE", "/api/certs/agent/enroll/gone", "", adminHeaders()).expect(t, 200, "")
	e.do("POST", "/api/enroll", enrollBody(tok, csr), nil).
		expect(t, 401, `{"error":"Invalid enrollment token"}`)
}

func TestEnrollBadCSRKeepsToken(t *testing.T) {
	e := newRelayEnv(t)
	tok := newToken(t, e, `{"label":"box"}`)
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	bad := []string{
		"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
		"-----BEGIN CERTIFICATE REQUEST-----\n" + strings.Repeat("A", 9000) + "\n-----END CERTIFICATE REQUEST-----\n",
		pkitest.CSR(t, weak, "box"),
		pkitest.CSR(t, testCSRKey, "box") + pkitest.CSR(t, testCSRKey, "box"),
	}
	for i, csr := range bad {
		r := e.do("POST", "/api/enroll", enrollBody(tok, csr), nil)
		r.expect(t, 400, "")
		if r.body["error"] != "Invalid CSR" {
			t.Fatalf("case %d: %s", i, r.raw)
		}
		if d, _ := r.body["details"].(string); d == "" {
			t.Fatalf("case %d: no details: %s", i, r.raw)
		}
	}
	// Schema failures (400 Validation failed) do not touch the token either.
	for _, body := range []string{
		`{"token":"` + tok + `"}`,
		`{"csr":"-----BEGIN CERTIFICATE REQUEST-----"}`,
		`{"token":"` + tok + `","csr":"not a pem"}`,
		`{"token":"","csr":"-----BEGIN CERTIFICATE REQUEST-----"}`,
		`{"token":1,"csr":"-----BEGIN CERTIFICATE REQUEST-----"}`,
		`{"token":"` + tok + `","csr":["-----BEGIN CERTIFICATE REQUEST-----"]}`,
		``,
	} {
		r := e.do("POST", "/api/enroll", body, nil)
		r.expect(t, 400, "")
		if r.body["error"] != "Validation failed" {
			t.Fatalf("%s: %s", body, r.raw)
		}
	}
	e.do("POST", "/api/enroll", `{"token":`, nil).expect(t, 400, `{"error":"Invalid JSON body"}`)
	e.do("POST", "/api/enroll", `token=x`, http.Header{"Content-Type": {"text/plain"}}).
		expect(t, 415, `{"error":"Unsupported Media Type"}`)

	// The token still works.
	r := e.do("POST", "/api/enroll", enrollBody(tok, pkitest.CSR(t, testCSRKey, "box")), nil)
	r.expect(t, 200, "")
	if r.body["label"] != "box" {
		t.Fatalf("body %s", r.raw)
	}
}

func TestEnrollConflictKeepsToken(t *testing.T) {
	e := newRelayEnv(t)
	tok := newToken(t, e, `{"label":"dup"}`)
	e.newAgent(t, "dup")
	csr := pkitest.CSR(t, testCSRKey, "dup")
	e.do("POST", "/api/enroll", enrollBody(tok, csr), nil).
		expect(t, 409, `{"error":"Agent certificate with label \"dup\" already exists"}`)
	e.do("DELETE", "/api/certs/agent/dup", "", adminHeaders()).expect(t, 200, "")
	e.do("POST", "/api/enroll", enrollBody(tok, csr), nil).expect(t, 200, "")
}

func TestEnrollServerFailure(t *testing.T) {
	e := newRelayEnv(t)
	tok := newToken(t, e, `{"label":"acl"}`)
	// Make tunnel credential creation fail: acl.json is unreadable.
	if err := writeFile(e.acl.Path(), "{not json"); err != nil {
		t.Fatal(err)
	}
	e.do("POST", "/api/enroll", enrollBody(tok, pkitest.CSR(t, testCSRKey, "acl")), nil).
		expect(t, 500, `{"error":"Enrollment failed"}`)
	if _, err := e.agents.Lookup("acl"); err == nil {
		t.Fatal("agent kept after a failed enrollment")
	}
	// Fixed: the token is still usable.
	if err := writeFile(e.acl.Path(), `{"agents":[]}`); err != nil {
		t.Fatal(err)
	}
	e.do("POST", "/api/enroll", enrollBody(tok, pkitest.CSR(t, testCSRKey, "acl")), nil).expect(t, 200, "")
}

func TestEnrollNotGated(t *testing.T) {
	e := newRelayEnv(t)
	tok := newToken(t, e, `{"label":"early"}`)
	e.setStatus(config.StatusProvisioning)
	e.do("POST", "/api/enroll", enrollBody(tok, pkitest.CSR(t, testCSRKey, "early")), nil).expect(t, 200, "")
}

// FuzzEnrollBody: the enrollment schema never panics and accepts only
// string tokens and CSR text naming a CERTIFICATE REQUEST.
func FuzzEnrollBody(f *testing.F) {
	for _, s := range []string{
		`{"token":"abc","csr":"-----BEGIN CERTIFICATE REQUEST-----"}`,
		`{"token":1,"csr":"x"}`, `{"token":"","csr":""}`, `{}`, `[]`, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := ParseJSON(data)
		if err != nil {
			return
		}
		clean, issues := Validate(enrollSchema, v)
		if len(issues) > 0 {
			return
		}
		m := clean.(map[string]any)
		tok, ok1 := m["token"].(string)
		csr, ok2 := m["csr"].(string)
		if !ok1 || !ok2 || tok == "" || !strings.Contains(csr, "BEGIN CERTIFICATE REQUEST") {
			t.Fatalf("accepted %s", data)
		}
	})
}
