package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/agent"
	"github.com/portlama/portlama/internal/pki"
	"github.com/portlama/portlama/internal/sampleapp"
	"github.com/portlama/portlama/internal/testutil"
	"github.com/portlama/portlama/internal/tunnel"
)

const (
	scaleAgents  = 10
	scalePerAgnt = 100
)

// BenchmarkScale: 1,000 tunnels over 10 agent sessions on one tunnel
// server (no nginx; the agents send nginx's proof headers themselves):
// time to bind them, memory of the server and the agents, the management
// socket's status call, and the time until all 1,000 relay ports answer
// again after the tunnel server was killed and restarted.
func BenchmarkScale(b *testing.B) {
	root, err := os.MkdirTemp("", "portlama-scale-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(root) })
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)

	appLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	appPort := appLn.Addr().(*net.TCPAddr).Port
	go sampleapp.Serve(ctx, appLn, "scale app")

	addr := "127.0.0.1:" + strconv.Itoa(testutil.FreePort(b))
	relayPorts := make([][]int, scaleAgents)
	for i := range relayPorts {
		for range scalePerAgnt {
			relayPorts[i] = append(relayPorts[i], testutil.FreePort(b))
		}
	}

	tdir := filepath.Join(root, "tunnel")
	if err := os.MkdirAll(tdir, 0o700); err != nil {
		b.Fatal(err)
	}
	acl := tunnel.NewACL(filepath.Join(tdir, tunnel.ACLFileName))
	creds := make([]string, scaleAgents)
	for i := range scaleAgents {
		label := "scale-" + strconv.Itoa(i)
		if err := acl.AddAgent(ctx, label); err != nil {
			b.Fatal(err)
		}
		if err := acl.SetPorts(ctx, label, relayPorts[i]); err != nil {
			b.Fatal(err)
		}
		if creds[i], err = acl.Credential(ctx, label); err != nil {
			b.Fatal(err)
		}
	}
	srvSpec := serverSpec{Dir: tdir, Addr: addr}
	server := startChild(b, "tunnel server", "tunnel-server", srvSpec, childEnv()...)
	cfg := tunnel.DirConfig(tdir)
	fp, err := tunnel.ReadFingerprint(cfg.FingerprintFile)
	if err != nil {
		b.Fatal(err)
	}
	secret, err := tunnel.ReadProxySecret(cfg.SecretFile)
	if err != nil {
		b.Fatal(err)
	}
	serverIdle := procRSS(server.pid())

	b.ResetTimer()
	start := time.Now()
	agents := make([]*child, scaleAgents)
	for i := range scaleAgents {
		label := "scale-" + strconv.Itoa(i)
		var ts []agent.AgentTunnel
		for j, p := range relayPorts[i] {
			ts = append(ts, agent.AgentTunnel{ID: strconv.Itoa(j), FQDN: fmt.Sprintf("t%d.%s", j, label), Port: appPort, TargetHost: "127.0.0.1", RelayPort: p})
		}
		agents[i] = spawnChild(b, "agent "+label, "agent", agentSpec{
			Server: "http://" + addr, Auth: creds[i], Fingerprint: fp, Tunnels: ts,
			Header: map[string]string{tunnel.HeaderSecret: secret, tunnel.HeaderClientVerify: "SUCCESS",
				tunnel.HeaderClientDN: "CN=" + pki.AgentCN(label) + ",O=Portlama"},
		}, childEnv()...)
	}
	var ready []time.Duration
	for _, a := range agents {
		ready = append(ready, time.Duration(a.waitReady(b, 60*time.Second))*time.Microsecond)
	}
	allBound := time.Since(start)
	all := slices.Concat(relayPorts...)
	answered := probeAll(b, all, time.Minute)
	firstAnswers := time.Since(start)

	mc := tunnel.NewManageClient(cfg.ManageSocket, cfg.ACLFile)
	t0 := time.Now()
	st, err := mc.Status(ctx)
	statusTook := time.Since(t0)
	if err != nil {
		b.Fatal(err)
	}
	bound, sessions := 0, 0
	for _, a := range st.Agents {
		bound += len(a.BoundPorts)
		sessions += a.Sessions
	}
	if bound != len(all) || sessions != scaleAgents {
		b.Fatalf("status: %d ports bound over %d sessions, want %d over %d", bound, sessions, len(all), scaleAgents)
	}
	serverBound := procRSS(server.pid())
	var agentRSS float64
	for _, a := range agents {
		agentRSS += procRSS(a.pid())
	}

	// Kill the tunnel server and start it again: the agents reconnect on
	// their own (their runner's backoff starts at 1 s).
	server.kill()
	killed := time.Now()
	server = startChild(b, "tunnel server (restarted)", "tunnel-server", srvSpec, childEnv()...)
	serverUp := time.Since(killed)
	probeAll(b, all, 2*time.Minute)
	recovered := time.Since(killed)
	b.StopTimer()

	w := os.Stdout
	fmt.Fprintf(w, "\n== Scale benchmark: %d tunnels over %d agent sessions, one tunnel server (no nginx), loadavg %s\n", len(all), scaleAgents, loadavg())
	fmt.Fprintf(w, "%-52s %s\n", "all agents started → every tunnel bound", allBound.Round(time.Millisecond))
	fmt.Fprintf(w, "%-52s %s … %s\n", "per agent, start → its 100 tunnels bound", slices.Min(ready).Round(time.Millisecond), slices.Max(ready).Round(time.Millisecond))
	fmt.Fprintf(w, "%-52s %s (%d answered)\n", "start → all 1,000 relay ports answered a GET", firstAnswers.Round(time.Millisecond), answered)
	fmt.Fprintf(w, "%-52s %s\n", "GET /v1/status (management socket)", statusTook.Round(time.Microsecond))
	fmt.Fprintf(w, "%-52s %.1f MiB idle, %.1f MiB with 1,000 tunnels\n", "tunnel server RSS", serverIdle, serverBound)
	fmt.Fprintf(w, "%-52s %.1f MiB total, %.1f MiB each\n", "agent RSS (100 tunnels each)", agentRSS, agentRSS/scaleAgents)
	fmt.Fprintf(w, "%-52s %s (server up after %s)\n", "kill -9 of the server → all 1,000 answer again", recovered.Round(time.Millisecond), serverUp.Round(time.Millisecond))
	fmt.Fprintln(w)
	b.ReportMetric(float64(allBound.Milliseconds()), "bind-all-ms")
	b.ReportMetric(float64(recovered.Milliseconds()), "recover-ms")
	b.ReportMetric(serverBound, "server-MiB")
	b.ReportMetric(agentRSS/scaleAgents, "agent-MiB")
}

// probeAll GETs every relay port until each answered 200 (16 at a time)
// and returns how many did; it fails the benchmark after within.
func probeAll(b *testing.B, ports []int, within time.Duration) int {
	b.Helper()
	deadline := time.Now().Add(within)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var ok atomic.Int64
	var wg sync.WaitGroup
	work := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				for time.Now().Before(deadline) {
					resp, err := hc.Get("http://127.0.0.1:" + strconv.Itoa(p) + "/")
					if err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode == 200 {
							ok.Add(1)
							break
						}
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	for _, p := range ports {
		work <- p
	}
	close(work)
	wg.Wait()
	if int(ok.Load()) != len(ports) {
		b.Fatalf("only %d of %d relay ports answered within %s", ok.Load(), len(ports), within)
	}
	return int(ok.Load())
}
