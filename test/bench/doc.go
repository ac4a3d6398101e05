// Package bench holds the relay's end-to-end benchmarks (design §8, tier 4):
// real nginx, the tunnel server and agents (child processes: this test
// binary re-executed in a role, see roles_test.go, with the code and GC
// settings of `portlama tunnel-server` and `portlama-agent run`), the auth
// server and the sample app on loopback, loaded by wrk and curl as separate
// processes. Figures are printed as ratios measured in the same run, never
// asserted as timings.
//
// Run (the Makefile's `make bench`):
//
//	go test -run '^$' -bench . -benchtime 1x ./test/bench/
//
// Flags after -args: -duration (per wrk measurement), -rounds (interleaved
// repetitions), -settle (wait before the last memory reading),
// -profile-dir (CPU profiles of the tunnel server and agents during the
// tunnel measurements and their heaps after the load, for go tool pprof),
// -dl-rounds (interleaved downloads per path, default 3), -gogc and -procs
// (GOGC and GOMAXPROCS of the tunnel processes), -ab
// (extra rows measured in the same run, e.g. -ab chisel,gcm,wss-buf128k;
// "chisel" runs stock chisel 1.12 server and client as the baseline;
// "base" runs its own tunnel server and agent from -base, a bench test
// binary of other code, for before and after in one run:
//
//	git worktree add /tmp/before <commit> && (cd /tmp/before && go test -c -o /tmp/before.test ./test/bench/)
//	go test -run '^$' -bench Relay -benchtime 1x ./test/bench/ -args -ab base -base /tmp/before.test
//
// see experiments). Besides req/s and MiB/s the tables give the CPU time per
// request or per download of the tunnel server, the agents, nginx and this
// process (sample app, auth server), which is far less sensitive to other
// load on the machine than the rates are, and the tunnel processes' memory.
//
// BenchmarkScale runs 1,000 tunnels over 10 agent sessions without nginx:
// bind time, memory of the server and the agents, and the time until all
// 1,000 relay ports answer again after the tunnel server is killed.
//
// BenchmarkIdleRSS runs the real `portlama panel`, `tunnel-server` and
// `auth-server` processes of an onboarded relay and prints their resident
// memory idle, after start-up and after a burst of lists: RSS, its
// anonymous and file-backed parts, and PSS (-idle-maps: the largest
// mappings). BenchmarkTunnelList measures GET /api/tunnels with 1,000
// tunnels through nginx and the panel's parts of it, in seconds
// (BenchmarkAPIScale, make bench-scale, creates them through the API).
//
// wrk and curl are separate processes. *.localhost names do not resolve
// here, so wrk connects to https://127.0.0.1:<port> with a Host header (a
// harness vhost accepts SNI "127.0.0.1"), curl uses --resolve, and the
// production-path agent dials https://localhost:<port> (the tunnel vhost
// gets "localhost" as an extra server name).
package bench
