package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/relaytest"
	"github.com/portlama/portlama/internal/system"
)

var (
	flagAPIScale    = flag.Bool("api-scale", false, "run BenchmarkAPIScale (1,000 tunnels through the API; minutes)")
	flagAPITunnels  = flag.Int("api-scale-tunnels", 1000, "tunnels BenchmarkAPIScale creates")
	flagAPIAgents   = flag.Int("api-scale-agents", 10, "agents the tunnels are spread over")
	flagAPIPortBase = flag.Int("api-scale-port", 42000, "first relay port of BenchmarkAPIScale's range (needs -api-scale-tunnels free ports)")
	flagAPIWildcard = flag.Bool("api-scale-wildcard", true, "serve the tunnels with one wildcard certificate (DNS-01 against Pebble), as a relay with many tunnels would; false: one relay-CA certificate per tunnel")
)

// BenchmarkAPIScale (make bench-scale) creates 1,000 tunnels over 10
// agents through the API of a real relay (nginx, panel, tunnel and auth
// servers; one wildcard certificate from Pebble, or with
// -api-scale-wildcard=false one relay-CA certificate per tunnel), one
// admin client per agent at a time, and prints: the total and per-call time of the creates and the
// nginx reloads they took, one nginx test and reload with every vhost,
// GET /api/tunnels latency through nginx, and the memory of nginx, the
// tunnel server, the auth server and this process (which runs the panel).
// Each create answers only once its change is live (docs/api.md, "Changes
// in force"), so the per-call time includes the nginx reload it shared.
func BenchmarkAPIScale(b *testing.B) {
	if !*flagAPIScale {
		b.Skip("pass -args -api-scale (make bench-scale)")
	}
	n, agents := *flagAPITunnels, *flagAPIAgents
	opt := relaytest.WithRelayCA()
	if *flagAPIWildcard {
		opt = relaytest.WithWildcard()
	}
	st := relaytest.NewStack(b, opt)
	ctx := context.Background()
	if _, err := st.Services.Panel.Update(func(c *config.PanelConfig) error {
		c.RelayPortRange = config.PortRange{Min: *flagAPIPortBase, Max: *flagAPIPortBase + n + 99}
		c.AgentLimits.Tunnels = (n + agents - 1) / agents
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	a := st.AdminHTTP()
	base := st.Info.PanelURL
	labels := make([]string, agents)
	for i := range labels {
		labels[i] = "scale-" + strconv.Itoa(i)
		st.AgentCert(labels[i], api.CapTunnelsRead)
	}

	rss := func(what string) {
		ng := procRSS(st.Nginx.Pid())
		for _, c := range childPidsOf(st.Nginx.Pid()) {
			ng += procRSS(c)
		}
		line := fmt.Sprintf("%s: RSS nginx (master+workers) %.1f MiB", what, ng)
		for _, u := range []string{system.UnitTunnel, system.UnitAuth} {
			if s, err := st.Supervisor.Status(ctx, u); err == nil && s.MainPID > 0 {
				line += fmt.Sprintf(", %s %.1f MiB", u, procRSS(s.MainPID))
			}
		}
		b.Logf("%s, panel (this process) %.1f MiB", line, procRSS(os.Getpid()))
	}
	rss("idle")

	reloads0 := st.Nginx.Reloads()
	lat := make([]time.Duration, n)
	errs := make([]error, agents)
	var wg sync.WaitGroup
	start := time.Now()
	for ai, label := range labels {
		wg.Go(func() {
			for j := ai; j < n; j += agents {
				body := fmt.Sprintf(`{"subdomain":"t%d","port":%d,"agentLabel":%q,"accessMode":"public"}`, j, 10000+j/agents, label)
				t0 := time.Now()
				code, out, err := do(a, "POST", base+"/api/tunnels", body)
				lat[j] = time.Since(t0)
				if err == nil && code != http.StatusCreated {
					err = fmt.Errorf("HTTP %d %s", code, out)
				}
				if err != nil {
					errs[ai] = fmt.Errorf("create t%d: %w", j, err)
					return
				}
			}
		})
	}
	wg.Wait()
	total := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
	b.Logf("created %d tunnels over %d agents (%d concurrent clients) in %v: %.1f ms per call (mean), p50 %v, p99 %v, %.1f creates/s; %d nginx reloads",
		n, agents, agents, total.Round(time.Millisecond), float64(total.Milliseconds())/float64(n)*float64(agents),
		pct(lat, 50), pct(lat, 99), float64(n)/total.Seconds(), st.Nginx.Reloads()-reloads0)
	b.ReportMetric(total.Seconds()/float64(n)*1000, "ms/create")

	// One test and reload with every vhost.
	t0 := time.Now()
	if out, err := st.Nginx.Test(ctx); err != nil {
		b.Fatalf("nginx -t: %v %s", err, out)
	}
	tested := time.Since(t0)
	t0 = time.Now()
	if err := st.Nginx.Reload(ctx); err != nil {
		b.Fatal(err)
	}
	b.Logf("nginx with %d tunnel vhosts: nginx -t %v, reload (new workers up) %v", n, tested.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))

	// GET /api/tunnels through nginx, keep-alive.
	ka := keepAlive(b, a)
	var gets []time.Duration
	size := 0
	for range 200 {
		t0 := time.Now()
		code, out, err := do(ka, "GET", base+"/api/tunnels", "")
		gets = append(gets, time.Since(t0))
		if err != nil || code != 200 {
			b.Fatalf("GET /api/tunnels: %d %v", code, err)
		}
		size = len(out)
	}
	b.Logf("GET /api/tunnels with %d tunnels (%d KiB): p50 %v, p99 %v", n, size/1024, pct(gets, 50), pct(gets, 99))
	rss(fmt.Sprintf("with %d tunnels", n))
}

func do(c *http.Client, method, url, body string) (int, string, error) {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		return 0, "", err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data), err
}

// pct is the p-th percentile of ds.
func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)*p/100].Round(100 * time.Microsecond)
}

// childPidsOf lists pid's children (/proc/<pid>/task/<pid>/children).
func childPidsOf(pid int) []int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(data)) {
		if p, err := strconv.Atoi(f); err == nil {
			out = append(out, p)
		}
	}
	return out
}
