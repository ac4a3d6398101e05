package panel

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/config"
)

// TestAgentTunnelLimit: an agent label owns at most agentLimits.tunnels
// tunnels (default 50), whoever creates them; the refusal says what to do
// and changes nothing.
func TestAgentTunnelLimit(t *testing.T) {
	e := newRelayEnv(t)
	home := e.newAgent(t, "home", "tunnels:write")
	e.newAgent(t, "work")
	admin := adminHeaders()
	for i := range config.DefaultAgentTunnels {
		e.do("POST", "/api/tunnels", fmt.Sprintf(`{"subdomain":"app%d","port":%d,"agentLabel":"home"}`, i, 8000+i), admin).expect(t, 201, "")
	}
	want := `{"error":"Agent 'home' has reached the limit of 50 tunnels per agent. Delete a tunnel it no longer needs, or raise agentLimits.tunnels in panel.json."}`
	e.do("POST", "/api/tunnels", `{"subdomain":"one-more","port":9000,"agentLabel":"home"}`, admin).expect(t, 409, want)
	e.do("POST", "/api/tunnels", `{"subdomain":"one-more","port":9000}`, home.headers()).expect(t, 409, want)
	if n := len(listTunnels(t, e, admin)); n != config.DefaultAgentTunnels {
		t.Fatalf("%d tunnels after the refusals, want %d", n, config.DefaultAgentTunnels)
	}
	if ports := e.aclPorts(t, "home"); len(ports) != config.DefaultAgentTunnels {
		t.Fatalf("home may bind %d ports, want %d", len(ports), config.DefaultAgentTunnels)
	}
	// The limit is per agent.
	e.do("POST", "/api/tunnels", `{"subdomain":"one-more","port":9000,"agentLabel":"work"}`, admin).expect(t, 201, "")

	// It is configurable in panel.json.
	if _, err := e.svc.Panel.Update(func(c *config.PanelConfig) error { c.AgentLimits.Tunnels = 1; return nil }); err != nil {
		t.Fatal(err)
	}
	r := e.do("POST", "/api/tunnels", `{"subdomain":"two-more","port":9001,"agentLabel":"work"}`, admin)
	r.expect(t, 409, "")
	if !strings.Contains(r.raw, "limit of 1 tunnels") {
		t.Fatalf("configured limit: %s", r.raw)
	}
}

// TestAgentChangeRateLimit: an agent certificate's changes are a token
// bucket (default 10 at once, 30 a minute): beyond it 429 with
// Retry-After, reads and admins unaffected, other agents unaffected.
func TestAgentChangeRateLimit(t *testing.T) {
	e := newRelayEnv(t)
	home := e.newAgent(t, "home", "tunnels:write")
	work := e.newAgent(t, "work", "tunnels:write")
	missing := "/api/tunnels/00000000-0000-4000-8000-000000000000"
	for range config.DefaultChangeBurst {
		e.do("PATCH", missing, `{"enabled":false}`, home.headers()).expect(t, 404, "")
	}
	r := e.do("DELETE", missing, "", home.headers())
	r.expect(t, 429, `{"error":"Too many changes from agent 'home': at most 10 at once and 30 a minute. Try again in 2 seconds."}`)
	if got := r.header.Get("Retry-After"); got != "2" {
		t.Fatalf("Retry-After %q, want 2", got)
	}
	// Refused requests spend nothing, reads are not limited.
	e.do("PATCH", missing, `{"enabled":false}`, home.headers()).expect(t, 429, "")
	e.do("GET", "/api/tunnels", "", home.headers()).expect(t, 200, "")
	// Neither the admin nor another agent is affected.
	for range 2 * config.DefaultChangeBurst {
		e.do("PATCH", missing, `{"enabled":false}`, adminHeaders()).expect(t, 404, "")
	}
	e.do("PATCH", missing, `{"enabled":false}`, work.headers()).expect(t, 404, "")
	// A token is back after 60/30 seconds.
	e.advance(2 * time.Second)
	e.do("PATCH", missing, `{"enabled":false}`, home.headers()).expect(t, 404, "")
	e.do("PATCH", missing, `{"enabled":false}`, home.headers()).expect(t, 429, "")
}
