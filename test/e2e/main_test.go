// Package e2e runs the whole relay — real nginx, the panel, the tunnel
// server, the auth server, Pebble for its certificates and the
// portlama-agent binary — through the test harness (internal/relaytest),
// and checks what a visitor, an admin and an agent see.
package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/relaytest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	stopShared()
	relaytest.Cleanup()
	os.Exit(code)
}

// startStack starts a stack of the test's own with the demo's sample
// (agent, two tunnels, a user). Its certificates come from the relay CA:
// these tests are about tunnels and logins, and the ACME tests cover the
// certificates.
func startStack(t *testing.T) *relaytest.Stack {
	t.Helper()
	return relaytest.NewStack(t, relaytest.WithSample(), relaytest.WithRelayCA())
}

// visitor is an HTTP client without a client certificate that trusts the
// stack's certificates and reaches its names on loopback; it does not
// follow redirects.
func visitor(st *relaytest.Stack) *http.Client { return st.Visitor() }

func appURL(st *relaytest.Stack, access string) string {
	for _, a := range st.Info.Apps {
		if a.Access == access {
			return a.URL
		}
	}
	panic("no app with access " + access)
}

func get(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// eventually retries fn until it returns nil or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, fn func() error) time.Duration {
	t.Helper()
	start := time.Now()
	if err := relaytest.Eventually(within, fn); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return time.Since(start)
}

func decode(t *testing.T, body string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
