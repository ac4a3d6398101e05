package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/auth"
	"github.com/portlama/portlama/internal/relaytest"
	"github.com/portlama/portlama/internal/system"
)

// TestChangesInForce: every answer of the API is the state the relay is
// in (docs/api.md, "Changes in force"). No test here waits for a change to
// propagate: each probe follows the answer immediately. (Waits that remain
// are for the agent to bind a new tunnel, on its own poll.)
func TestChangesInForce(t *testing.T) {
	st := startStack(t)
	a := admin(t, st)
	ch := changes{t: t, st: st, a: a}

	t.Run("access mode", func(t *testing.T) {
		ch.t = t
		tun, app, ck := ch.signedIn("inforce", "ivan")
		c := visitor(st)
		for i := range 20 {
			ch.patch(tun.ID, map[string]any{"accessMode": "restricted", "allowedUsers": []string{"someone-else"}})
			if resp, _ := getWith(t, c, app, ck, nil); resp.StatusCode != http.StatusForbidden {
				t.Fatalf("round %d: a request right after PATCH restricted answered %d, want 403", i, resp.StatusCode)
			}
			ch.patch(tun.ID, map[string]any{"accessMode": "authenticated"})
			if resp, _ := getWith(t, c, app, ck, nil); resp.StatusCode != http.StatusOK {
				t.Fatalf("round %d: a request right after PATCH authenticated answered %d, want 200", i, resp.StatusCode)
			}
		}
	})

	t.Run("user deletion", func(t *testing.T) {
		ch.t = t
		tun := ch.createTunnel("members", api.AccessAuthenticated, st.Info.AgentLabel)
		app := hostURL(st, tun.Subdomain, "/")
		c := visitor(st)
		first := true
		for i := range 20 {
			u := newUser(t, st, fmt.Sprintf("leaver%d", i))
			ck := login(t, st, u, time.Now())
			if first {
				ch.waitServed(app, ck)
				first = false
			} else if resp, _ := getWith(t, c, app, ck, nil); resp.StatusCode != http.StatusOK {
				t.Fatalf("round %d: signed-in user answered %d, want 200", i, resp.StatusCode)
			}
			noWarning(t, mustCall(t, a, "DELETE", st.Info.PanelURL+"/api/users/"+u.name, nil, 200))
			resp, _ := getWith(t, c, app, ck, nil)
			redirectsToPortal(t, st, resp, app)
		}
	})

	t.Run("port removal and tunnel deletion", func(t *testing.T) {
		ch.t = t
		tun := ch.createTunnel("ported", api.AccessPublic, st.Info.AgentLabel)
		app := hostURL(st, tun.Subdomain, "/")
		for i := range 5 {
			st.WaitHTTP(nil, app, 200, 20*time.Second)
			ch.patch(tun.ID, map[string]any{"enabled": false})
			ch.portClosed(tun.RelayPort, fmt.Sprintf("round %d: after disabling", i))
			ch.patch(tun.ID, map[string]any{"enabled": true})
		}
		st.WaitHTTP(nil, app, 200, 20*time.Second)
		noWarning(t, mustCall(t, a, "DELETE", st.Info.PanelURL+"/api/tunnels/"+tun.ID, nil, 200))
		ch.portClosed(tun.RelayPort, "after deleting the tunnel")
	})

	t.Run("agent revocation", func(t *testing.T) {
		ch.t = t
		ag := st.For(t).EnrollAgent("revokee")
		t.Cleanup(func() { st.Supervisor.Stop(context.Background(), "agent-"+ag.Label) })
		tun := ch.createTunnel("revoked-app", api.AccessPublic, ag.Label)
		app := hostURL(st, tun.Subdomain, "/")
		st.WaitHTTP(nil, app, 200, 20*time.Second)
		out := mustCall(t, a, "DELETE", st.Info.PanelURL+"/api/certs/agent/"+ag.Label, nil, 200)
		noWarning(t, out)
		ch.portClosed(tun.RelayPort, "after revoking the agent")
		// Its vhost is gone from nginx too (no certificate for the name).
		if resp, err := visitor(st).Get(app); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Fatal("the revoked agent's app is still served")
			}
		}
		// Disabled for good: a later agent with the label does not adopt it.
		for _, got := range ch.tunnels() {
			if got.ID == tun.ID && got.IsEnabled() {
				t.Fatalf("the revoked agent's tunnel is still enabled: %+v", got)
			}
		}
	})

	t.Run("auth server down", func(t *testing.T) {
		ch.t = t
		tun, app, ck := ch.signedIn("offline", "judy")

		c, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := st.Supervisor.Stop(c, system.UnitAuth); err != nil {
			t.Fatal(err)
		}
		started := false
		t.Cleanup(func() {
			if !started {
				st.Supervisor.Start(context.Background(), system.UnitAuth)
			}
		})
		out := mustCall(t, a, "PATCH", st.Info.PanelURL+"/api/tunnels/"+tun.ID,
			map[string]any{"accessMode": "restricted", "allowedUsers": []string{"someone-else"}}, 200)
		var res api.TunnelResponse
		decode(t, out, &res)
		if !strings.Contains(res.Warning, "auth server") || !strings.Contains(res.Warning, "portlama-auth") || res.Tunnel.AccessMode != api.AccessRestricted {
			t.Fatalf("change with the auth server down: %s", out)
		}

		if err := st.Supervisor.Start(c, system.UnitAuth); err != nil {
			t.Fatal(err)
		}
		started = true
		// Its own acknowledgement that it serves the saved rules (it read
		// them when it started); the socket is there once it runs.
		mc := auth.NewManageClient(auth.ManageSocketPath(st.Relay.Layout.AuthDir()))
		if err := relaytest.Eventually(20*time.Second, func() error { return mc.Reload(c) }); err != nil {
			t.Fatalf("auth server back: %v\n%s", err, st.Supervisor.Tail(system.UnitAuth, 2048))
		}
		if resp, _ := getWith(t, visitor(st), app, ck, nil); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("after the auth server came back: %d, want 403 by the saved rules", resp.StatusCode)
		}
	})

	t.Run("concurrent creates share nginx reloads", func(t *testing.T) {
		ch.t = t
		const n = 20
		before := st.Nginx.Reloads()
		var wg sync.WaitGroup
		created := make([]api.Tunnel, n)
		errs := make([]error, n)
		start := time.Now()
		for i := range n {
			wg.Go(func() {
				code, out := call(t, a, "POST", st.Info.PanelURL+"/api/tunnels", map[string]any{
					"subdomain": fmt.Sprintf("burst%d", i), "port": 30000 + i, "agentLabel": st.Info.AgentLabel, "accessMode": "public"})
				var res api.TunnelResponse
				if code != 201 {
					errs[i] = fmt.Errorf("create %d: %d %s", i, code, out)
					return
				}
				decode(t, out, &res)
				created[i] = res.Tunnel
			})
		}
		wg.Wait()
		took := time.Since(start)
		reloads := st.Nginx.Reloads() - before
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		t.Logf("%d concurrent creates: %d nginx reloads, %v", n, reloads, took.Round(time.Millisecond))
		if reloads > 5 {
			t.Errorf("%d concurrent creates caused %d nginx reloads, want at most 5", n, reloads)
		}
		// Each answered once its vhost was live.
		for _, tun := range created {
			resp, _ := getWith(t, visitor(st), hostURL(st, tun.Subdomain, "/"), nil, nil)
			if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMisdirectedRequest {
				t.Errorf("%s: %d, its vhost is not live", tun.Subdomain, resp.StatusCode)
			}
		}
		for _, tun := range created {
			wg.Go(func() { call(t, a, "DELETE", st.Info.PanelURL+"/api/tunnels/"+tun.ID, nil) })
		}
		wg.Wait()
	})

	t.Run("agent change rate", func(t *testing.T) {
		ch.t = t
		cert := newAgentCert(t, st, "busy", "tunnels:read", "tunnels:write")
		c := clientWith(st, &cert)
		missing := st.Info.PanelURL + "/api/tunnels/00000000-0000-4000-8000-000000000000"
		for i := range 10 {
			if code, out := call(t, c, "PATCH", missing, map[string]any{"enabled": false}); code != 404 {
				t.Fatalf("change %d within the burst: %d %s", i, code, out)
			}
		}
		req, _ := http.NewRequest("DELETE", missing, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("the change beyond the burst: %d, want 429", resp.StatusCode)
		}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 {
			t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
		}
		// The admin is not held back by the agent's limit.
		mustCall(t, a, "PATCH", missing, map[string]any{"enabled": false}, 404)
	})
}

// changes are the API calls of TestChangesInForce.
type changes struct {
	t  *testing.T
	st *relaytest.Stack
	a  *http.Client
}

func (c changes) createTunnel(sub string, mode api.AccessMode, label string) api.Tunnel {
	c.t.Helper()
	out := mustCall(c.t, c.a, "POST", c.st.Info.PanelURL+"/api/tunnels", map[string]any{
		"subdomain": sub, "port": extraApp(c.t, sub+" app"), "agentLabel": label, "accessMode": mode}, 201)
	noWarning(c.t, out)
	var res api.TunnelResponse
	decode(c.t, out, &res)
	return res.Tunnel
}

// signedIn creates an authenticated tunnel of the sample agent and a user,
// signs the user in and waits until the agent serves the tunnel.
func (c changes) signedIn(sub, user string) (_ api.Tunnel, app string, _ *http.Cookie) {
	c.t.Helper()
	tun := c.createTunnel(sub, api.AccessAuthenticated, c.st.Info.AgentLabel)
	ck := login(c.t, c.st, newUser(c.t, c.st, user), time.Now())
	app = hostURL(c.st, tun.Subdomain, "/")
	c.waitServed(app, ck)
	return tun, app, ck
}

func (c changes) patch(id string, body map[string]any) {
	c.t.Helper()
	noWarning(c.t, mustCall(c.t, c.a, "PATCH", c.st.Info.PanelURL+"/api/tunnels/"+id, body, 200))
}

func (c changes) tunnels() []api.Tunnel {
	c.t.Helper()
	var list api.TunnelList
	decode(c.t, mustCall(c.t, c.a, "GET", c.st.Info.PanelURL+"/api/tunnels", nil, 200), &list)
	return list.Tunnels
}

// waitServed waits until the agent has bound a new tunnel and app answers
// the signed-in cookie's owner.
func (c changes) waitServed(app string, ck *http.Cookie) {
	c.t.Helper()
	c.st.WaitHTTP(nil, app, 200, 20*time.Second, ck)
}

// portClosed checks, 20 times with no pause, that nothing accepts
// connections on the relay port any more.
func (c changes) portClosed(port int, when string) {
	c.t.Helper()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for i := range 20 {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			c.t.Fatalf("%s: relay port %d accepted connection %d", when, port, i)
		}
	}
}

// noWarning fails when an answer carries a warning: the daemons run, so
// every change must be confirmed.
func noWarning(t *testing.T, body string) {
	t.Helper()
	if strings.Contains(body, `"warning"`) {
		t.Fatalf("answer with a warning although every daemon runs: %s", body)
	}
}
