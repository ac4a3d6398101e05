package panel

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/portlama/portlama/internal/api"
)

// TestChangesWithADaemonDown: with the tunnel server and then the auth
// server stopped, changes are saved and answered 200 with a warning that
// names the service (docs/api.md, "Changes in force"); the typed client
// hands it to its OnWarning hook.
func TestChangesWithADaemonDown(t *testing.T) {
	e := newRelayEnv(t)
	ctx := context.Background()
	e.newAgent(t, "home")
	var mu sync.Mutex
	var got []string
	a := clientFor(e.harness, e.realAdminHeaders(t))
	a.OnWarning(func(w string) { mu.Lock(); got = append(got, w); mu.Unlock() })
	last := func() string {
		mu.Lock()
		defer mu.Unlock()
		if len(got) == 0 {
			return ""
		}
		w := got[len(got)-1]
		got = nil
		return w
	}

	tun, err := a.CreateTunnel(ctx, api.CreateTunnelRequest{Subdomain: "app", Port: 8080, AgentLabel: "home"})
	if err != nil || last() != "" {
		t.Fatalf("create with every daemon up: %v %q", err, last())
	}

	e.daemons.stopTunnel()
	off, err := a.SetTunnelEnabled(ctx, tun.ID, false)
	if w := last(); err != nil || off.IsEnabled() || !strings.Contains(w, "tunnel server") || !strings.Contains(w, "portlama-tunnel") {
		t.Fatalf("disable with the tunnel server down: %+v %v warning %q", off, err, w)
	}
	if ports := e.aclPorts(t, "home"); len(ports) != 0 {
		t.Fatalf("the unconfirmed change is not saved: ports %v", ports)
	}
	r := e.do("DELETE", "/api/certs/agent/home", "", adminHeaders())
	r.expect(t, 200, "")
	if w, _ := r.body["warning"].(string); !strings.Contains(w, "portlama-tunnel") {
		t.Fatalf("revocation with the tunnel server down: %s", r.raw)
	}

	e.daemons.stopAuth()
	e.newAgent(t, "work")
	r = e.do("POST", "/api/tunnels", `{"subdomain":"other","port":8081,"agentLabel":"work","accessMode":"restricted","allowedUsers":["bob"]}`, adminHeaders())
	r.expect(t, 201, "")
	if w, _ := r.body["warning"].(string); !strings.Contains(w, "portlama-auth") || !strings.Contains(w, "portlama-tunnel") {
		t.Fatalf("create with both servers down: %s", r.raw)
	}
	if err := a.DeleteTunnel(ctx, tun.ID); err != nil || !strings.Contains(last(), "portlama-auth") {
		t.Fatalf("delete with the auth server down: %v", err)
	}
}
