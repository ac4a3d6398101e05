package bench

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/auth"
	"github.com/portlama/portlama/internal/testutil"
)

var (
	flagDuration   = flag.Duration("duration", 5*time.Second, "length of one wrk measurement (whole seconds)")
	flagRounds     = flag.Int("rounds", 2, "interleaved repetitions of every measurement")
	flagProfileDir = flag.String("profile-dir", "", "write CPU profiles of the tunnel measurements into this directory")
)

const (
	clients      = 32        // concurrent keep-alive clients (the figure)
	downloadSize = 100 << 20 // 100 MiB
)

// path is one way through the relay that wrk loads.
type path struct {
	name    string
	url     string
	headers []string
	profile string // profile file prefix, "" for none
	rps     []float64
	p50     []time.Duration
	p99     []time.Duration
}

func (p *path) meanRPS() float64 {
	var s float64
	for _, v := range p.rps {
		s += v
	}
	return s / float64(len(p.rps))
}

func medianDur(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func median(fs []float64) float64 {
	s := slices.Clone(fs)
	slices.Sort(s)
	return s[len(s)/2]
}

func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// measure runs every path once per round, interleaved, so the compared
// figures see the same background load.
func measure(b *testing.B, wrkBin string, paths []*path) {
	b.Helper()
	for round := range *flagRounds {
		for _, p := range paths {
			stop := startProfile(b, p.profile, round)
			res := runWrk(b, wrkBin, clients, *flagDuration, p.url, p.headers...)
			stop()
			if res.Non2xx > 0 || res.SockErrs != "" || res.Requests == 0 {
				b.Errorf("%s: %d requests, %d non-2xx answers, socket errors %q", p.name, res.Requests, res.Non2xx, res.SockErrs)
			}
			p.rps = append(p.rps, res.RPS)
			p.p50 = append(p.p50, res.P50)
			p.p99 = append(p.p99, res.P99)
		}
	}
}

func startProfile(b *testing.B, prefix string, round int) func() {
	if *flagProfileDir == "" || prefix == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(*flagProfileDir, fmt.Sprintf("%s-%d.pprof", prefix, round)))
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		b.Logf("CPU profile not written (go test -cpuprofile active?): %v", err)
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

func fmtRPS(p *path) string {
	parts := make([]string, len(p.rps))
	for i, v := range p.rps {
		parts[i] = strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strings.Join(parts, ", ")
}

// BenchmarkRelay compares nginx → tunnel → app with nginx → app: requests
// per second with 32 keep-alive clients (wrk) and MiB/s of a 100 MiB
// download (curl), the tunnel client connected straight to the tunnel
// server (ws://) and, the production way, through nginx (wss://tunnel.<d>
// with a client certificate).
func BenchmarkRelay(b *testing.B) {
	wrkBin := testutil.NeedBinary(b, "wrk")
	curlBin := testutil.NeedBinary(b, "curl")
	r := startRelay(b)
	host := func(sub string) string { return "Host: " + fqdn(sub) }
	base := "https://127.0.0.1:" + strconv.Itoa(r.addrs.HTTPSPort) + "/"
	direct := &path{name: "nginx → app", url: base, headers: []string{host(subDirect)}}
	tun := &path{name: "nginx → tunnel (ws) → app", url: base, headers: []string{host(subTunnel)}, profile: "rps-tunnel-ws"}
	wss := &path{name: "nginx → tunnel (wss via nginx) → app", url: base, headers: []string{host(subWSS)}, profile: "rps-tunnel-wss"}
	appOnly := &path{name: "app alone (no nginx)", url: "http://127.0.0.1:" + strconv.Itoa(r.appPort) + "/"}
	tunOnly := &path{name: "tunnel (ws) → app, no nginx", url: "http://127.0.0.1:" + strconv.Itoa(r.relayPort) + "/", profile: "rps-tunnel-only"}
	load0 := loadavg()
	b.ResetTimer()
	measure(b, wrkBin, []*path{direct, tun, wss, appOnly, tunOnly})

	// Downloads, interleaved, median of three.
	dl := map[string][]float64{}
	subs := []string{subDirect, subTunnel, subWSS}
	for round := range 3 {
		for _, sub := range subs {
			stop := func() {}
			if sub != subDirect {
				stop = startProfile(b, "download-"+sub, round)
			}
			dl[sub] = append(dl[sub], r.download(b, curlBin, sub, downloadSize))
			stop()
		}
	}
	b.StopTimer()
	load1 := loadavg()

	dDirect, dTun, dWSS := median(dl[subDirect]), median(dl[subTunnel]), median(dl[subWSS])
	w := os.Stdout
	fmt.Fprintf(w, "\n== Relay benchmark: %d keep-alive clients, %d × %s per path (interleaved), GOMAXPROCS=%d, %d CPUs\n",
		clients, *flagRounds, *flagDuration, runtime.GOMAXPROCS(0), runtime.NumCPU())
	fmt.Fprintf(w, "   loadavg before %s, after %s\n", load0, load1)
	fmt.Fprintf(w, "%-40s %10s %9s %9s %8s   %s\n", "path", "req/s", "p50", "p99", "ratio", "rounds")
	for _, p := range []*path{direct, tun, wss, appOnly, tunOnly} {
		ratio := "-"
		if p == tun || p == wss {
			ratio = fmt.Sprintf("%.2f×", p.meanRPS()/direct.meanRPS())
		}
		if p == tunOnly {
			ratio = fmt.Sprintf("%.2f×", p.meanRPS()/appOnly.meanRPS())
		}
		fmt.Fprintf(w, "%-40s %10.0f %9s %9s %8s   %s\n", p.name, p.meanRPS(),
			medianDur(p.p50).Round(time.Microsecond), medianDur(p.p99).Round(time.Microsecond), ratio, fmtRPS(p))
	}
	fmt.Fprintf(w, "%-40s %10s %8s   %s\n", "100 MiB download", "MiB/s", "ratio", "runs")
	for _, row := range []struct {
		name string
		sub  string
	}{{direct.name, subDirect}, {tun.name, subTunnel}, {wss.name, subWSS}} {
		ratio := "-"
		if row.sub != subDirect {
			ratio = fmt.Sprintf("%.2f×", median(dl[row.sub])/dDirect)
		}
		runs := make([]string, 0, 3)
		for _, v := range dl[row.sub] {
			runs = append(runs, strconv.FormatFloat(v, 'f', 0, 64))
		}
		fmt.Fprintf(w, "%-40s %10.0f %8s   %s\n", row.name, median(dl[row.sub]), ratio, strings.Join(runs, ", "))
	}
	fmt.Fprintln(w)

	b.ReportMetric(direct.meanRPS(), "direct-req/s")
	b.ReportMetric(tun.meanRPS(), "tunnel-req/s")
	b.ReportMetric(tun.meanRPS()/direct.meanRPS(), "tunnel/direct-req")
	b.ReportMetric(wss.meanRPS()/direct.meanRPS(), "wss/direct-req")
	b.ReportMetric(dDirect, "direct-MiB/s")
	b.ReportMetric(dTun, "tunnel-MiB/s")
	b.ReportMetric(dWSS, "wss-MiB/s")
}

// BenchmarkAuth measures the auth-request endpoint for a valid session
// under 32 concurrent clients (p50/p99, straight to the auth server as
// nginx calls it), and the whole visitor path nginx + auth + tunnel against
// the same path in public mode.
func BenchmarkAuth(b *testing.B) {
	wrkBin := testutil.NeedBinary(b, "wrk")
	r := startRelay(b)
	cookie := "Cookie: " + auth.SessionCookieName + "=" + r.cookie
	base := "https://127.0.0.1:" + strconv.Itoa(r.addrs.HTTPSPort) + "/"
	authz := &path{name: "auth-request endpoint (valid session)", url: "http://" + r.authAddr + "/api/authz/auth-request",
		headers: []string{cookie, "X-Original-URL: " + r.url(subSecure, "/"), "X-Original-Method: GET", "X-Forwarded-For: 127.0.0.1"}}
	public := &path{name: "nginx → tunnel → app, public", url: base, headers: []string{"Host: " + fqdn(subTunnel), cookie}}
	protected := &path{name: "nginx + auth → tunnel → app, protected", url: base, headers: []string{"Host: " + fqdn(subSecure), cookie}}
	load0 := loadavg()
	b.ResetTimer()
	measure(b, wrkBin, []*path{authz, public, protected})
	b.StopTimer()
	load1 := loadavg()

	w := os.Stdout
	fmt.Fprintf(w, "\n== Auth benchmark: %d keep-alive clients, %d × %s per path (interleaved), GOMAXPROCS=%d\n",
		clients, *flagRounds, *flagDuration, runtime.GOMAXPROCS(0))
	fmt.Fprintf(w, "   loadavg before %s, after %s\n", load0, load1)
	fmt.Fprintf(w, "%-40s %10s %9s %9s %8s   %s\n", "path", "req/s", "p50", "p99", "ratio", "rounds")
	for _, p := range []*path{authz, public, protected} {
		ratio := "-"
		if p == protected {
			ratio = fmt.Sprintf("%.2f×", protected.meanRPS()/public.meanRPS())
		}
		fmt.Fprintf(w, "%-40s %10.0f %9s %9s %8s   %s\n", p.name, p.meanRPS(),
			medianDur(p.p50).Round(time.Microsecond), medianDur(p.p99).Round(time.Microsecond), ratio, fmtRPS(p))
	}
	fmt.Fprintln(w)
	b.ReportMetric(float64(medianDur(authz.p50).Microseconds()), "authz-p50-µs")
	b.ReportMetric(float64(medianDur(authz.p99).Microseconds()), "authz-p99-µs")
	b.ReportMetric(public.meanRPS(), "public-req/s")
	b.ReportMetric(protected.meanRPS(), "protected-req/s")
	b.ReportMetric(protected.meanRPS()/public.meanRPS(), "protected/public")
}
