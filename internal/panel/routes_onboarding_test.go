package panel

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/config"
)

// dialStream opens the provisioning WebSocket with hdr (the headers nginx
// would add).
func (h *harness) dialStream(t *testing.T, hdr http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return websocket.Dial(ctx, "ws"+strings.TrimPrefix(h.http.URL, "http")+"/api/onboarding/provision/stream", &websocket.DialOptions{HTTPHeader: hdr})
}

func readFrame(t *testing.T, c *websocket.Conn) api.ProvisionFrame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, data, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var f api.ProvisionFrame
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("frame %q: %v", data, err)
	}
	return f
}

func TestProvisionGates(t *testing.T) {
	for _, st := range []string{config.StatusFresh, config.StatusDomainSet} {
		h := newHarness(t, st)
		h.do("POST", "/api/onboarding/provision", "", adminHeaders()).
			expect(t, 409, `{"error":"DNS must be verified before provisioning"}`)
	}
	h := newHarness(t, config.StatusDNSReady)
	h.addAgent("home", "AB", api.CapTunnelsWrite)
	h.do("POST", "/api/onboarding/provision", "", agentHeaders("home", "AB")).expect(t, 403, agentScope)
	h.do("POST", "/api/onboarding/provision", "", nil).expect(t, 403, certRequired)
	if _, resp, err := h.dialStream(t, agentHeaders("home", "AB")); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("agent on the stream: %v %v", resp, err)
	}
	if _, resp, err := h.dialStream(t, nil); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("no certificate on the stream: %v %v", resp, err)
	}
	// A cross-site page cannot open the stream with the admin's browser.
	foreign := adminHeaders()
	foreign.Set("Origin", "https://evil.example")
	if _, resp, err := h.dialStream(t, foreign); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("foreign origin on the stream: %v %v", resp, err)
	}

	done := newHarness(t, config.StatusCompleted)
	done.do("POST", "/api/onboarding/provision", "", adminHeaders()).expect(t, 410, `{"error":"Onboarding already completed"}`)
	_, resp, err := done.dialStream(t, adminHeaders())
	if err == nil || resp == nil || resp.StatusCode != 410 {
		t.Fatalf("stream after completion: %v %v", resp, err)
	}
}

// A run whose first task fails (this relay's service manager has no
// units): the stream shows the snapshot, the task running, the failure;
// the state stays PROVISIONING and a second POST is allowed.
func TestProvisionStreamShowsFailure(t *testing.T) {
	h := newHarness(t, config.StatusDNSReady)
	c, _, err := h.dialStream(t, adminHeaders())
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	snap := readFrame(t, c)
	if snap.Type != "state" || snap.IsRunning || len(snap.Tasks) != 6 || snap.Tasks[0].ID != "start-tunnel-server" || snap.Tasks[5].ID != "finalize" {
		t.Fatalf("snapshot %+v", snap)
	}
	h.do("POST", "/api/onboarding/provision", "", adminHeaders()).expect(t, 202, `{"ok":true,"message":"Provisioning started"}`)
	f := readFrame(t, c)
	if f.Task != "start-tunnel-server" || f.Status != "running" || f.Title != "Starting tunnel server" || f.Progress.Current != 1 || f.Progress.Total != 6 {
		t.Fatalf("first frame %+v", f)
	}
	f = readFrame(t, c)
	if f.Task != "start-tunnel-server" || f.Status != "error" || f.Message != "Failed: Starting tunnel server" || len(f.Error) == 0 {
		t.Fatalf("failure frame %+v", f)
	}
	if st, _ := h.store.Load(); st.Onboarding.Status != config.StatusProvisioning {
		t.Fatalf("state %s", st.Onboarding.Status)
	}
	// A reconnecting client gets the failed state at once.
	c2, _, err := h.dialStream(t, adminHeaders())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.CloseNow()
	snap = readFrame(t, c2)
	if snap.IsRunning || snap.Tasks[0].Status != "error" || !strings.Contains(string(snap.Error), `"task":"start-tunnel-server"`) {
		t.Fatalf("snapshot after failure %+v %s", snap, snap.Error)
	}
	h.do("POST", "/api/onboarding/provision", "", adminHeaders()).expect(t, 202, "")
}

func TestCertRenewRoutes(t *testing.T) {
	e := newRelayEnv(t)
	admin := adminHeaders()
	before, _ := e.certs.NotAfter(testDomain)
	e.advance(time.Hour) // the relay CA issues from "now"
	r := e.do("POST", "/api/certs/example.com/renew", "", admin)
	r.expect(t, 200, "")
	if r.body["ok"] != true || r.body["domain"] != testDomain || r.body["newExpiry"] == nil || r.body["warning"] != nil {
		t.Fatalf("renew: %s", r.raw)
	}
	if after, _ := e.certs.NotAfter(testDomain); !after.After(before) {
		t.Fatalf("not renewed: %v → %v", before, after)
	}
	e.do("POST", "/api/certs/unknown.example.com/renew", "", admin).expect(t, 404, `{"error":"Certificate not found"}`)
	e.do("POST", "/api/certs/Bad_Name/renew", "", admin).expect(t, 400, "")
	e.do("POST", "/api/certs/example.com/rotate", "", admin).expect(t, 404, `{"error":"Not found"}`)
	a := e.newAgent(t, "home")
	e.do("POST", "/api/certs/example.com/renew", "", a.headers()).expect(t, 403, agentScope)

	// The path both routes match: POST is the renewal of "agent" (not a
	// certificate name), DELETE the revocation of the agent "renew".
	r = e.do("POST", "/api/certs/agent/renew", "", admin)
	if r.status != 400 || !strings.Contains(r.raw, `"domain"`) {
		t.Fatalf("POST /api/certs/agent/renew: %d %s", r.status, r.raw)
	}
	e.do("DELETE", "/api/certs/agent/renew", "", admin).expect(t, 404, `{"error":"Agent certificate \"renew\" not found"}`)
	e.newAgent(t, "renew")
	e.do("DELETE", "/api/certs/agent/renew", "", admin).expect(t, 200, `{"ok":true,"label":"renew"}`)
	// A failing nginx test after the renewal is a warning, not a failure.
	e.vhosts.failNext(errFailNginx)
	r = e.do("POST", "/api/certs/example.com/renew", "", admin)
	if r.status != 200 || !strings.Contains(r.raw, "nginx could not be reloaded") {
		t.Fatalf("renew with a failing nginx: %d %s", r.status, r.raw)
	}
}
