package panel

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/onboarding"
	"github.com/portlama/portlama/internal/onboarding/dnstest"
	"github.com/portlama/portlama/internal/pki/pkitest"
	"github.com/portlama/portlama/internal/provision"
	"github.com/portlama/portlama/internal/relay"
	"github.com/portlama/portlama/internal/supervisor"
	"github.com/portlama/portlama/internal/system"
)

const (
	testSecret  = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	testIP      = "203.0.113.10"
	adminSerial = "0A1B2C"
)

// memRevocations is an in-memory revocation list.
type memRevocations struct {
	mu  sync.Mutex
	set map[string]bool
	err error
}

func (m *memRevocations) IsRevoked(serial string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.set[serial], m.err
}

func (m *memRevocations) revoke(serial string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.set[serial] = true
}

// memAgents is an in-memory agents registry (non-revoked entries only).
type memAgents struct {
	mu     sync.Mutex
	agents map[string]Agent
}

func (m *memAgents) LookupAgent(label string) (Agent, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.agents[label]
	return a, ok, nil
}

type stubStats struct{ err error }

func (s stubStats) Stats(context.Context) (system.Stats, error) {
	if s.err != nil {
		return system.Stats{}, s.err
	}
	return system.Stats{CPU: system.CPU{Usage: 12.5, Cores: 2}, Uptime: 42}, nil
}

type harness struct {
	t      *testing.T
	srv    *Server
	svc    *relay.Services // the relay the panel runs on (relay.Open)
	ngx    *fakeNginx
	http   *httptest.Server
	store  *config.PanelStore
	dns    *dnstest.Server
	revs   *memRevocations
	agents *memAgents
	// daemons are the real tunnel and auth servers the panel notifies.
	daemons daemons
	mu      sync.Mutex
	now     time.Time
}

type harnessOpt func(*Config)

// fakeNginx is the one stand-in of the panel tests: nginx itself. It
// counts tests and fails the next one on request; the vhost files are
// real (written by nginx.Manager in the test's layout).
type fakeNginx struct {
	mu       sync.Mutex
	tests    int
	failNext string // output of the next failing nginx -t
}

func (f *fakeNginx) Test(context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tests++
	if out := f.failNext; out != "" {
		f.failNext = ""
		return out, errors.New("nginx -t: exit status 1")
	}
	return "syntax is ok", nil
}

func (f *fakeNginx) Reload(context.Context) error { return nil }

// relayCA issues domain certificates from the test relay's CA.
type relayCA struct{ svc func() *relay.Services }

func (r relayCA) Obtain(_ context.Context, names []string) ([]byte, []byte, string, error) {
	c, k, err := r.svc().PKI.IssueServer(names, 90*24*time.Hour)
	return c, k, "relay-ca", err
}

// newHarness starts a panel with panel.json in state status (domain set
// for every state after FRESH) on a real loopback HTTP server. The relay
// underneath is opened by relay.Open on a relay installed by
// provision.Install; identity uses in-memory revocations and agents
// unless an option replaces them (newRelayEnv keeps the real ones).
func newHarness(t *testing.T, status string, opts ...harnessOpt) *harness {
	t.Helper()
	return startHarness(t, status, false, opts...)
}

// startHarness is newHarness; with realIdentity the relay's PKI and agents
// registry decide identity.
func startHarness(t *testing.T, status string, realIdentity bool, opts ...harnessOpt) *harness {
	t.Helper()
	// A short root: the daemons' Unix socket paths are limited to 108 bytes.
	root, err := os.MkdirTemp("", "ph")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	layout := config.DirLayout(root)
	if err := os.MkdirAll(layout.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	domain := "null"
	if status != config.StatusFresh {
		domain = `"example.com"`
	}
	doc := `{"ip":"` + testIP + `","dataDir":"` + layout.DataDir + `","domain":` + domain +
		`,"email":null,"onboarding":{"status":"` + status + `"},"custom":"kept"}`
	if err := os.WriteFile(layout.PanelConfig(), []byte(doc), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(layout.ProxySecretFile(), []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := provision.Install(context.Background(), provision.InstallConfig{Layout: layout, IP: testIP, GenerateKey: pkitest.GenerateKey}); err != nil {
		t.Fatal(err)
	}
	dns, err := dnstest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dns.Close() })
	h := &harness{
		t: t, dns: dns, ngx: &fakeNginx{},
		revs:   &memRevocations{set: map[string]bool{}},
		agents: &memAgents{agents: map[string]Agent{}},
		now:    time.Unix(1_800_000_000, 0),
	}
	svc, err := relay.Open(relay.Options{
		Config:   config.Relay{Layout: layout, Addrs: config.DefaultAddrs()},
		Nginx:    h.ngx,
		Services: supervisor.New(nil),
		Issuer:   relayCA{func() *relay.Services { return h.svc }},
		Resolver: onboarding.DNSServerResolver{Server: dns.Addr, Timeout: 2 * time.Second},
		Now:      h.clock,
		// Relay ports are allocated, not bound, in these tests: other
		// processes on the machine may hold ports of the default range.
		PortFree: func(int) bool { return true },
	})
	if err != nil {
		t.Fatal(err)
	}
	h.svc = svc
	h.daemons = startDaemons(t, svc)
	cfg := FromRelay(svc, "1.2.3", nil)
	if !realIdentity {
		cfg.Revocations = h.revs
		cfg.Agents = h.agents
	}
	cfg.Stats = stubStats{}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = s
	h.store = svc.Panel
	h.http = httptest.NewServer(s)
	t.Cleanup(h.http.Close)
	return h
}

func (h *harness) clock() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.now
}

func (h *harness) advance(d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.now = h.now.Add(d)
}

func (h *harness) addAgent(label, serial string, caps ...string) {
	h.agents.mu.Lock()
	defer h.agents.mu.Unlock()
	h.agents.agents[label] = Agent{Label: label, Serial: serial, Capabilities: caps}
}

func (h *harness) setStatus(status string) {
	h.t.Helper()
	if _, err := h.store.Update(func(c *config.PanelConfig) error {
		c.Onboarding.Status = status
		return nil
	}); err != nil {
		h.t.Fatal(err)
	}
}

// headers for a request through nginx with the given certificate.
func certHeaders(dn, serial string) http.Header {
	h := http.Header{}
	h.Set(HeaderProxySecret, testSecret)
	h.Set(HeaderClientVerify, "SUCCESS")
	h.Set(HeaderClientDN, dn)
	h.Set(HeaderClientSerial, serial)
	return h
}

func adminHeaders() http.Header { return certHeaders("CN=admin,O=Portlama", adminSerial) }

func agentHeaders(label, serial string) http.Header {
	return certHeaders("CN=agent:"+label+",O=Portlama", serial)
}

type result struct {
	status int
	header http.Header
	raw    string
	body   map[string]any
}

// do sends a request; a non-empty body is sent as application/json unless
// hdr sets Content-Type.
func (h *harness) do(method, path, body string, hdr http.Header) result {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.http.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if body != "" && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.http.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	r := result{status: resp.StatusCode, header: resp.Header, raw: string(data)}
	_ = json.Unmarshal(data, &r.body)
	return r
}

// expect checks status and, when want is not "", that the body equals the
// JSON want exactly.
func (r result) expect(t *testing.T, status int, want string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.raw)
	}
	if want == "" {
		return
	}
	var got, exp any
	if err := json.Unmarshal([]byte(r.raw), &got); err != nil {
		t.Fatalf("body is not JSON: %q", r.raw)
	}
	if err := json.Unmarshal([]byte(want), &exp); err != nil {
		t.Fatalf("bad want %q", want)
	}
	g, _ := json.Marshal(got)
	e, _ := json.Marshal(exp)
	if string(g) != string(e) {
		t.Fatalf("body %s, want %s", g, e)
	}
}

func (r result) issuePaths() []string {
	var out []string
	det, _ := r.body["details"].(map[string]any)
	issues, _ := det["issues"].([]any)
	for _, i := range issues {
		p, _ := json.Marshal(i.(map[string]any)["path"])
		out = append(out, string(p))
	}
	return out
}

var errBoom = errors.New("boom")
