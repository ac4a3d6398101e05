package bench

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/auth"
	"github.com/portlama/portlama/internal/testutil"
	"github.com/portlama/portlama/internal/tunnel"
)

var (
	flagDuration   = flag.Duration("duration", 5*time.Second, "length of one wrk measurement (whole seconds)")
	flagRounds     = flag.Int("rounds", 2, "interleaved repetitions of every measurement")
	flagProfileDir = flag.String("profile-dir", "", "write CPU profiles of the tunnel measurements into this directory")
	flagAB         = flag.String("ab", "", "comma-separated experiments measured as extra rows (see experiments)")
)

// experiments are A/B variants for tuning, measured next to the standard
// paths in the same run (-ab name,...).
var experiments = map[string]func() *variant{
	"wsbuf64k": func() *variant {
		// chisel's client reads CHISEL_WS_BUFF_SIZE when it connects (the
		// server reads it once at start-up, so only the client changes).
		return &variant{name: "tunnel (ws), client WS buffers 64k", sub: "wsbuf",
			beforeDial: func() { os.Setenv("CHISEL_WS_BUFF_SIZE", "65536") }, afterDial: func() { os.Unsetenv("CHISEL_WS_BUFF_SIZE") }}
	},
	"wss-buf64k": func() *variant {
		return &variant{name: "tunnel (wss), tunnel vhost buffer 64k", sub: "wssbuf", wss: true,
			tunnelEdit: replaceOnce("proxy_buffering off;", "proxy_buffering off;\n        proxy_buffer_size 64k;\n        proxy_buffers 4 64k;")}
	},
	"wss-buf16k": func() *variant {
		return &variant{name: "tunnel (wss), tunnel vhost buffer 16k", sub: "wssbuf16", wss: true,
			tunnelEdit: replaceOnce("proxy_buffering off;", "proxy_buffering off;\n        proxy_buffer_size 16k;\n        proxy_buffers 4 16k;")}
	},
	"app-buffering-on": func() *variant {
		return &variant{name: "tunnel (ws), app proxy_buffering on", sub: "appbufon",
			appEdit: replaceOnce("proxy_buffering off;", "proxy_buffering on;")}
	},
	"direct-buffering-on": func() *variant {
		return &variant{name: "direct, app proxy_buffering on", sub: "directbufon", direct: true,
			appEdit: replaceOnce("proxy_buffering off;", "proxy_buffering on;")}
	},
	"app-buf64k": func() *variant {
		return &variant{name: "tunnel (ws), app proxy_buffer_size 64k", sub: "appbuf64",
			appEdit: replaceOnce("proxy_buffering off;", "proxy_buffering off;\n        proxy_buffer_size 64k;\n        proxy_buffers 4 64k;")}
	},
	"app-buf16k": func() *variant {
		return &variant{name: "tunnel (ws), app proxy_buffer_size 16k", sub: "appbuf16",
			appEdit: replaceOnce("proxy_buffering off;", "proxy_buffering off;\n        proxy_buffer_size 16k;\n        proxy_buffers 4 16k;")}
	},
	"app-buf32k": func() *variant {
		return &variant{name: "tunnel (ws), app proxy_buffer_size 32k", sub: "appbuf32",
			appEdit: replaceOnce("proxy_buffering off;", "proxy_buffering off;\n        proxy_buffer_size 32k;\n        proxy_buffers 4 32k;")}
	},
	"direct-buf16k": func() *variant {
		return &variant{name: "direct, app proxy_buffer_size 16k", sub: "directbuf16", direct: true,
			appEdit: replaceOnce("proxy_buffering off;", "proxy_buffering off;\n        proxy_buffer_size 16k;\n        proxy_buffers 4 16k;")}
	},
	"direct-buf32k": func() *variant {
		return &variant{name: "direct, app proxy_buffer_size 32k", sub: "directbuf32", direct: true,
			appEdit: replaceOnce("proxy_buffering off;", "proxy_buffering off;\n        proxy_buffer_size 32k;\n        proxy_buffers 4 32k;")}
	},
	"direct-buf64k": func() *variant {
		return &variant{name: "direct, app proxy_buffer_size 64k", sub: "directbuf64", direct: true,
			appEdit: replaceOnce("proxy_buffering off;", "proxy_buffering off;\n        proxy_buffer_size 64k;\n        proxy_buffers 4 64k;")}
	},
	"wss-buf64k-app64k": func() *variant {
		return &variant{name: "tunnel (wss), both buffers 64k", sub: "wssbufboth", wss: true,
			tunnelEdit: replaceOnce("proxy_buffering off;", "proxy_buffering off;\n        proxy_buffer_size 64k;\n        proxy_buffers 4 64k;"),
			appEdit:    replaceOnce("proxy_buffering off;", "proxy_buffering off;\n        proxy_buffer_size 64k;\n        proxy_buffers 4 64k;")}
	},
	"ws-all": func() *variant {
		return &variant{name: "tunnel (ws), client WS 64k + app 64k", sub: "wsall",
			beforeDial: func() { os.Setenv("CHISEL_WS_BUFF_SIZE", "65536") }, afterDial: func() { os.Unsetenv("CHISEL_WS_BUFF_SIZE") },
			appEdit: replaceOnce("proxy_buffering off;", "proxy_buffering off;\n        proxy_buffer_size 64k;\n        proxy_buffers 4 64k;")}
	},
	"wss-all": func() *variant {
		return &variant{name: "tunnel (wss), client WS 64k + both 64k", sub: "wssall", wss: true,
			beforeDial: func() { os.Setenv("CHISEL_WS_BUFF_SIZE", "65536") }, afterDial: func() { os.Unsetenv("CHISEL_WS_BUFF_SIZE") },
			tunnelEdit: replaceOnce("proxy_buffering off;", "proxy_buffering off;\n        proxy_buffer_size 64k;\n        proxy_buffers 4 64k;"),
			appEdit:    replaceOnce("proxy_buffering off;", "proxy_buffering off;\n        proxy_buffer_size 64k;\n        proxy_buffers 4 64k;")}
	},
	"no-keepalive": func() *variant {
		return &variant{name: "tunnel (ws), no upstream keepalive", sub: "noka",
			appEdit: replaceOnce("    keepalive 32;\n", "")}
	},
}

func selectedVariants(b *testing.B) []*variant {
	var vs []*variant
	for _, name := range strings.Split(*flagAB, ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		mk, ok := experiments[name]
		if !ok {
			b.Fatalf("unknown experiment %q", name)
		}
		vs = append(vs, mk())
	}
	return vs
}

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
	reqs    int64
	cpuGo   time.Duration // CPU of this process (tunnel server + client, app, auth)
	cpuNg   time.Duration // CPU of nginx (master + workers)
}

// cpuPerReq formats CPU time per request in µs.
func cpuPerReq(d time.Duration, n int64) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", float64(d.Microseconds())/float64(n))
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
func measure(b *testing.B, r *relay, wrkBin string, paths []*path) {
	b.Helper()
	for round := range *flagRounds {
		for _, p := range paths {
			stop := startProfile(b, p.profile, round)
			g0, n0 := cpuSelf(), cpuNginx(r.inst.Pid())
			res := runWrk(b, wrkBin, clients, *flagDuration, p.url, p.headers...)
			p.cpuGo += cpuSelf() - g0
			p.cpuNg += cpuNginx(r.inst.Pid()) - n0
			p.reqs += res.Requests
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
	// The tunnel server and client run here with the GC settings
	// `portlama tunnel-server` and `portlama-agent run` use.
	defer debug.SetGCPercent(debug.SetGCPercent(tunnel.GCPercent))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(tunnel.MemoryLimit))
	r := startRelay(b, selectedVariants(b)...)
	host := func(sub string) string { return "Host: " + fqdn(sub) }
	base := "https://127.0.0.1:" + strconv.Itoa(r.addrs.HTTPSPort) + "/"
	direct := &path{name: "nginx → app", url: base, headers: []string{host(subDirect)}}
	tun := &path{name: "nginx → tunnel (ws) → app", url: base, headers: []string{host(subTunnel)}, profile: "rps-tunnel-ws"}
	wss := &path{name: "nginx → tunnel (wss via nginx) → app", url: base, headers: []string{host(subWSS)}, profile: "rps-tunnel-wss"}
	appOnly := &path{name: "app alone (no nginx)", url: "http://127.0.0.1:" + strconv.Itoa(r.appPort) + "/"}
	tunOnly := &path{name: "tunnel (ws) → app, no nginx", url: "http://127.0.0.1:" + strconv.Itoa(r.relayPort) + "/", profile: "rps-tunnel-only"}
	paths := []*path{direct, tun, wss, appOnly, tunOnly}
	subs := []string{subDirect, subTunnel, subWSS}
	names := map[string]string{subDirect: direct.name, subTunnel: tun.name, subWSS: wss.name}
	for _, v := range r.variants {
		paths = append(paths, &path{name: v.name, url: base, headers: []string{host(v.sub)}, profile: "rps-" + v.sub})
		subs = append(subs, v.sub)
		names[v.sub] = v.name
	}
	load0 := loadavg()
	b.ResetTimer()
	measure(b, r, wrkBin, paths)

	// Downloads, interleaved, median of three.
	dl := map[string][]float64{}
	dlGo, dlNg := map[string]time.Duration{}, map[string]time.Duration{}
	for round := range 3 {
		for _, sub := range subs {
			stop := func() {}
			if sub != subDirect {
				stop = startProfile(b, "download-"+sub, round)
			}
			g0, n0 := cpuSelf(), cpuNginx(r.inst.Pid())
			dl[sub] = append(dl[sub], r.download(b, curlBin, sub, downloadSize))
			dlGo[sub] += cpuSelf() - g0
			dlNg[sub] += cpuNginx(r.inst.Pid()) - n0
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
	fmt.Fprintf(w, "%-40s %10s %9s %9s %8s %8s %8s   %s\n", "path", "req/s", "p50", "p99", "ratio", "Go µs/r", "ngx µs/r", "rounds")
	for _, p := range paths {
		ratio := "-"
		if p != direct && p != appOnly && p != tunOnly {
			ratio = fmt.Sprintf("%.2f×", p.meanRPS()/direct.meanRPS())
		}
		if p == tunOnly {
			ratio = fmt.Sprintf("%.2f×", p.meanRPS()/appOnly.meanRPS())
		}
		fmt.Fprintf(w, "%-40s %10.0f %9s %9s %8s %8s %8s   %s\n", p.name, p.meanRPS(),
			medianDur(p.p50).Round(time.Microsecond), medianDur(p.p99).Round(time.Microsecond), ratio,
			cpuPerReq(p.cpuGo, p.reqs), cpuPerReq(p.cpuNg, p.reqs), fmtRPS(p))
	}
	fmt.Fprintf(w, "%-40s %10s %8s %12s %12s   %s\n", "100 MiB download", "MiB/s", "ratio", "Go ms/dl", "ngx ms/dl", "runs")
	for _, sub := range subs {
		ratio := "-"
		if sub != subDirect {
			ratio = fmt.Sprintf("%.2f×", median(dl[sub])/dDirect)
		}
		runs := make([]string, 0, 3)
		for _, v := range dl[sub] {
			runs = append(runs, strconv.FormatFloat(v, 'f', 0, 64))
		}
		fmt.Fprintf(w, "%-40s %10.0f %8s %12d %12d   %s\n", names[sub], median(dl[sub]), ratio,
			dlGo[sub].Milliseconds()/3, dlNg[sub].Milliseconds()/3, strings.Join(runs, ", "))
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
	authz := &path{name: "auth-request endpoint (valid session)", url: "http://" + r.authAddr + "/api/authz/auth-request", profile: "auth-endpoint",
		headers: []string{cookie, "X-Original-URL: " + r.url(subSecure, "/"), "X-Original-Method: GET", "X-Forwarded-For: 127.0.0.1"}}
	public := &path{name: "nginx → tunnel → app, public", url: base, headers: []string{"Host: " + fqdn(subTunnel), cookie}}
	protected := &path{name: "nginx + auth → tunnel → app, protected", url: base, headers: []string{"Host: " + fqdn(subSecure), cookie}}
	load0 := loadavg()
	b.ResetTimer()
	measure(b, r, wrkBin, []*path{authz, public, protected})
	b.StopTimer()
	load1 := loadavg()

	w := os.Stdout
	fmt.Fprintf(w, "\n== Auth benchmark: %d keep-alive clients, %d × %s per path (interleaved), GOMAXPROCS=%d\n",
		clients, *flagRounds, *flagDuration, runtime.GOMAXPROCS(0))
	fmt.Fprintf(w, "   loadavg before %s, after %s\n", load0, load1)
	fmt.Fprintf(w, "%-40s %10s %9s %9s %8s %8s %8s   %s\n", "path", "req/s", "p50", "p99", "ratio", "Go µs/r", "ngx µs/r", "rounds")
	for _, p := range []*path{authz, public, protected} {
		ratio := "-"
		if p == protected {
			ratio = fmt.Sprintf("%.2f×", protected.meanRPS()/public.meanRPS())
		}
		fmt.Fprintf(w, "%-40s %10.0f %9s %9s %8s %8s %8s   %s\n", p.name, p.meanRPS(),
			medianDur(p.p50).Round(time.Microsecond), medianDur(p.p99).Round(time.Microsecond), ratio,
			cpuPerReq(p.cpuGo, p.reqs), cpuPerReq(p.cpuNg, p.reqs), fmtRPS(p))
	}
	fmt.Fprintln(w)
	b.ReportMetric(float64(medianDur(authz.p50).Microseconds()), "authz-p50-µs")
	b.ReportMetric(float64(medianDur(authz.p99).Microseconds()), "authz-p99-µs")
	b.ReportMetric(public.meanRPS(), "public-req/s")
	b.ReportMetric(protected.meanRPS(), "protected-req/s")
	b.ReportMetric(protected.meanRPS()/public.meanRPS(), "protected/public")
}
