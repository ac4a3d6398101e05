package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/panelclient"
	"github.com/portlama/portlama/internal/relaytest"
	"github.com/portlama/portlama/internal/system"
)

// The services API on the supervisor: the same calls go to systemd on a
// relay (the lab checks those).

func servicesByName(t *testing.T, pc *panelclient.Client) map[string]api.Service {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := pc.Services(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	m := map[string]api.Service{}
	for _, s := range list {
		names = append(names, s.Name)
		m[s.Name] = s
	}
	if got, want := strings.Join(names, ","), strings.Join(system.ManagedServices, ","); got != want {
		t.Fatalf("services %s, want %s in that order", got, want)
	}
	return m
}

func TestServicesStatusAndActions(t *testing.T) {
	st := relaytest.NewStack(t, relaytest.WithRelayCA())
	pc := st.Admin()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	for name, s := range servicesByName(t, pc) {
		if s.Status != api.ServiceActive || s.Uptime == nil || !strings.HasSuffix(*s.Uptime, "s") {
			t.Errorf("%s: %+v, want active with an uptime in seconds", name, s)
		}
	}

	// restart: a new process, reported active again.
	before, _ := st.Supervisor.Status(ctx, system.UnitTunnel)
	res, err := pc.ServiceAction(ctx, system.UnitTunnel, api.ServiceRestart)
	if err != nil || res != (api.ServiceActionResult{OK: true, Name: system.UnitTunnel, Action: api.ServiceRestart}) {
		t.Fatalf("restart: %+v %v", res, err)
	}
	after, _ := st.Supervisor.Status(ctx, system.UnitTunnel)
	if after.MainPID == 0 || after.MainPID == before.MainPID || !after.Since.After(before.Since) {
		t.Errorf("restart kept the process: before %+v, after %+v", before, after)
	}

	// stop / start: the list follows.
	if _, err := pc.ServiceAction(ctx, system.UnitAuth, api.ServiceStop); err != nil {
		t.Fatal(err)
	}
	if s := servicesByName(t, pc)[system.UnitAuth]; s.Status != api.ServiceInactive || s.Uptime != nil {
		t.Errorf("after stop: %+v", s)
	}
	if _, err := pc.ServiceAction(ctx, system.UnitAuth, api.ServiceStart); err != nil {
		t.Fatal(err)
	}
	if s := servicesByName(t, pc)[system.UnitAuth]; s.Status != api.ServiceActive {
		t.Errorf("after start: %+v", s)
	}

	// reload re-reads the state (SIGHUP) and keeps the process.
	before, _ = st.Supervisor.Status(ctx, system.UnitAuth)
	if _, err := pc.ServiceAction(ctx, system.UnitAuth, api.ServiceReload); err != nil {
		t.Fatal(err)
	}
	logs, err := pc.OpenLogs(ctx, system.UnitAuth)
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	if _, err := logs.Until(ctx, func(l api.LogLine) bool { return strings.Contains(l.Message, "reloaded on SIGHUP") }); err != nil {
		t.Fatalf("no reload line in the auth server's log: %v\n%s", err, st.Supervisor.Tail(system.UnitAuth, 2048))
	}
	if after, _ := st.Supervisor.Status(ctx, system.UnitAuth); after.MainPID != before.MainPID || after.State != system.StateActive {
		t.Errorf("reload replaced the process: %+v → %+v", before, after)
	}

	// Refusals change nothing.
	for _, c := range []struct {
		name, action string
		status       int
		msg          string
	}{
		{system.UnitPanel, "stop", 400, "Cannot stop the panel service from the UI — it would terminate this session"},
		{"sshd", "restart", 400, "Unknown service"},
		{"nginx", "kill", 400, "Invalid action"},
		{"nginx", "logs", 404, "Not found"},
	} {
		_, err := pc.ServiceAction(ctx, c.name, api.ServiceAction(c.action))
		if relaytest.ErrorStatus(err) != c.status || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s %s: %v, want %d %q", c.action, c.name, err, c.status, c.msg)
		}
	}
	if s := servicesByName(t, pc)[system.UnitPanel]; s.Status != api.ServiceActive {
		t.Errorf("panel after the refused stop: %+v", s)
	}

	// The panel's restart answers first, then the panel comes back.
	before, _ = st.Supervisor.Status(ctx, system.UnitPanel)
	if _, err := pc.ServiceAction(ctx, system.UnitPanel, api.ServiceRestart); err != nil {
		t.Fatal(err)
	}
	if err := relaytest.Eventually(30*time.Second, func() error {
		after, _ := st.Supervisor.Status(ctx, system.UnitPanel)
		if !after.Since.After(before.Since) || after.State != system.StateActive {
			return errors.New("not restarted yet")
		}
		_, err := st.Admin().Health(ctx)
		return err
	}); err != nil {
		t.Fatalf("the panel did not come back after its restart: %v", err)
	}
}

func TestServicesAgentCapabilities(t *testing.T) {
	st := shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	base := st.Info.PanelURL
	plain := st.AgentCert("svc-none")
	reader := st.AgentCert("svc-read", api.CapTunnelsRead, api.CapServicesRead)
	none := panelclient.New(base, st.Client(&plain))
	ro := panelclient.New(base, st.Client(&reader))

	if _, err := none.Services(ctx); relaytest.ErrorStatus(err) != 403 {
		t.Errorf("agent without services:read: %v, want 403", err)
	}
	if list, err := ro.Services(ctx); err != nil || len(list) != len(system.ManagedServices) {
		t.Errorf("agent with services:read: %v %v", list, err)
	}
	if _, err := ro.ServiceAction(ctx, system.UnitAuth, api.ServiceRestart); relaytest.ErrorStatus(err) != 403 {
		t.Errorf("agent without services:write: %v, want 403", err)
	}
	// The log stream is for the admin only.
	if _, err := ro.OpenLogs(ctx, system.UnitAuth); relaytest.ErrorStatus(err) != 403 {
		t.Errorf("agent log stream: %v, want 403", err)
	}
}

// TestServiceLogs: a line the auth server prints (a failed login, the line
// fail2ban bans on) reaches the admin's log stream.
func TestServiceLogs(t *testing.T) {
	st := shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pc := st.Admin()
	logs, err := pc.OpenLogs(ctx, system.UnitAuth)
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	user := "nobody-" + time.Now().Format("150405.000")
	if _, err := st.Portal().FirstFactor(ctx, api.FirstFactorRequest{Username: user, Password: "wrong password"}); err == nil {
		t.Fatal("a wrong password logged in")
	}
	l, err := logs.Until(ctx, func(l api.LogLine) bool { return strings.Contains(l.Message, "user="+user) })
	if err != nil {
		t.Fatalf("the failed login did not reach the log stream: %v", err)
	}
	if !strings.Contains(l.Message, `msg="first factor failed"`) || !strings.Contains(l.Message, "ip=127.0.0.1") {
		t.Errorf("failed-login line %q", l.Message)
	}

	// The demo's panel runs inside the demo process; its unit log is a
	// file of its own, streamed like the others.
	plogs, err := pc.OpenLogs(ctx, system.UnitPanel)
	if err != nil {
		t.Fatal(err)
	}
	defer plogs.Close()
	name := "logs-" + strings.ReplaceAll(time.Now().Format("150405.000"), ".", "")
	if _, err := pc.CreateUser(ctx, api.CreateUserRequest{Username: name, DisplayName: "Logs", Email: name + "@example.com", Password: "a long password 1", Groups: []string{"family"}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.DeleteUser(context.Background(), name) })
	if _, err := plogs.Until(ctx, func(l api.LogLine) bool {
		return strings.Contains(l.Message, `msg="user created"`) && strings.Contains(l.Message, "user="+name)
	}); err != nil {
		t.Errorf("the panel's own log stream: %v", err)
	}

	// An unknown service is refused after the upgrade.
	bad, err := pc.OpenLogs(ctx, "sshd")
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if _, err := bad.Next(ctx); panelclient.CloseStatus(err) != 1008 {
		t.Errorf("unknown service: %v, want close 1008", err)
	}
}
