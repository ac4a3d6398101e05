package bench

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portlama/portlama/internal/auth"
	"github.com/portlama/portlama/internal/testutil"
)

var (
	flagDuration   = flag.Duration("duration", 5*time.Second, "length of one wrk measurement (whole seconds)")
	flagRounds     = flag.Int("rounds", 2, "interleaved repetitions of every measurement")
	flagProfileDir = flag.String("profile-dir", "", "write CPU profiles of the tunnel server and the agents during the tunnel measurements into this directory")
	flagAB         = flag.String("ab", "chisel", "comma-separated experiments measured as extra rows (see experiments); the default is the stock chisel baseline")
	flagGOGC       = flag.String("gogc", "", "GOGC for the tunnel server and agents (default: their own setting, tunnel.GCPercent)")
	flagSettle     = flag.Duration("settle", 10*time.Second, "wait before the last memory reading")
	flagProcs      = flag.String("procs", "", "GOMAXPROCS for the tunnel server and agents (default: theirs)")
	flagDLRounds   = flag.Int("dl-rounds", 3, "interleaved 100 MiB downloads per path (the median counts)")
	flagBase       = flag.String("base", "", "experiment \"base\": a bench test binary of other code (go test -c) whose tunnel server and agent run the row, e.g. the code before a change")
)

// childEnv is the environment the role processes get on top of ours.
func childEnv() []string {
	var env []string
	if *flagGOGC != "" {
		env = append(env, "GOGC="+*flagGOGC)
	}
	if *flagProcs != "" {
		env = append(env, "GOMAXPROCS="+*flagProcs)
	}
	return env
}

// tunnelBuffers is the tunnel vhost's buffer setting, as rendered
// (buffers("16k") is the app vhosts').
const tunnelBuffers = "proxy_buffer_size 64k;\n        proxy_buffers 4 64k;"

func buffers(n string) string {
	return "proxy_buffer_size " + n + ";\n        proxy_buffers 4 " + n + ";"
}

// experiments are A/B variants for tuning, measured next to the standard
// paths in the same run (-ab name,...).
var experiments = map[string]func() *variant{
	"chisel": func() *variant {
		return &variant{name: "stock chisel 1.12 (wss via nginx)", sub: "chisel", wss: true, chisel: true}
	},
	"gcm": func() *variant {
		return &variant{name: "tunnel (wss), SSH AES-128-GCM", sub: "wssgcm", wss: true, ciphers: []string{ssh.CipherAES128GCM}}
	},
	"ws-gcm": func() *variant {
		return &variant{name: "tunnel (ws), SSH AES-128-GCM", sub: "wsgcm", ciphers: []string{ssh.CipherAES128GCM}}
	},
	"wss-buf16k": func() *variant {
		return &variant{name: "tunnel (wss), tunnel vhost buffer 16k", sub: "wssbuf16", wss: true,
			tunnelEdit: replaceOnce(tunnelBuffers, buffers("16k"))}
	},
	"wss-buf128k": func() *variant {
		return &variant{name: "tunnel (wss), tunnel vhost buffer 128k", sub: "wssbuf128", wss: true,
			tunnelEdit: replaceOnce(tunnelBuffers, buffers("128k"))}
	},
	"app-buf64k": func() *variant {
		return &variant{name: "tunnel (wss), app vhost buffer 64k", sub: "appbuf64", wss: true,
			appEdit: replaceOnce(buffers("16k"), buffers("64k"))}
	},
	"direct-buf64k": func() *variant {
		return &variant{name: "direct, app vhost buffer 64k", sub: "directbuf64", direct: true,
			appEdit: replaceOnce(buffers("16k"), buffers("64k"))}
	},
	"tls-aes128": func() *variant {
		return &variant{name: "tunnel (wss), tunnel vhost AES-128-GCM first", sub: "wsstls128", wss: true,
			tunnelEdit: replaceOnce("    location / {", "    ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384;\n    location / {")}
	},
	"agent-procs2": func() *variant {
		return &variant{name: "tunnel (wss), agent GOMAXPROCS=2", sub: "wssprocs2", wss: true, env: []string{"GOMAXPROCS=2"}}
	},
	"base": func() *variant {
		return &variant{name: "tunnel (wss), server and agent of -base", sub: "base", wss: true, exe: *flagBase}
	},
	"no-keepalive": func() *variant {
		return &variant{name: "tunnel (wss), no upstream keepalive", sub: "noka", wss: true,
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
		if name == "base" && *flagBase == "" {
			b.Fatal("-ab base needs -base <a bench test binary of the other code, from go test -c>")
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
	agent   *child // the agent of this path, profiled with the server
	server  *child // the tunnel server of this path when not the relay's (-base)
	profile string // profile file prefix, "" for none
	rps     []float64
	p50     []time.Duration
	p99     []time.Duration
	reqs    int64
	cpu     cpuSample // CPU spent during this path's runs
}

// cpuSample is the CPU of the parts of the relay.
type cpuSample struct {
	server, agents, nginx, self time.Duration
}

func (r *relay) cpuNow() cpuSample {
	var s cpuSample
	for _, c := range r.servers {
		s.server += procCPU(c.pid(), false)
	}
	for _, a := range r.agents {
		s.agents += procCPU(a.pid(), false)
	}
	s.nginx = procCPU(r.inst.Pid(), true)
	s.self = procCPU(os.Getpid(), false)
	return s
}

func (s cpuSample) sub(o cpuSample) cpuSample {
	return cpuSample{s.server - o.server, s.agents - o.agents, s.nginx - o.nginx, s.self - o.self}
}

func (s cpuSample) add(o cpuSample) cpuSample {
	return cpuSample{s.server + o.server, s.agents + o.agents, s.nginx + o.nginx, s.self + o.self}
}

// perUnit formats d per n units in µs (scale 1) or ms (scale 1000).
func perUnit(d time.Duration, n int64, scale float64) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", float64(d.Microseconds())/float64(n)/scale)
}

func (p *path) meanRPS() float64 {
	var s float64
	for _, v := range p.rps {
		s += v
	}
	return s / float64(len(p.rps))
}

// ratio is the median over rounds of p's rate divided by base's rate in
// the same round: paths are measured interleaved, so a load spike on the
// machine hits both sides of one ratio.
func rateRatio(p, base *path) float64 {
	var rs []float64
	for i := range min(len(p.rps), len(base.rps)) {
		rs = append(rs, p.rps[i]/base.rps[i])
	}
	return median(rs)
}

// dlRatio is the median of per-round download ratios.
func dlRatio(v, base []float64) float64 {
	var rs []float64
	for i := range min(len(v), len(base)) {
		rs = append(rs, v[i]/base[i])
	}
	return median(rs)
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
			wait := r.startProfiles(p.profile, p.server, p.agent, round)
			c0 := r.cpuNow()
			res := runWrk(b, wrkBin, clients, *flagDuration, p.url, p.headers...)
			p.cpu = p.cpu.add(r.cpuNow().sub(c0))
			p.reqs += res.Requests
			wait()
			if res.Non2xx > 0 || res.SockErrs != "" || res.Requests == 0 {
				b.Errorf("%s: %d requests, %d non-2xx answers, socket errors %q", p.name, res.Requests, res.Non2xx, res.SockErrs)
			}
			p.rps = append(p.rps, res.RPS)
			p.p50 = append(p.p50, res.P50)
			p.p99 = append(p.p99, res.P99)
		}
	}
}

// startProfiles takes CPU profiles of the tunnel server and the path's
// agent for one wrk run (-profile-dir).
func (r *relay) startProfiles(prefix string, srv, a *child, round int) func() {
	if *flagProfileDir == "" || prefix == "" {
		return func() {}
	}
	if srv == nil {
		srv = r.server
	}
	d := *flagDuration - 500*time.Millisecond
	ws := []func(){srv.profile(d, filepath.Join(*flagProfileDir, fmt.Sprintf("%s-server-%d.pprof", prefix, round)))}
	if a != nil {
		ws = append(ws, a.profile(d, filepath.Join(*flagProfileDir, fmt.Sprintf("%s-agent-%d.pprof", prefix, round))))
	}
	return func() {
		for _, w := range ws {
			w()
		}
	}
}

func fmtRPS(p *path) string {
	parts := make([]string, len(p.rps))
	for i, v := range p.rps {
		parts[i] = strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strings.Join(parts, ", ")
}

// memory is the resident memory of the tunnel processes, MiB.
type memory struct {
	server, agentWSS, agents float64
	chisel                   []float64 // stock chisel servers of the variants
}

func (r *relay) memory() memory {
	m := memory{server: procRSS(r.server.pid()), agentWSS: procRSS(r.agentWSS.pid())}
	for _, a := range r.agents {
		m.agents += procRSS(a.pid())
	}
	for _, v := range r.variants {
		if v.chiselSrv != nil {
			m.chisel = append(m.chisel, procRSS(v.chiselSrv.pid()))
		}
	}
	return m
}

// BenchmarkRelay compares nginx → tunnel → app with nginx → app: requests
// per second with 32 keep-alive clients (wrk) and MiB/s of a 100 MiB
// download (curl). The production path is "wss": TLS at nginx, the agent
// connected through nginx's tunnel vhost with its client certificate, the
// public app vhost → relay port → tunnel → agent → app. "ws" is the same
// with the agent connected straight to the tunnel server, which shows what
// the second pass through nginx costs. It also reports the tunnel server's
// and the agent's memory before and after the load.
func BenchmarkRelay(b *testing.B) {
	wrkBin := testutil.NeedBinary(b, "wrk")
	curlBin := testutil.NeedBinary(b, "curl")
	r := startRelay(b, selectedVariants(b)...)
	idle := r.memory()
	host := func(sub string) string { return "Host: " + fqdn(sub) }
	base := "https://127.0.0.1:" + strconv.Itoa(r.addrs.HTTPSPort) + "/"
	direct := &path{name: "nginx → app", url: base, headers: []string{host(subDirect)}}
	wss := &path{name: "nginx → tunnel (wss via nginx) → app", url: base, headers: []string{host(subWSS)}, agent: r.agentWSS, profile: "rps-wss"}
	tun := &path{name: "nginx → tunnel (ws) → app", url: base, headers: []string{host(subTunnel)}, agent: r.agentWS, profile: "rps-ws"}
	appOnly := &path{name: "app alone (no nginx)", url: "http://127.0.0.1:" + strconv.Itoa(r.appPort) + "/"}
	tunOnly := &path{name: "tunnel (ws) → app, no nginx", url: "http://127.0.0.1:" + strconv.Itoa(r.relayPort) + "/", agent: r.agentWS, profile: "rps-tunnel-only"}
	paths := []*path{direct, wss, tun, appOnly, tunOnly}
	subs := []string{subDirect, subWSS, subTunnel}
	names := map[string]string{subDirect: direct.name, subTunnel: tun.name, subWSS: wss.name}
	agents := map[string]*child{subWSS: r.agentWSS, subTunnel: r.agentWS}
	servers := map[string]*child{} // nil: the relay's
	for _, v := range r.variants {
		paths = append(paths, &path{name: v.name, url: base, headers: []string{host(v.sub)}, agent: v.agent, server: v.server, profile: "rps-" + v.sub})
		subs = append(subs, v.sub)
		names[v.sub] = v.name
		agents[v.sub] = v.agent
		servers[v.sub] = v.server
	}
	load0 := loadavg()
	b.ResetTimer()
	measure(b, r, wrkBin, paths)

	// Downloads, interleaved, the median counts.
	dl := map[string][]float64{}
	dlCPU := map[string]cpuSample{}
	for round := range *flagDLRounds {
		for _, sub := range subs {
			wait := func() {}
			if sub != subDirect {
				wait = r.startProfiles("download-"+sub, servers[sub], agents[sub], round)
			}
			c0 := r.cpuNow()
			dl[sub] = append(dl[sub], r.download(b, curlBin, sub, downloadSize))
			dlCPU[sub] = dlCPU[sub].add(r.cpuNow().sub(c0))
			wait()
		}
	}
	b.StopTimer()
	after := r.memory()
	if *flagProfileDir != "" {
		r.server.heap(filepath.Join(*flagProfileDir, "heap-server-after.pprof"))
		r.agentWSS.heap(filepath.Join(*flagProfileDir, "heap-agent-after.pprof"))
	}
	load1 := loadavg()
	time.Sleep(*flagSettle) // memory the runtime returns to the OS after a while
	settled := r.memory()
	if *flagProfileDir != "" {
		r.server.heap(filepath.Join(*flagProfileDir, "heap-server-settled.pprof"))
	}

	dDirect, dWSS := median(dl[subDirect]), median(dl[subWSS])
	w := os.Stdout
	fmt.Fprintf(w, "\n== Relay benchmark: %d keep-alive clients, %d × %s per path (interleaved), %d CPUs, GOGC of the tunnel processes %s\n",
		clients, *flagRounds, *flagDuration, runtime.NumCPU(), orDefault(*flagGOGC, strconv.Itoa(tunnelGC())))
	fmt.Fprintf(w, "   loadavg before %s, after %s; CPU per request: srv = tunnel server, agent = agents, ngx = nginx, app = sample app + auth server\n", load0, load1)
	fmt.Fprintf(w, "   ratio = median over rounds of (path / direct in the same round)\n")
	fmt.Fprintf(w, "%-40s %10s %9s %9s %7s %7s %7s %7s %7s   %s\n", "path", "req/s", "p50", "p99", "ratio", "srv µs", "agent", "ngx", "app", "rounds")
	for _, p := range paths {
		ratio := "-"
		switch p {
		case tunOnly:
			ratio = fmt.Sprintf("%.2f×", rateRatio(p, appOnly))
		case direct, appOnly:
		default:
			ratio = fmt.Sprintf("%.2f×", rateRatio(p, direct))
		}
		fmt.Fprintf(w, "%-40s %10.0f %9s %9s %7s %7s %7s %7s %7s   %s\n", p.name, p.meanRPS(),
			medianDur(p.p50).Round(time.Microsecond), medianDur(p.p99).Round(time.Microsecond), ratio,
			perUnit(p.cpu.server, p.reqs, 1), perUnit(p.cpu.agents, p.reqs, 1), perUnit(p.cpu.nginx, p.reqs, 1), perUnit(p.cpu.self, p.reqs, 1), fmtRPS(p))
	}
	fmt.Fprintf(w, "%-40s %10s %8s %8s %8s %8s %8s   %s\n", "100 MiB download", "MiB/s", "ratio", "srv ms", "agent ms", "ngx ms", "app ms", "runs")
	for _, sub := range subs {
		ratio := "-"
		if sub != subDirect {
			ratio = fmt.Sprintf("%.2f×", dlRatio(dl[sub], dl[subDirect]))
		}
		runs := make([]string, 0, *flagDLRounds)
		for _, v := range dl[sub] {
			runs = append(runs, strconv.FormatFloat(v, 'f', 0, 64))
		}
		c, n := dlCPU[sub], int64(*flagDLRounds)
		fmt.Fprintf(w, "%-40s %10.0f %8s %8s %8s %8s %8s   %s\n", names[sub], median(dl[sub]), ratio,
			perUnit(c.server, n, 1000), perUnit(c.agents, n, 1000), perUnit(c.nginx, n, 1000), perUnit(c.self, n, 1000), strings.Join(runs, ", "))
	}
	fmt.Fprintf(w, "%-40s %10s %10s %10s   %s\n", "memory (RSS, MiB)", "idle", "after load", "+"+settleLabel(), "after/idle")
	fmt.Fprintf(w, "%-40s %10.1f %10.1f %10.1f   %.2f×\n", "tunnel server", idle.server, after.server, settled.server, after.server/idle.server)
	fmt.Fprintf(w, "%-40s %10.1f %10.1f %10.1f   %.2f×\n", "agent (wss)", idle.agentWSS, after.agentWSS, settled.agentWSS, after.agentWSS/idle.agentWSS)
	fmt.Fprintf(w, "%-40s %10.1f %10.1f %10.1f   %.2f×\n", fmt.Sprintf("all %d agents", len(r.agents)), idle.agents, after.agents, settled.agents, after.agents/idle.agents)
	for i := range idle.chisel {
		fmt.Fprintf(w, "%-40s %10.1f %10.1f %10.1f   %.2f×\n", "stock chisel server", idle.chisel[i], after.chisel[i], settled.chisel[i], after.chisel[i]/idle.chisel[i])
	}
	fmt.Fprintln(w)

	b.ReportMetric(direct.meanRPS(), "direct-req/s")
	b.ReportMetric(wss.meanRPS(), "wss-req/s")
	b.ReportMetric(rateRatio(wss, direct), "wss/direct-req")
	b.ReportMetric(dDirect, "direct-MiB/s")
	b.ReportMetric(dWSS, "wss-MiB/s")
	b.ReportMetric(dlRatio(dl[subWSS], dl[subDirect]), "wss/direct-dl")
	b.ReportMetric(dlRatio(dl[subTunnel], dl[subDirect]), "ws/direct-dl")
	b.ReportMetric(after.server/idle.server, "server-rss-after/idle")
}

func settleLabel() string { return (*flagSettle).String() }

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
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
	measure(b, r, wrkBin, []*path{authz, public, protected})
	b.StopTimer()
	load1 := loadavg()

	w := os.Stdout
	fmt.Fprintf(w, "\n== Auth benchmark: %d keep-alive clients, %d × %s per path (interleaved), GOMAXPROCS=%d\n",
		clients, *flagRounds, *flagDuration, runtime.GOMAXPROCS(0))
	fmt.Fprintf(w, "   loadavg before %s, after %s\n", load0, load1)
	fmt.Fprintf(w, "%-40s %10s %9s %9s %8s %8s   %s\n", "path", "req/s", "p50", "p99", "ratio", "app µs/r", "rounds")
	for _, p := range []*path{authz, public, protected} {
		ratio := "-"
		if p == protected {
			ratio = fmt.Sprintf("%.2f×", rateRatio(protected, public))
		}
		fmt.Fprintf(w, "%-40s %10.0f %9s %9s %8s %8s   %s\n", p.name, p.meanRPS(),
			medianDur(p.p50).Round(time.Microsecond), medianDur(p.p99).Round(time.Microsecond), ratio,
			perUnit(p.cpu.self, p.reqs, 1), fmtRPS(p))
	}
	fmt.Fprintln(w)
	b.ReportMetric(float64(medianDur(authz.p50).Microseconds()), "authz-p50-µs")
	b.ReportMetric(float64(medianDur(authz.p99).Microseconds()), "authz-p99-µs")
	b.ReportMetric(public.meanRPS(), "public-req/s")
	b.ReportMetric(protected.meanRPS(), "protected-req/s")
	b.ReportMetric(rateRatio(protected, public), "protected/public")
}
