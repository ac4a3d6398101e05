package bench

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/relaytest"
	"github.com/portlama/portlama/internal/system"
	"github.com/portlama/portlama/internal/testutil"
)

var flagIdleMaps = flag.Bool("idle-maps", false, "BenchmarkIdleRSS: print each daemon's largest resident mappings")

// idleSettle is how long the daemons sit idle before they are measured:
// long enough for start-up garbage to be collected and returned.
const idleSettle = 10 * time.Second

// BenchmarkIdleRSS starts a relay (nginx, onboarded with Pebble) whose
// panel, tunnel server and auth server run as the real `portlama` binary,
// as the units of an installed relay do (the stack's in-process panel is
// stopped and `portlama panel` started on its address), lets them sit
// idle and prints each daemon's resident memory: RSS, and its anonymous
// part (heap, stacks: what the process itself holds) apart from the
// file-backed part (the binary's pages, which the three processes share
// through the page cache), and PSS, which counts a shared page once. It
// measures after start-up and again after a burst of 50 lists of 1,000
// tunnels. The target (issue 7) is RSS summed.
func BenchmarkIdleRSS(b *testing.B) {
	st := relaytest.NewStack(b)
	ctx := context.Background()
	relayBin, _ := relaytest.Binaries(b)
	if err := st.Supervisor.Stop(ctx, system.UnitPanel); err != nil {
		b.Fatal(err)
	}
	panelCmd := exec.Command(relayBin, "panel", "--relay-config", st.RelayConfigPath())
	panelCmd.Stdout, panelCmd.Stderr = os.Stderr, os.Stderr
	if err := panelCmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		panelCmd.Process.Signal(os.Interrupt)
		panelCmd.Wait()
		st.Supervisor.Start(context.Background(), system.UnitPanel)
	})
	if err := testutil.Eventually(30*time.Second, func() error {
		c, err := net.Dial("tcp", st.Relay.Addrs.Panel)
		if err == nil {
			c.Close()
		}
		return err
	}); err != nil {
		b.Fatalf("portlama panel does not listen: %v", err)
	}
	// What a dashboard visit asks for, through nginx: every daemon has
	// served something before it is measured.
	a := st.AdminHTTP()
	for _, p := range []string{"/api/health", "/api/tunnels", "/api/sites", "/api/users", "/api/services"} {
		if code, out, err := do(a, "GET", st.Info.PanelURL+p, ""); err != nil || code != 200 {
			b.Fatalf("GET %s: %d %v %s", p, code, err, out)
		}
	}
	pids := map[string]int{system.UnitPanel: panelCmd.Process.Pid}
	for _, u := range []string{system.UnitTunnel, system.UnitAuth} {
		s, err := st.Supervisor.Status(ctx, u)
		if err != nil || s.MainPID <= 0 {
			b.Fatalf("%s: no main pid (%v)", u, err)
		}
		pids[u] = s.MainPID
	}
	measure := func(what string) testutil.ProcMem {
		time.Sleep(idleSettle)
		var sum testutil.ProcMem
		line := ""
		for _, u := range []string{system.UnitPanel, system.UnitTunnel, system.UnitAuth} {
			m := readMemStatus(b, pids[u])
			sum = sum.Add(m)
			line += fmt.Sprintf("; %s RSS %.1f MiB (anon %.1f, file %.1f)", u, m.RSS, m.Anon, m.File)
			if *flagIdleMaps {
				b.Logf("%s mappings:\n%s", u, topMappings(b, pids[u], 8))
			}
		}
		b.Logf("%s, idle for %v%s; total RSS %.1f MiB (target 40), anon %.1f MiB, file-backed %.1f MiB (the one binary's pages, shared: PSS of the three %.1f MiB)",
			what, idleSettle, line, sum.RSS, sum.Anon, sum.File, sum.PSS)
		return sum
	}
	started := measure("after start-up")
	// A burst the panel must give back: the web UI polling the list of
	// 1,000 tunnels.
	writeTunnels(b, st, 1000, 10)
	ka := keepAlive(b, a)
	for range 50 {
		if code, out, err := do(ka, "GET", st.Info.PanelURL+"/api/tunnels", ""); err != nil || code != 200 {
			b.Fatalf("GET /api/tunnels: %d %v %.200s", code, err, out)
		}
	}
	ka.CloseIdleConnections()
	burst := measure("after 50 lists of 1,000 tunnels")
	b.ReportMetric(started.RSS, "MiB-RSS")
	b.ReportMetric(started.Anon, "MiB-anon")
	b.ReportMetric(burst.RSS, "MiB-RSS-after-lists")
}

// readMemStatus reads pid's resident memory from /proc.
func readMemStatus(b testing.TB, pid int) testutil.ProcMem {
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Fatal(err)
	}
	rollup, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	return testutil.ParseProcMem(string(status), string(rollup))
}

// topMappings lists the n mappings of pid with the most resident memory
// (/proc/<pid>/smaps).
func topMappings(b testing.TB, pid, n int) string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps")
	if err != nil {
		b.Fatal(err)
	}
	type mapping struct {
		desc string
		kb   int
	}
	var ms []mapping
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":"):
			ms = append(ms, mapping{desc: line})
		case len(f) >= 2 && f[0] == "Rss:" && len(ms) > 0:
			ms[len(ms)-1].kb, _ = strconv.Atoi(f[1])
		}
	}
	slices.SortFunc(ms, func(a, b mapping) int { return b.kb - a.kb })
	var out strings.Builder
	for _, m := range ms[:min(n, len(ms))] {
		fmt.Fprintf(&out, "  %6d kB  %s\n", m.kb, m.desc)
	}
	return out.String()
}
