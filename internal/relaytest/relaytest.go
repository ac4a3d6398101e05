// Package relaytest is the test harness of the relay, in the shape of
// Tailscale's tstest/integration: NewStack(t, opts...) starts a real relay
// on loopback — nginx, the panel, the tunnel and auth servers under the
// child-process supervisor, Pebble for real ACME certificates (or the
// relay CA) — through the product's own code paths (provision.Install,
// relay.Open, onboarding through the API; internal/demo does the
// starting), and hands out typed clients and helpers that wait on
// readiness with deadlines instead of sleeping.
//
//	st := relaytest.NewStack(t)                      // onboarded, Pebble
//	st := relaytest.NewStack(t, relaytest.Fresh())   // FRESH: the test onboards
//	pc := st.Admin()                                 // *panelclient.Client, admin certificate
//	ag := st.EnrollAgent("home", api.CapTunnelsWrite) // portlama-agent setup + run
//	port := st.StartApp("my app")
//	tun := st.CreateTunnel(api.CreateTunnelRequest{Subdomain: "app", Port: port, AgentLabel: "home"})
//	st.WaitHTTP(st.URL("app", "/"), 200)
//	u := st.CreateUser("alice"); cookie := st.Login(u, time.Now())
//
// Ports are chosen without races: every port of a stack is picked while
// the others are held, and no port is handed out twice in one process.
package relaytest

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/demo"
	"github.com/portlama/portlama/internal/panelclient"
	"github.com/portlama/portlama/internal/pki/pkitest"
	"github.com/portlama/portlama/internal/sampleapp"
	"github.com/portlama/portlama/internal/supervisor"
	"github.com/portlama/portlama/internal/testutil"
)

// Option configures NewStack.
type Option func(*demo.Options)

// WithRelayCA issues the domain certificates from the relay CA instead of
// Pebble (no ACME; faster, for tests that are not about certificates).
func WithRelayCA() Option { return func(o *demo.Options) { o.ACME = false } }

// WithWildcard configures DNS-01 with the DigitalOcean provider (against
// the local stand-in of its API): one certificate for <d> and *.<d>.
func WithWildcard() Option { return func(o *demo.Options) { o.ACME, o.Wildcard = true, true } }

// Fresh leaves the relay FRESH: the test walks onboarding (Onboard, or the
// API itself).
func Fresh() Option { return func(o *demo.Options) { o.NoOnboarding = true } }

// WithEmptyDNS issues from the relay CA and starts the offline DNS server
// with no records (Stack.DNS): the test adds them, e.g. to walk
// onboarding's DNS check from "missing" to "ready".
func WithEmptyDNS() Option { return func(o *demo.Options) { o.ACME, o.EmptyDNS = false, true } }

// WithSample adds the demo's showcase: a sample app, the agent "demo-home"
// (enrolled with a token, running), the tunnels app (public) and secure
// (two-factor) and the user "demo" (Stack.Info has them).
func WithSample() Option { return func(o *demo.Options) { o.Sample = true } }

// Stack is a running relay and its clients.
type Stack struct {
	*demo.Stack
	T testing.TB
	// Domain is the stack's base domain (unique per stack).
	Domain string

	agents *agentSet
}

type agentSet struct {
	mu sync.Mutex
	m  map[string]*Agent
}

var stackSeq atomic.Int32

// NewStack starts a relay and stops it when the test ends. By default it
// is onboarded through the API with Pebble-issued certificates.
func NewStack(t testing.TB, opts ...Option) *Stack {
	t.Helper()
	s, err := start(t, opts...)
	if err != nil {
		t.Fatalf("start relay stack: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Start starts a stack that outlives the test that asks for it (one stack
// shared by a package's tests, stopped by its TestMain with Stop); give
// each test its view with For. t is used for the dependency checks only.
func Start(t testing.TB, opts ...Option) (*Stack, error) {
	t.Helper()
	return start(t, opts...)
}

// For returns the stack with t as the test its helpers fail.
func (s *Stack) For(t testing.TB) *Stack {
	c := *s
	c.T = t
	return &c
}

func start(t testing.TB, opts ...Option) (*Stack, error) {
	t.Helper()
	testutil.NeedBinary(t, "nginx")
	relayBin, agentBin := Binaries(t)
	n := int(stackSeq.Add(1))
	base := 21000 + n%80*100
	o := demo.Options{
		RelayBinary: relayBin, AgentBinary: agentBin,
		HTTPSPort: -1, PanelPort: -1, HTTPPort: -1,
		// Each stack its own relay-port range and domain: stacks of one
		// process never compete for them.
		RelayPortMin: base, RelayPortMax: base + 99,
		Domain:      fmt.Sprintf("s%d-%d.localhost", os.Getpid()%10000, n),
		ACME:        true,
		GenerateKey: pkitest.GenerateKey,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.ACME {
		testutil.NeedBinary(t, "pebble")
		testutil.NeedBinary(t, "pebble-challtestsrv")
	}
	if o.Dir == "" {
		dir, err := os.MkdirTemp("", "portlama-stack-")
		if err != nil {
			return nil, err
		}
		o.Dir = dir
	}
	if f, err := os.OpenFile(filepath.Join(o.Dir, "relay.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err == nil {
		o.Logger = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ds, err := demo.Start(ctx, o)
	if err != nil {
		return nil, err
	}
	return &Stack{Stack: ds, T: t, Domain: o.Domain, agents: &agentSet{m: map[string]*Agent{}}}, nil
}

// Stop stops the stack and removes its directory (kept when
// PORTLAMA_KEEP_STACKS is set, for debugging: relay.log has the panel's
// messages, nginx-run/error.log nginx's).
func (s *Stack) Stop() {
	s.Stack.Stop()
	if os.Getenv("PORTLAMA_KEEP_STACKS") == "" {
		os.RemoveAll(s.Info.Dir)
	}
}

// ctx is a context bounded like one helper call.
func ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 90*time.Second)
}

// Admin is the typed panel client with the admin certificate (panel by IP).
func (s *Stack) Admin() *panelclient.Client {
	s.T.Helper()
	pc, err := s.Panel()
	if err != nil {
		s.T.Fatal(err)
	}
	return pc
}

// AdminAt is the admin client for base (e.g. st.URL("panel", "")).
func (s *Stack) AdminAt(base string) *panelclient.Client {
	return panelclient.New(base, s.AdminHTTP())
}

// AdminHTTP is the HTTP client presenting the admin certificate.
func (s *Stack) AdminHTTP() *http.Client {
	s.T.Helper()
	c, err := s.AdminClient()
	if err != nil {
		s.T.Fatal(err)
	}
	return c
}

// Client is an HTTP client presenting cert (nil: none) that trusts the
// stack's certificates and does not follow redirects.
func (s *Stack) Client(cert *tls.Certificate) *http.Client {
	s.T.Helper()
	pool, err := s.TrustPool()
	if err != nil {
		s.T.Fatal(err)
	}
	tc := &tls.Config{RootCAs: pool}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	return s.HTTPClient(tc)
}

// Visitor is a browser without a client certificate.
func (s *Stack) Visitor() *http.Client { return s.Client(nil) }

// Portal is the typed client of the login portal's JSON API.
func (s *Stack) Portal() *panelclient.Portal {
	return panelclient.NewPortal(strings.TrimSuffix(s.URL("auth", ""), "/"), s.Visitor())
}

// URL is https://<sub>.<d>[:port]<path>.
func (s *Stack) URL(sub, path string) string { return s.Relay.Addrs.HostURL(sub, s.Domain) + path }

// Onboard walks onboarding through the API (a Fresh stack) and returns
// the provisioning result and the frames it saw.
func (s *Stack) Onboard() (api.ProvisionResult, []api.ProvisionFrame) {
	s.T.Helper()
	c, cancel := ctx()
	defer cancel()
	pc := s.Admin()
	if _, err := pc.SetDomain(c, api.SetDomainRequest{Domain: s.Domain, Email: "ops@" + s.Domain}); err != nil {
		s.T.Fatal(err)
	}
	if res, err := pc.VerifyDNS(c); err != nil || !res.OK {
		s.T.Fatalf("verify DNS: %+v %v", res, err)
	}
	var frames []api.ProvisionFrame
	res, err := demo.RunProvisioning(c, pc, func(f api.ProvisionFrame) { frames = append(frames, f) })
	if err != nil {
		s.T.Fatalf("provisioning: %v", err)
	}
	return res, frames
}

// AgentCert issues an agent P12 through the API and returns its
// certificate.
func (s *Stack) AgentCert(label string, caps ...api.Capability) tls.Certificate {
	s.T.Helper()
	if caps == nil {
		caps = []api.Capability{api.CapTunnelsRead}
	}
	c, cancel := ctx()
	defer cancel()
	pc := s.Admin()
	res, err := pc.CreateAgentCert(c, api.NewAgentRequest{Label: label, Capabilities: &caps})
	if err != nil {
		s.T.Fatalf("create agent certificate %s: %v", label, err)
	}
	p12, err := pc.AgentP12(c, label)
	if err != nil {
		s.T.Fatalf("download agent P12: %v", err)
	}
	return P12Cert(s.T, p12, res.P12Password)
}

// P12Cert decodes a P12 bundle into a TLS certificate.
func P12Cert(t testing.TB, p12 []byte, password string) tls.Certificate {
	t.Helper()
	key, cert, _, err := pkcs12.DecodeChain(p12, password)
	if err != nil {
		t.Fatalf("decode P12: %v", err)
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
}

// P12Base64Cert decodes the base64 P12 of an admin rotation.
func P12Base64Cert(t testing.TB, b64, password string) tls.Certificate {
	t.Helper()
	p12, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	return P12Cert(t, p12, password)
}

// Agent is a portlama-agent enrolled with a one-time token and running
// under the stack's supervisor.
type Agent struct {
	Label string
	Home  string
	unit  string
	s     *Stack
}

// EnrollAgent enrolls an agent with caps (tunnels:read always) through a
// one-time token and the real portlama-agent binary, and starts
// `portlama-agent run`.
func (s *Stack) EnrollAgent(label string, caps ...api.Capability) *Agent {
	s.T.Helper()
	c, cancel := ctx()
	defer cancel()
	all := append([]api.Capability{api.CapTunnelsRead}, caps...)
	tok, err := s.Admin().CreateEnrollmentToken(c, api.NewAgentRequest{Label: label, Capabilities: &all})
	if err != nil {
		s.T.Fatal(err)
	}
	a := &Agent{Label: label, Home: filepath.Join(s.Info.Dir, "agent-"+label), unit: "agent-" + label, s: s}
	_, agentBin := Binaries(s.T)
	out, err := exec.CommandContext(c, agentBin, "--home", a.Home, "setup", "--token", tok.Token,
		"--panel-url", s.Info.PanelURL, "--ca-cert", s.Info.IPCert, "--force").CombinedOutput()
	if err != nil {
		s.T.Fatalf("portlama-agent setup: %v\n%s", err, out)
	}
	if err := s.Supervisor.Add(supervisor.Unit{Name: a.unit, Argv: []string{agentBin, "--home", a.Home, "run", "--poll-interval", "1s"},
		Env: s.AgentEnv(), Log: filepath.Join(s.Info.Dir, a.unit+".log")}); err != nil {
		s.T.Fatal(err)
	}
	if err := s.Supervisor.Start(c, a.unit); err != nil {
		s.T.Fatal(err)
	}
	s.agents.mu.Lock()
	s.agents.m[label] = a
	s.agents.mu.Unlock()
	return a
}

// Log returns the end of the agent's log.
func (a *Agent) Log() string { return a.s.Supervisor.Tail(a.unit, 4096) }

// agentLogs are the ends of the logs of the agents the test enrolled, for
// failure messages.
func (s *Stack) agentLogs() string {
	s.agents.mu.Lock()
	defer s.agents.mu.Unlock()
	var b strings.Builder
	for label, a := range s.agents.m {
		fmt.Fprintf(&b, "\nlog of agent %s:\n%s", label, a.Log())
	}
	return b.String()
}

// StartApp runs a sample app for the test and returns its port.
func (s *Stack) StartApp(name string) int {
	s.T.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.T.Fatal(err)
	}
	c, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sampleapp.Serve(c, ln, name); close(done) }()
	s.T.Cleanup(func() { cancel(); <-done })
	return ln.Addr().(*net.TCPAddr).Port
}

// CreateTunnel creates a tunnel through the API.
func (s *Stack) CreateTunnel(r api.CreateTunnelRequest) api.Tunnel {
	s.T.Helper()
	c, cancel := ctx()
	defer cancel()
	tun, err := s.Admin().CreateTunnel(c, r)
	if err != nil {
		s.T.Fatalf("create tunnel %s: %v", r.Subdomain, err)
	}
	return tun
}

// User is a portal user with a TOTP secret.
type User struct {
	Name, Password, Secret string
}

// CreateUser creates a user with a TOTP secret through the API.
func (s *Stack) CreateUser(name string, groups ...string) User {
	s.T.Helper()
	if groups == nil {
		groups = []string{}
	}
	c, cancel := ctx()
	defer cancel()
	pc := s.Admin()
	u := User{Name: name, Password: "pw-" + name + "-0123456789"}
	if _, err := pc.CreateUser(c, api.CreateUserRequest{Username: name, DisplayName: name, Email: name + "@example.com", Password: u.Password, Groups: groups}); err != nil {
		s.T.Fatalf("create user %s: %v", name, err)
	}
	r, err := pc.ResetTOTP(c, name)
	if err != nil {
		s.T.Fatalf("reset TOTP of %s: %v", name, err)
	}
	parsed, err := url.Parse(r.TOTPURI)
	if err != nil {
		s.T.Fatal(err)
	}
	u.Secret = parsed.Query().Get("secret")
	if u.Secret == "" || !strings.HasPrefix(r.TOTPQR, "data:image/png;base64,") {
		s.T.Fatalf("reset-totp gave %+v", r)
	}
	if _, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(r.TOTPQR, "data:image/png;base64,")); err != nil {
		s.T.Fatalf("totpQr is not base64: %v", err)
	}
	return u
}

// Code is u's TOTP code at at.
func (u User) Code(t testing.TB, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCode(u.Secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Login signs u in through the portal's JSON API and returns the session
// cookie (at picks the TOTP step; tests signing one user in twice pick
// distinct steps so no code is a replay).
func (s *Stack) Login(u User, at time.Time) *http.Cookie {
	s.T.Helper()
	c, cancel := ctx()
	defer cancel()
	ck, err := s.Portal().Login(c, u.Name, u.Password, u.Code(s.T, at), "")
	if err != nil {
		s.T.Fatalf("login of %s: %v", u.Name, err)
	}
	return ck
}

// WaitHTTP waits until GET url through c (nil: Visitor) answers status,
// polling the readiness of the path with a deadline of within (0: 30 s),
// and returns how long it took.
func (s *Stack) WaitHTTP(c *http.Client, url string, status int, within time.Duration, cookies ...*http.Cookie) time.Duration {
	s.T.Helper()
	if c == nil {
		c = s.Visitor()
	}
	if within == 0 {
		within = 30 * time.Second
	}
	start := time.Now()
	err := Eventually(within, func() error {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		for _, ck := range cookies {
			req.AddCookie(ck)
		}
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != status {
			return fmt.Errorf("status %d, want %d", resp.StatusCode, status)
		}
		return nil
	})
	if err != nil {
		s.T.Fatalf("%s: %v%s", url, err, s.agentLogs())
	}
	return time.Since(start)
}

// Eventually runs probe until it passes or within ends; the error says
// what the last probe saw.
func Eventually(within time.Duration, probe func() error) error {
	return testutil.Eventually(within, probe)
}

// Restart stops and starts one of the relay's units (portlama-tunnel,
// portlama-auth, nginx) and waits until it is ready again.
func (s *Stack) Restart(unit string) {
	s.T.Helper()
	c, cancel := ctx()
	defer cancel()
	if err := s.Supervisor.Restart(c, unit); err != nil {
		s.T.Fatal(err)
	}
	s.waitUnit(c, unit)
}

// Crash kills a unit with SIGKILL and starts it again (crash recovery).
func (s *Stack) Crash(unit string) {
	s.T.Helper()
	c, cancel := ctx()
	defer cancel()
	if err := s.Supervisor.Kill(unit); err != nil {
		s.T.Fatal(err)
	}
	if err := s.Supervisor.Start(c, unit); err != nil {
		s.T.Fatal(err)
	}
	s.waitUnit(c, unit)
}

// waitUnit waits until unit's address accepts connections.
func (s *Stack) waitUnit(c context.Context, unit string) {
	addr := map[string]string{"portlama-tunnel": s.Relay.Addrs.Tunnel, "portlama-auth": s.Relay.Addrs.Auth}[unit]
	if addr == "" {
		return
	}
	if err := Eventually(20*time.Second, func() error {
		var d net.Dialer
		conn, err := d.DialContext(c, "tcp", addr)
		if err == nil {
			conn.Close()
		}
		return err
	}); err != nil {
		s.T.Fatalf("%s: %v\n%s", unit, err, s.Supervisor.Tail(unit, 2048))
	}
}

// ErrorStatus returns the HTTP status of an API error (0 for others).
func ErrorStatus(err error) int {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}
