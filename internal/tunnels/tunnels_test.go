package tunnels

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/acme"
	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/errkind"
	"github.com/portlama/portlama/internal/manage"
	"github.com/portlama/portlama/internal/store"
)

// recorder is a collaborator double that records calls and fails on demand.
type recorder struct {
	mu     sync.Mutex // the vhost calls may run concurrently (DisableAgent)
	calls  []string
	failOn string
	// unconfirmed steps save their change but report that the daemon did
	// not confirm it.
	unconfirmed map[string]bool
	ports       map[string][]int
	rules       []api.Tunnel
	enabled     map[string]bool
	written     map[string]api.Tunnel
	wildcard    bool
}

func newRecorder() *recorder {
	return &recorder{ports: map[string][]int{}, enabled: map[string]bool{}, written: map[string]api.Tunnel{}, wildcard: true}
}

func (r *recorder) step(name string) error {
	r.calls = append(r.calls, name)
	if r.failOn == name {
		return errors.New(name + " exploded")
	}
	return nil
}

// outcome is a daemon-confirmed step's answer once its change is saved.
func (r *recorder) outcome(name string) error {
	if r.unconfirmed[name] {
		return &manage.NotConfirmedError{Daemon: "daemon", Unit: "portlama-" + name, Err: manage.ErrNotConfirmed}
	}
	return nil
}

func (r *recorder) WriteTunnel(_ context.Context, t api.Tunnel, _ acme.Files) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.step("vhost.write"); err != nil {
		return err
	}
	r.written[VhostName(t)] = t
	r.enabled[VhostName(t)] = t.IsEnabled()
	return nil
}
func (r *recorder) RemoveTunnel(_ context.Context, t api.Tunnel) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.step("vhost.remove"); err != nil {
		return err
	}
	delete(r.written, VhostName(t))
	delete(r.enabled, VhostName(t))
	return nil
}
func (r *recorder) SetTunnelEnabled(_ context.Context, t api.Tunnel, on bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.step("vhost.enable"); err != nil {
		return err
	}
	r.enabled[VhostName(t)] = on
	return nil
}
func (r *recorder) ForHost(_ context.Context, fqdn string) (acme.Files, error) {
	if err := r.step("cert.get"); err != nil {
		return acme.Files{}, err
	}
	return acme.Files{Name: fqdn, Wildcard: r.wildcard}, nil
}
func (r *recorder) DeleteIndividual(_ context.Context, fqdn string) error {
	return r.step("cert.delete")
}
func (r *recorder) SetPorts(_ context.Context, label string, ports []int) error {
	if err := r.step("acl"); err != nil {
		return err
	}
	r.ports[label] = ports
	return r.outcome("acl")
}
func (r *recorder) SyncTunnels(_ context.Context, ts []api.Tunnel) error {
	if err := r.step("rules"); err != nil {
		return err
	}
	r.rules = nil
	for _, t := range ts {
		if t.AccessMode == api.AccessRestricted {
			r.rules = append(r.rules, t)
		}
	}
	return r.outcome("rules")
}

type agentList []string

func (a agentList) ActiveLabels() ([]string, error) { return a, nil }

func newService(t *testing.T, agents ...string) (*Service, *recorder) {
	t.Helper()
	return newServiceWith(t, Settings{Domain: "example.com", Email: "a@example.com", RelayPortMin: 20000, RelayPortMax: 20002}, agents...)
}

func newServiceWith(t *testing.T, set Settings, agents ...string) (*Service, *recorder) {
	t.Helper()
	r := newRecorder()
	s := New(Config{
		File:     filepath.Join(t.TempDir(), "tunnels.json"),
		Settings: func() (Settings, error) { return set, nil },
		Agents:   agentList(agents),
		Vhosts:   r, Certs: r, ACL: r, Rules: r,
		PortFree: func(int) bool { return true },
		Now:      func() time.Time { return time.Date(2026, 1, 31, 9, 15, 0, 0, time.UTC) },
	})
	return s, r
}

var admin = Caller{Admin: true}

func agent(label string, caps ...string) Caller {
	return Caller{Label: label, Capabilities: append([]string{"tunnels:read"}, caps...)}
}

func TestCreateDefaultsAndSideEffectOrder(t *testing.T) {
	s, r := newService(t, "home")
	tun, err := s.Create(context.Background(), admin, CreateRequest{Subdomain: "app", Port: 8080})
	if err != nil {
		t.Fatal(err)
	}
	if tun.AgentLabel != "home" || tun.FQDN != "app.example.com" || tun.RelayPort != 20000 ||
		tun.TargetHost != "127.0.0.1" || tun.AccessMode != api.AccessAuthenticated || tun.Type != api.TypeApp ||
		!tun.IsEnabled() || tun.CreatedAt != "2026-01-31T09:15:00.000Z" || tun.Description != nil {
		t.Fatalf("unexpected tunnel %+v", tun)
	}
	// The access rules list every tunnel's host, so they are written for
	// an authenticated tunnel too.
	if want := []string{"cert.get", "vhost.write", "rules", "acl"}; !slices.Equal(r.calls, want) {
		t.Fatalf("calls = %v, want %v", r.calls, want)
	}
	if !slices.Equal(r.ports["home"], []int{20000}) {
		t.Fatalf("acl ports = %v", r.ports["home"])
	}
}

func TestCreateChecksInContractOrder(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name   string
		agents []string
		caller Caller
		req    CreateRequest
		kind   *errkind.Kind
		msg    string
	}{
		{"reserved", []string{"home"}, admin, CreateRequest{Subdomain: "panel", Port: 8080}, errkind.Invalid, "Subdomain 'panel' is reserved"},
		{"agent prefix on app", []string{"home"}, admin, CreateRequest{Subdomain: "agent-x", Port: 8080}, errkind.Invalid, "Subdomain prefix 'agent-' is reserved for agent panel tunnels"},
		{"public by agent", []string{"home"}, agent("home", "tunnels:write"), CreateRequest{Subdomain: "a", Port: 8080, AccessMode: api.AccessPublic}, errkind.Forbidden, "Only administrators can set tunnel access mode to public"},
		{"panel without capability", []string{"home"}, agent("home", "tunnels:write"), CreateRequest{Subdomain: "agent-home", Port: 8080, Type: api.TypePanel}, errkind.Forbidden, "Cannot create panel tunnel without panel:expose capability"},
		{"panel for another label", []string{"home"}, agent("home", "tunnels:write", "panel:expose"), CreateRequest{Subdomain: "agent-work", Port: 8080, Type: api.TypePanel}, errkind.Forbidden, "Agents can only create panel tunnels for their own label"},
		{"agent names other owner", []string{"home", "work"}, agent("home", "tunnels:write"), CreateRequest{Subdomain: "a", Port: 8080, AgentLabel: "work"}, errkind.Forbidden, "Agents can only create tunnels for their own label"},
		{"admin unknown agent", []string{"home"}, admin, CreateRequest{Subdomain: "a", Port: 8080, AgentLabel: "ghost"}, errkind.Invalid, "Unknown agent 'ghost'"},
		{"admin ambiguous owner", []string{"home", "work"}, admin, CreateRequest{Subdomain: "a", Port: 8080}, errkind.Invalid, "agentLabel is required unless exactly one active agent exists"},
		{"admin no agents", nil, admin, CreateRequest{Subdomain: "a", Port: 8080}, errkind.Invalid, "agentLabel is required unless exactly one active agent exists"},
		{"admin panel wrong subdomain", []string{"home"}, admin, CreateRequest{Subdomain: "agent-work", Port: 8080, Type: api.TypePanel}, errkind.Invalid, "Panel tunnel subdomain must be 'agent-home'"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, r := newService(t, c.agents...)
			_, err := s.Create(ctx, c.caller, c.req)
			e, ok := errkind.As(err)
			if !ok || e.Kind != c.kind || e.Message != c.msg {
				t.Fatalf("err = %v, want kind %v %q", err, c.kind, c.msg)
			}
			if len(r.calls) != 0 {
				t.Fatalf("refused request had side effects: %v", r.calls)
			}
			if all, _ := s.All(); len(all) != 0 {
				t.Fatalf("refused request stored a tunnel")
			}
		})
	}
}

func TestCreateConflicts(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, "home", "work")
	if _, err := s.Create(ctx, admin, CreateRequest{Subdomain: "app", Port: 8080, AgentLabel: "home"}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Create(ctx, admin, CreateRequest{Subdomain: "app", Port: 9000, AgentLabel: "work"})
	if e, _ := errkind.As(err); e == nil || e.Message != "Subdomain 'app' is already in use" {
		t.Fatalf("duplicate subdomain: %v", err)
	}
	_, err = s.Create(ctx, admin, CreateRequest{Subdomain: "app2", Port: 8080, AgentLabel: "home"})
	if e, _ := errkind.As(err); e == nil || e.Message != "Port 8080 is already in use by another tunnel" {
		t.Fatalf("duplicate port for one agent: %v", err)
	}
	// The same local port on another agent is fine (unique per agent).
	if _, err := s.Create(ctx, admin, CreateRequest{Subdomain: "app3", Port: 8080, AgentLabel: "work"}); err != nil {
		t.Fatalf("same port on another agent refused: %v", err)
	}
	// Range 20000–20002 holds three; the third takes the last port, a fourth gets 409.
	if _, err := s.Create(ctx, admin, CreateRequest{Subdomain: "app4", Port: 8081, AgentLabel: "work"}); err != nil {
		t.Fatal(err)
	}
	_, err = s.Create(ctx, admin, CreateRequest{Subdomain: "app5", Port: 8082, AgentLabel: "work"})
	if e, _ := errkind.As(err); e == nil || e.Kind != errkind.Conflict || e.Message != "No free relay port in the configured range" {
		t.Fatalf("full range: %v", err)
	}
}

func TestAllocationSkipsBusyPorts(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := l.Addr().(*net.TCPAddr).Port
	s, _ := newService(t, "home")
	s.cfg.PortFree = nil
	s = New(Config{File: s.cfg.File, Agents: s.cfg.Agents, Vhosts: s.cfg.Vhosts, Certs: s.cfg.Certs, ACL: s.cfg.ACL,
		Settings: func() (Settings, error) {
			return Settings{Domain: "example.com", Email: "a@example.com", RelayPortMin: busy, RelayPortMax: busy + 50}, nil
		}})
	tun, err := s.Create(context.Background(), admin, CreateRequest{Subdomain: "app", Port: 8080})
	if err != nil {
		t.Fatal(err)
	}
	if tun.RelayPort == busy {
		t.Fatalf("allocated port %d that something listens on", busy)
	}
}

func TestCreateRollsBackOnFailure(t *testing.T) {
	for _, step := range []string{"cert.get", "vhost.write", "rules", "acl"} {
		t.Run(step, func(t *testing.T) {
			s, r := newService(t, "home")
			r.wildcard = false
			r.failOn = step
			_, err := s.Create(context.Background(), admin, CreateRequest{Subdomain: "app", Port: 8080, AccessMode: api.AccessRestricted, AllowedUsers: []string{"bob"}})
			e, ok := errkind.As(err)
			if !ok || e.Kind != errkind.Failed || e.Message != "Failed to create tunnel" {
				t.Fatalf("err = %v", err)
			}
			wantStep := map[string]string{"cert.get": "certificate", "vhost.write": "nginx", "rules": "state", "acl": "tunnel-acl"}[step]
			if !strings.HasPrefix(e.Cause.Error(), wantStep+": ") {
				t.Fatalf("details = %q, want step %q", e.Cause.Error(), wantStep)
			}
			if all, _ := s.All(); len(all) != 0 {
				t.Fatalf("failed create left %d tunnels in state", len(all))
			}
			if len(r.written) != 0 {
				t.Fatalf("failed create left vhosts: %v", r.written)
			}
			if len(r.rules) != 0 {
				t.Fatalf("failed create left access rules: %v", r.rules)
			}
			if step != "cert.get" && !slices.Contains(r.calls, "cert.delete") {
				t.Fatalf("individual certificate not deleted on rollback: %v", r.calls)
			}
		})
	}
}

func TestAgentSeesOnlyOwnTunnels(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, "home", "work")
	home, _ := s.Create(ctx, admin, CreateRequest{Subdomain: "a", Port: 8080, AgentLabel: "home"})
	s.Create(ctx, admin, CreateRequest{Subdomain: "b", Port: 8080, AgentLabel: "work"})
	list, _ := s.List(agent("work"))
	if len(list) != 1 || list[0].Subdomain != "b" {
		t.Fatalf("work sees %v", list)
	}
	if _, err := s.Update(ctx, agent("work", "tunnels:write"), home.ID, Patch{Enabled: ptr(false)}); err == nil {
		t.Fatal("agent toggled another agent's tunnel")
	} else if e, _ := errkind.As(err); e.Kind != errkind.NotFound {
		t.Fatalf("err = %v, want NotFound", err)
	}
	if _, err := s.Delete(ctx, agent("work", "tunnels:write"), home.ID); err == nil {
		t.Fatal("agent deleted another agent's tunnel")
	}
	all, _ := s.List(admin)
	if len(all) != 2 || all[0].Subdomain != "b" {
		t.Fatalf("admin list (newest first) = %v", all)
	}
}

func ptr[T any](v T) *T { return &v }

// TestListFollowsTheFile: the lists reuse the parsed tunnels.json, and
// see every change at once: the service's own, another process's
// replacement, and a copy a caller modified does not leak into the next
// list.
func TestListFollowsTheFile(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, "home")
	a, err := s.Create(ctx, admin, CreateRequest{Subdomain: "a", Port: 8080, AgentLabel: "home"})
	if err != nil {
		t.Fatal(err)
	}
	list, _ := s.List(admin)
	if len(list) != 1 || list[0].Subdomain != "a" {
		t.Fatalf("list = %v", list)
	}
	list[0].Subdomain = "changed by the caller"
	if list, _ := s.List(admin); list[0].Subdomain != "a" {
		t.Fatalf("a caller's change leaked into the next list: %v", list)
	}
	if _, err := s.Update(ctx, admin, a.ID, Patch{Enabled: ptr(false)}); err != nil {
		t.Fatal(err)
	}
	if list, _ := s.List(admin); list[0].IsEnabled() {
		t.Fatal("list does not show the update")
	}
	// Another process (a restore, an operator) replaces the file.
	other := a.Tunnel
	other.ID, other.Subdomain, other.Enabled = "b", "b", nil
	data, err := store.Marshal([]api.Tunnel{other})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.WriteFileAtomic(s.cfg.File, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if list, _ := s.List(admin); len(list) != 1 || list[0].Subdomain != "b" {
		t.Fatalf("list after another process's write = %v", list)
	}
	if enabled, _ := s.EnabledFor("home"); len(enabled) != 1 || enabled[0].Subdomain != "b" {
		t.Fatalf("EnabledFor after another process's write = %v", enabled)
	}
}

func TestToggleUpdatesVhostLinkAndACL(t *testing.T) {
	ctx := context.Background()
	s, r := newService(t, "home")
	a, _ := s.Create(ctx, admin, CreateRequest{Subdomain: "a", Port: 8080})
	b, _ := s.Create(ctx, admin, CreateRequest{Subdomain: "b", Port: 8081})
	r.calls = nil
	got, err := s.Update(ctx, admin, a.ID, Patch{Enabled: ptr(false)})
	if err != nil {
		t.Fatal(err)
	}
	if got.IsEnabled() || r.enabled[VhostName(a.Tunnel)] || !r.enabled[VhostName(b.Tunnel)] {
		t.Fatalf("toggle: tunnel enabled=%v links=%v", got.IsEnabled(), r.enabled)
	}
	if !slices.Equal(r.ports["home"], []int{b.RelayPort}) {
		t.Fatalf("acl after disable = %v, want [%d]", r.ports["home"], b.RelayPort)
	}
	if slices.Contains(r.calls, "vhost.write") {
		t.Fatalf("toggle rewrote the vhost: %v", r.calls)
	}
	// Unchanged body: 200, no side effects.
	r.calls = nil
	if _, err := s.Update(ctx, admin, a.ID, Patch{Enabled: ptr(false)}); err != nil || len(r.calls) != 0 {
		t.Fatalf("no-op update: err %v, calls %v", err, r.calls)
	}
	// A failing ACL update restores the link and keeps the state.
	r.failOn = "acl"
	if _, err := s.Update(ctx, admin, a.ID, Patch{Enabled: ptr(true)}); err == nil {
		t.Fatal("update succeeded despite ACL failure")
	} else if e, _ := errkind.As(err); e.Message != "Failed to toggle tunnel" {
		t.Fatalf("err = %v", err)
	}
	if r.enabled[VhostName(a.Tunnel)] {
		t.Fatal("vhost link not reverted after failure")
	}
	if all, _ := s.All(); all[0].IsEnabled() {
		t.Fatal("state changed despite failure")
	}
}

func TestAccessModeChanges(t *testing.T) {
	ctx := context.Background()
	s, r := newService(t, "home")
	a, _ := s.Create(ctx, admin, CreateRequest{Subdomain: "a", Port: 8080, AccessMode: api.AccessPublic})
	// Setting public is an admin's decision, even when nothing would change.
	_, err := s.Update(ctx, agent("home", "tunnels:write"), a.ID, Patch{AccessMode: ptr(api.AccessPublic)})
	if e, _ := errkind.As(err); e == nil || e.Kind != errkind.Forbidden {
		t.Fatalf("agent setting public: err = %v, want Forbidden", err)
	}
	r.calls = nil
	got, err := s.Update(ctx, admin, a.ID, Patch{AccessMode: ptr(api.AccessRestricted), AllowedGroups: ptr([]string{"family"})})
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessMode != api.AccessRestricted || !slices.Contains(r.calls, "vhost.write") || !slices.Contains(r.calls, "rules") {
		t.Fatalf("public→restricted: %+v calls %v", got, r.calls)
	}
	if len(r.rules) != 1 || r.rules[0].ID != a.ID {
		t.Fatalf("rules = %v", r.rules)
	}
	if _, err := s.Delete(ctx, admin, a.ID); err != nil {
		t.Fatal(err)
	}
	if len(r.rules) != 0 || len(r.written) != 0 || len(r.ports["home"]) != 0 {
		t.Fatalf("delete left rules %v vhosts %v ports %v", r.rules, r.written, r.ports["home"])
	}
}

func TestPanelTunnelRules(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, "home")
	p, err := s.Create(ctx, agent("home", "tunnels:write", "panel:expose"), CreateRequest{Subdomain: "agent-home", Port: 9393, Type: api.TypePanel})
	if err != nil {
		t.Fatal(err)
	}
	if p.AccessMode != "" || p.AllowedUsers != nil || VhostName(p.Tunnel) != "portlama-agent-panel-agent-home" {
		t.Fatalf("panel tunnel %+v", p)
	}
	_, err = s.Update(ctx, admin, p.ID, Patch{AccessMode: ptr(api.AccessPublic)})
	if e, _ := errkind.As(err); e == nil || e.Message != "Panel tunnels have no access mode" {
		t.Fatalf("access mode on panel tunnel: %v", err)
	}
	_, err = s.Delete(ctx, agent("home", "tunnels:write"), p.ID)
	if e, _ := errkind.As(err); e == nil || e.Message != "Cannot delete panel tunnel without panel:expose capability" {
		t.Fatalf("delete panel tunnel without capability: %v", err)
	}
}

func TestAgentConfigAndRemote(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, "home")
	s.Create(ctx, admin, CreateRequest{Subdomain: "a", Port: 8080})
	b, _ := s.Create(ctx, admin, CreateRequest{Subdomain: "b", Port: 8081, TargetHost: "fd00::5"})
	c, _ := s.Create(ctx, admin, CreateRequest{Subdomain: "c", Port: 8082})
	s.Update(ctx, admin, c.ID, Patch{Enabled: ptr(false)})
	enabled, _ := s.EnabledFor("home")
	cfg := BuildAgentConfig("example.com", "https://tunnel.example.com:443", "home", "pw", "fp", enabled)
	want := []string{"client", "--auth", "home:pw", "--fingerprint", "fp", "https://tunnel.example.com:443",
		"R:127.0.0.1:20000:127.0.0.1:8080", "R:127.0.0.1:" + strconv.Itoa(b.RelayPort) + ":[fd00::5]:8081"}
	if !slices.Equal(cfg.ChiselArgs, want) {
		t.Fatalf("chiselArgs = %v\nwant %v", cfg.ChiselArgs, want)
	}
	if len(cfg.Tunnels) != 2 || cfg.Auth != "home:pw" {
		t.Fatalf("config %+v", cfg)
	}
	plist := MacPlist(cfg.ChiselArgs)
	if !strings.Contains(plist, "<string>client</string>\n    <string>--tls-cert</string>") ||
		!strings.Contains(plist, "com.portlama.chisel") {
		t.Fatalf("plist:\n%s", plist)
	}
	if got := MacPlist([]string{"client", "a<b&c"}); !strings.Contains(got, "a&lt;b&amp;c") {
		t.Fatalf("plist does not escape XML: %s", got)
	}
}

// Rewriting the vhost of a disabled tunnel (access mode change) keeps it
// disabled.
func TestAccessModeChangeKeepsDisabledTunnelDisabled(t *testing.T) {
	ctx := context.Background()
	s, r := newService(t, "home")
	a, _ := s.Create(ctx, admin, CreateRequest{Subdomain: "a", Port: 8080})
	if _, err := s.Update(ctx, admin, a.ID, Patch{Enabled: ptr(false)}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Update(ctx, admin, a.ID, Patch{AccessMode: ptr(api.AccessPublic)})
	if err != nil {
		t.Fatal(err)
	}
	if got.IsEnabled() || r.enabled[VhostName(a.Tunnel)] || r.written[VhostName(a.Tunnel)].AccessMode != api.AccessPublic {
		t.Fatalf("after access change: enabled=%v link=%v vhost=%+v", got.IsEnabled(), r.enabled[VhostName(a.Tunnel)], r.written[VhostName(a.Tunnel)])
	}
	if len(r.ports["home"]) != 0 {
		t.Fatalf("disabled tunnel's port back in the ACL: %v", r.ports["home"])
	}
}

// An unconfirmed daemon step is no failure: the change stands and the
// result carries the warning; other steps still run.
func TestUnconfirmedChangesStandWithWarning(t *testing.T) {
	ctx := context.Background()
	s, r := newService(t, "home")
	r.unconfirmed = map[string]bool{"acl": true, "rules": true}
	res, err := s.Create(ctx, admin, CreateRequest{Subdomain: "app", Port: 8080})
	if err != nil || !strings.Contains(res.Warning, "portlama-acl") || !strings.Contains(res.Warning, "portlama-rules") {
		t.Fatalf("create: %+v %v", res, err)
	}
	if all, _ := s.All(); len(all) != 1 || !slices.Equal(r.ports["home"], []int{res.RelayPort}) {
		t.Fatalf("the unconfirmed create was not kept: %+v ports %v", all, r.ports)
	}
	up, err := s.Update(ctx, admin, res.ID, Patch{Enabled: ptr(false)})
	if err != nil || !strings.Contains(up.Warning, "portlama-acl") || up.IsEnabled() {
		t.Fatalf("update: %+v %v", up, err)
	}
	w, err := s.Delete(ctx, admin, res.ID)
	if err != nil || !strings.Contains(w, "portlama-rules") {
		t.Fatalf("delete: %q %v", w, err)
	}
	// Confirmed steps give no warning.
	r.unconfirmed = nil
	if res, err := s.Create(ctx, admin, CreateRequest{Subdomain: "app", Port: 8080}); err != nil || res.Warning != "" {
		t.Fatalf("confirmed create: %+v %v", res, err)
	}
}

// A refused step (any error but an unconfirmed one) rolls the change back.
func TestRefusedStepRollsBack(t *testing.T) {
	ctx := context.Background()
	s, r := newService(t, "home")
	r.failOn = "acl"
	if _, err := s.Create(ctx, admin, CreateRequest{Subdomain: "app", Port: 8080}); err == nil {
		t.Fatal("create with a refused ACL succeeded")
	}
	if all, _ := s.All(); len(all) != 0 || len(r.written) != 0 {
		t.Fatalf("left behind: %+v vhosts %v", all, r.written)
	}
}

// DisableAgent (revocation) disables the label's tunnels for good: state,
// vhosts and ports; an agent enrolled later with the label gets no port
// until an admin enables a tunnel.
func TestDisableAgent(t *testing.T) {
	ctx := context.Background()
	s, r := newService(t, "home", "work")
	a, _ := s.Create(ctx, admin, CreateRequest{Subdomain: "a", Port: 8080, AgentLabel: "home"})
	b, _ := s.Create(ctx, admin, CreateRequest{Subdomain: "b", Port: 8081, AgentLabel: "home"})
	w, _ := s.Create(ctx, admin, CreateRequest{Subdomain: "w", Port: 8080, AgentLabel: "work"})
	if err := s.DisableAgent(ctx, "home"); err != nil {
		t.Fatal(err)
	}
	all, _ := s.All()
	for _, tun := range all {
		if want := tun.AgentLabel == "work"; tun.IsEnabled() != want || r.enabled[VhostName(tun)] != want {
			t.Errorf("%s enabled=%v vhost=%v, want %v", tun.Subdomain, tun.IsEnabled(), r.enabled[VhostName(tun)], want)
		}
	}
	if len(r.ports["home"]) != 0 || !slices.Equal(r.ports["work"], []int{w.RelayPort}) {
		t.Fatalf("ports %v", r.ports)
	}
	// Nothing to do a second time.
	r.calls = nil
	if err := s.DisableAgent(ctx, "home"); err != nil || len(r.calls) != 0 {
		t.Fatalf("second DisableAgent: %v calls %v", err, r.calls)
	}
	if err := s.SyncACL(ctx, "home"); err != nil || len(r.ports["home"]) != 0 {
		t.Fatalf("a new agent of the label adopted ports %v (%v)", r.ports["home"], err)
	}
	if _, err := s.Update(ctx, admin, b.ID, Patch{Enabled: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.ports["home"], []int{b.RelayPort}) {
		t.Fatalf("after the admin enabled b: ports %v, want [%d] (a stays off: %d)", r.ports["home"], b.RelayPort, a.RelayPort)
	}
}

// An agent label owns at most MaxTunnelsPerAgent tunnels, whoever asks.
func TestTunnelLimitPerAgent(t *testing.T) {
	ctx := context.Background()
	s, _ := newServiceWith(t, Settings{Domain: "example.com", Email: "a@example.com", RelayPortMin: 20000, RelayPortMax: 20009, MaxTunnelsPerAgent: 2}, "home", "work")
	for i := range 2 {
		if _, err := s.Create(ctx, agent("home", "tunnels:write"), CreateRequest{Subdomain: "h" + strconv.Itoa(i), Port: 8080 + i}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []Caller{agent("home", "tunnels:write"), admin} {
		_, err := s.Create(ctx, c, CreateRequest{Subdomain: "h9", Port: 9000, AgentLabel: "home"})
		ke, ok := errkind.As(err)
		if !ok || ke.Kind != errkind.Conflict || !strings.Contains(err.Error(), "limit of 2 tunnels per agent") {
			t.Fatalf("third tunnel of home by %+v: %v", c, err)
		}
	}
	if _, err := s.Create(ctx, admin, CreateRequest{Subdomain: "w0", Port: 8080, AgentLabel: "work"}); err != nil {
		t.Fatalf("the limit is per agent: %v", err)
	}
	// The default applies when the settings give none.
	if (Settings{}).maxPerAgent() != DefaultMaxTunnelsPerAgent {
		t.Fatal("no default limit")
	}
}
