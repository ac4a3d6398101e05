package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/panelclient"
	"github.com/portlama/portlama/internal/sampleapp"
	"github.com/portlama/portlama/internal/store"
	"github.com/portlama/portlama/internal/supervisor"
)

// agentUnit is the demo agent's unit in the supervisor.
const agentUnit = "portlama-agent"

// DemoUser is the demo's two-factor user.
const DemoUser = "demo"

type step = struct {
	what string
	fn   func(context.Context) error
}

// sampleSteps are the showcase: what a user does after onboarding.
func sampleSteps(s *Stack, runCtx context.Context) []step {
	return []step{
		{"start the sample app", func(context.Context) error { return s.startApp(runCtx) }},
		{"enroll the agent", s.enrollAgent},
		{"create the tunnels", s.createTunnels},
		{"create the sample site", s.createSite},
		{"create the demo user", s.createUser},
		{"start the agent", s.startAgent},
		{"wait for the app through the tunnel", s.waitForApps},
	}
}

// TrustACMERoot saves Pebble's current root, which the domain
// certificates chain to, for curl --cacert, browsers and agents (Pebble
// makes a new root each time it starts).
func (s *Stack) TrustACMERoot(ctx context.Context) error {
	root, err := s.Pebble.Roots(ctx)
	if err != nil {
		return err
	}
	// In a directory of its own, so processes can trust it like a system
	// root (SSL_CERT_DIR): a relay's certificates chain to roots the
	// machine already trusts.
	path := filepath.Join(s.TrustDir(), "pebble-root.pem")
	if err := os.MkdirAll(s.TrustDir(), 0o755); err != nil {
		return err
	}
	if err := store.WriteFileAtomic(path, root, 0o644); err != nil {
		return err
	}
	s.Info.CACert = path
	s.resetAdmin()
	return nil
}

// startApp runs the sample app on two local ports, one per tunnel: a
// tunnel's local port is unique per agent.
func (s *Stack) startApp(ctx context.Context) error {
	for _, a := range []struct {
		port *int
		name string
	}{{&s.Info.AppPort, "Portlama demo app"}, {&s.Info.ProtectedAppPort, "Portlama demo app (protected)"}} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		*a.port = ln.Addr().(*net.TCPAddr).Port
		go func() { s.bg <- sampleapp.Serve(ctx, ln, a.name) }()
	}
	return nil
}

func (s *Stack) agentHome() string { return filepath.Join(s.opts.Dir, "agent-home") }

func (s *Stack) enrollAgent(ctx context.Context) error {
	pc, err := s.Panel()
	if err != nil {
		return err
	}
	// A demo started again on its directory enrolls its agent anew.
	agents, err := pc.ListAgents(ctx)
	if err != nil {
		return err
	}
	for _, a := range agents {
		if a.Label == AgentLabel && !a.Revoked {
			if err := pc.RevokeAgent(ctx, AgentLabel); err != nil {
				return err
			}
		}
	}
	caps := []api.Capability{api.CapTunnelsRead, api.CapTunnelsWrite}
	tok, err := pc.CreateEnrollmentToken(ctx, api.NewAgentRequest{Label: AgentLabel, Capabilities: &caps})
	if err != nil {
		return err
	}
	s.progress("Agent %q enrolls with a one-time token (its key never leaves the machine) ...", AgentLabel)
	out, err := exec.CommandContext(ctx, s.opts.AgentBinary, "--home", s.agentHome(), "setup",
		"--token", tok.Token, "--panel-url", s.Info.PanelURL, "--ca-cert", s.Info.IPCert, "--force").CombinedOutput()
	os.WriteFile(s.LogPath("agent-setup"), out, 0o600)
	if err != nil {
		return fmt.Errorf("portlama-agent setup failed (%v):\n%s", err, out)
	}
	return nil
}

func (s *Stack) createTunnels(ctx context.Context) error {
	pc, err := s.Panel()
	if err != nil {
		return err
	}
	list, err := pc.ListTunnels(ctx)
	if err != nil {
		return err
	}
	// A restarted demo reuses its directory: point existing tunnels at the
	// app's new port by recreating them.
	for _, t := range list {
		if err := pc.DeleteTunnel(ctx, t.ID); err != nil {
			return err
		}
	}
	s.Info.Apps = nil
	for _, t := range []struct {
		sub    string
		access api.AccessMode
		port   int
	}{{"app", api.AccessPublic, s.Info.AppPort}, {"secure", api.AccessAuthenticated, s.Info.ProtectedAppPort}} {
		s.progress("Tunnel %s.%s (%s) -> the sample app on port %d", t.sub, s.opts.Domain, t.access, t.port)
		if _, err := pc.CreateTunnel(ctx, api.CreateTunnelRequest{
			Subdomain:   t.sub,
			Port:        t.port,
			AgentLabel:  AgentLabel,
			AccessMode:  t.access,
			Description: "Portlama demo app (" + string(t.access) + ")",
		}); err != nil {
			return err
		}
		s.Info.Apps = append(s.Info.Apps, App{
			URL:     s.Relay.Addrs.HostURL(t.sub, s.opts.Domain) + "/",
			Access:  string(t.access),
			Resolve: fmt.Sprintf("%s.%s:%d:127.0.0.1", t.sub, s.opts.Domain, s.Info.HTTPSPort),
		})
	}
	return nil
}

func (s *Stack) createUser(ctx context.Context) error {
	pc, err := s.Panel()
	if err != nil {
		return err
	}
	users, err := pc.ListUsers(ctx)
	if err != nil {
		return err
	}
	password := randomHex(8)
	exists := false
	for _, u := range users {
		exists = exists || u.Username == DemoUser
	}
	name, email, groups := "Demo User", "demo@"+s.opts.Domain, []string{"family"}
	if exists {
		_, err = pc.UpdateUser(ctx, DemoUser, api.UpdateUserRequest{DisplayName: &name, Email: &email, Password: &password, Groups: &groups})
	} else {
		_, err = pc.CreateUser(ctx, api.CreateUserRequest{Username: DemoUser, DisplayName: name, Email: email, Password: password, Groups: groups})
	}
	if err != nil {
		return err
	}
	totp, err := pc.ResetTOTP(ctx, DemoUser)
	if err != nil {
		return err
	}
	u, err := url.Parse(totp.TOTPURI)
	if err != nil || u.Query().Get("secret") == "" {
		return fmt.Errorf("reset-totp returned no secret in %q", totp.TOTPURI)
	}
	s.Info.User = &User{Username: DemoUser, Password: password, TOTPSecret: u.Query().Get("secret")}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// TrustDir holds the ACME CA's root when the certificates come from
// Pebble; agents run with SSL_CERT_DIR pointing at it (AgentEnv).
func (s *Stack) TrustDir() string { return filepath.Join(s.opts.Dir, "trust") }

// AgentEnv is the environment an agent on this machine needs to trust the
// domain certificates: Pebble's root as a system root (nothing with the
// relay CA, which agents pin at enrollment).
func (s *Stack) AgentEnv() []string {
	if s.Pebble == nil {
		return nil
	}
	return []string{"SSL_CERT_DIR=" + s.TrustDir()}
}

func (s *Stack) startAgent(ctx context.Context) error {
	if err := s.Supervisor.Add(supervisor.Unit{Name: agentUnit,
		Argv: []string{s.opts.AgentBinary, "--home", s.agentHome(), "run", "--poll-interval", "2s"},
		Env:  s.AgentEnv(),
		Log:  s.LogPath("agent")}); err != nil {
		return err
	}
	return s.Supervisor.Start(ctx, agentUnit)
}

// waitForApps waits until the public app answers through nginx, the
// tunnel and the agent (a readiness probe with a deadline).
func (s *Stack) waitForApps(ctx context.Context) error {
	c, err := s.AdminClient()
	if err != nil {
		return err
	}
	url := s.Info.Apps[0].URL
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := c.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer 200 within 30 s (last: %v); agent log:\n%s", url, err, s.Supervisor.Tail(agentUnit, 2048))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// SampleSite is the name of the demo's static site (<name>.<domain>).
const SampleSite = "site"

// createSite (re)creates the sample static site, served by nginx from the
// relay's disk, and uploads its two files.
func (s *Stack) createSite(ctx context.Context) error {
	pc, err := s.Panel()
	if err != nil {
		return err
	}
	list, err := pc.ListSites(ctx)
	if err != nil {
		return err
	}
	for _, old := range list {
		if old.Name == SampleSite {
			if _, err := pc.DeleteSite(ctx, old.ID); err != nil {
				return err
			}
		}
	}
	res, err := pc.CreateSite(ctx, api.CreateSiteRequest{Name: SampleSite, Type: api.SiteManaged})
	if err != nil {
		return err
	}
	file := func(p, content string) panelclient.UploadFile {
		return panelclient.UploadFile{Path: p, Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(content)), nil }}
	}
	if _, err := pc.UploadSiteFiles(ctx, res.Site.ID, ".", []panelclient.UploadFile{
		file("index.html", `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Portlama demo site</title>`+
			`<link rel="stylesheet" href="style.css"></head><body><h1>A static site</h1>`+
			`<p>Served by nginx from the relay's disk: it stays online when the home machine is off.</p></body></html>`+"\n"),
		file("style.css", "body { font-family: sans-serif; max-width: 40em; margin: 3em auto; }\n"),
	}, nil); err != nil {
		return err
	}
	s.Info.Sites = []Site{{
		URL:     s.Relay.Addrs.HostURL(SampleSite, Domain) + "/",
		Resolve: fmt.Sprintf("%s.%s:%d:127.0.0.1", SampleSite, Domain, s.Info.HTTPSPort),
	}}
	return nil
}
