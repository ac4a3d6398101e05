package auth

import (
	"net/http"
	"testing"
)

func TestWebSocketNeedsTheAppsOrigin(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	sess := e.login("alice")
	const app = "https://app.demo.localhost:8443/socket"
	cases := []struct {
		name string
		hdr  []string
		want int
	}{
		{"websocket from a sibling host", []string{"X-Original-Upgrade", "websocket", "Origin", "https://evil.demo.localhost:8443"}, 403},
		{"websocket from a sibling host, Sec-Fetch-Mode only", []string{"Sec-Fetch-Mode", "websocket", "Origin", "https://evil.demo.localhost:8443"}, 403},
		{"websocket from the portal", []string{"X-Original-Upgrade", "websocket", "Origin", testPortal}, 403},
		{"websocket without Origin", []string{"X-Original-Upgrade", "websocket"}, 403},
		{"websocket with Origin null", []string{"X-Original-Upgrade", "websocket", "Origin", "null"}, 403},
		{"websocket, other port", []string{"X-Original-Upgrade", "websocket", "Origin", "https://app.demo.localhost:9443"}, 403},
		{"websocket, plain http origin", []string{"X-Original-Upgrade", "websocket", "Origin", "http://app.demo.localhost:8443"}, 403},
		{"websocket, upgrade token list", []string{"X-Original-Upgrade", "foo, WebSocket", "Origin", "https://evil.demo.localhost"}, 403},
		{"websocket from another site", []string{"X-Original-Upgrade", "websocket", "Origin", "https://evil.example"}, 403},
		{"websocket from the app", []string{"X-Original-Upgrade", "websocket", "Origin", "https://app.demo.localhost:8443"}, 200},
		{"websocket from the app, upper case", []string{"X-Original-Upgrade", "WebSocket", "Sec-Fetch-Mode", "websocket", "Origin", "https://APP.demo.localhost:8443"}, 200},
		{"plain navigation", nil, 200},
		{"navigation from a sibling host", []string{"Sec-Fetch-Site", "same-site", "Sec-Fetch-Mode", "navigate", "Origin", "https://evil.demo.localhost"}, 200},
		{"empty upgrade", []string{"X-Original-Upgrade", ""}, 200},
	}
	for _, c := range cases {
		r := e.authz(sess, app, c.hdr...)
		if r.code != c.want {
			t.Errorf("%s: %d, want %d", c.name, r.code, c.want)
		}
		if c.want != http.StatusOK && r.header.Get("Remote-User") != "" {
			t.Errorf("%s: denial carries Remote-User", c.name)
		}
	}
	// Default port: an Origin without a port matches https on 443.
	if r := e.authz(sess, "https://app.demo.localhost/ws", "X-Original-Upgrade", "websocket", "Origin", "https://app.demo.localhost"); r.code != 200 {
		t.Errorf("default port: %d, want 200", r.code)
	}
	if r := e.authz(sess, "https://app.demo.localhost/ws", "X-Original-Upgrade", "websocket", "Origin", "https://app.demo.localhost:8443"); r.code != 403 {
		t.Errorf("origin port 8443 for a 443 target: %d, want 403", r.code)
	}
	// Without a session the answer stays the login redirect.
	if r := e.authz("", app, "X-Original-Upgrade", "websocket", "Origin", "https://evil.demo.localhost"); r.code != 401 {
		t.Errorf("no session: %d, want 401", r.code)
	}
}
