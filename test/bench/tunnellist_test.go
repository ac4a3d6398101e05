package bench

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/relaytest"
	"github.com/portlama/portlama/internal/store"
	"github.com/portlama/portlama/internal/tunnels"
)

// BenchmarkTunnelList: GET /api/tunnels with 1,000 tunnels (the figure
// BenchmarkAPIScale takes after creating them through the API, in seconds
// instead of minutes: the tunnels are written into tunnels.json directly,
// with no vhosts, which the list does not read). It prints the latency
// through nginx (keep-alive, as the web UI asks) next to the parts the
// panel spends on it: loading the tunnels, the tunnel server's status
// call, and encoding the answer.
func BenchmarkTunnelList(b *testing.B) {
	const n, agents, gets = 1000, 10, 200
	st := relaytest.NewStack(b, relaytest.WithWildcard())
	svc := st.Services
	writeTunnels(b, st, n, agents)
	ctx := context.Background()

	timed := func(what string, f func() error) time.Duration {
		var ds []time.Duration
		for range gets {
			t0 := time.Now()
			if err := f(); err != nil {
				b.Fatalf("%s: %v", what, err)
			}
			ds = append(ds, time.Since(t0))
		}
		return pct(ds, 50)
	}
	var all []api.Tunnel
	load := timed("list", func() (err error) {
		all, err = svc.Tunnels.List(tunnels.Caller{Admin: true})
		return err
	})
	if len(all) != n {
		b.Fatalf("listed %d tunnels, want %d", len(all), n)
	}
	status := timed("tunnel server status", func() error { _, err := svc.TunnelManage.Status(ctx); return err })
	size := 0
	encode := timed("encode", func() error {
		data, err := json.Marshal(api.TunnelList{Tunnels: all})
		size = len(data)
		return err
	})

	url := st.Info.PanelURL + "/api/tunnels"
	get := func(c *http.Client) []time.Duration {
		var ds []time.Duration
		for range gets {
			t0 := time.Now()
			code, out, err := do(c, "GET", url, "")
			ds = append(ds, time.Since(t0))
			if err != nil || code != 200 {
				b.Fatalf("GET /api/tunnels: %d %v %.200s", code, err, out)
			}
		}
		return ds
	}
	// A new connection per request (the stack's own clients): each pays
	// a TLS handshake with the admin's client certificate.
	fresh := get(st.AdminHTTP())
	b.ResetTimer()
	ds := get(keepAlive(b, st.AdminHTTP()))
	b.StopTimer()
	b.Logf("GET /api/tunnels with %d tunnels (%d KiB) through nginx: p50 %v, p99 %v (a new mTLS connection each: p50 %v, p99 %v); in the panel (p50): load %v, tunnel server status %v, encode %v",
		n, size/1024, pct(ds, 50), pct(ds, 99), pct(fresh, 50), pct(fresh, 99), load, status, encode)
	b.ReportMetric(float64(pct(ds, 50).Microseconds())/1000, "ms-p50")
	b.ReportMetric(float64(pct(ds, 99).Microseconds())/1000, "ms-p99")
}

// writeTunnels writes n public tunnels over agents agent labels into the
// stack's tunnels.json (no vhosts, no ACL: what the lists read).
func writeTunnels(b testing.TB, st *relaytest.Stack, n, agents int) {
	list := make([]api.Tunnel, n)
	now := time.Now().UTC()
	for i := range list {
		sub := "t" + strconv.Itoa(i)
		list[i] = api.Tunnel{
			ID: uuid.NewString(), Subdomain: sub, FQDN: sub + "." + st.Domain,
			AgentLabel: "scale-" + strconv.Itoa(i%agents), Port: 10000 + i/agents, TargetHost: "127.0.0.1",
			RelayPort: 42000 + i, Type: api.TypeApp, AccessMode: api.AccessPublic,
			CreatedAt: api.FormatTime(now.Add(time.Duration(i) * time.Millisecond)),
		}
	}
	if err := store.NewDoc[[]api.Tunnel](st.Services.Config.Layout.TunnelsFile(), 0o600).Save(list); err != nil {
		b.Fatal(err)
	}
}

// keepAlive is c with keep-alive connections, as a browser holds them
// (the stack's clients open a connection per request).
func keepAlive(b testing.TB, c *http.Client) *http.Client {
	t, ok := c.Transport.(*http.Transport)
	if !ok {
		b.Fatalf("client transport is %T, want *http.Transport", c.Transport)
	}
	t = t.Clone()
	t.DisableKeepAlives = false
	k := *c
	k.Transport = t
	return &k
}
