// Package bench holds the relay's end-to-end benchmarks (design §8, tier 4):
// real nginx, the tunnel server and client, the auth server and the sample
// app on loopback, loaded by wrk and curl as separate processes. Figures are
// printed as ratios measured in the same run, never asserted as timings.
//
// Run (the Makefile's `make bench`):
//
//	go test -run '^$' -bench . -benchtime 1x ./test/bench/
//
// Flags after -args: -duration (per wrk measurement), -rounds (interleaved
// repetitions), -profile-dir (CPU profiles of the tunnel phases, for
// go tool pprof), -ab (tuning experiments measured as extra rows in the same
// run, e.g. -ab app-buf64k,wss-buf64k-app64k,no-keepalive; see experiments).
// Besides req/s and MiB/s the tables give the CPU time per request or per
// download of this process (tunnel server + client, sample app, auth server)
// and of nginx, which is far less sensitive to other load on the machine
// than the rates are.
//
// wrk and curl are separate processes. *.localhost names do not resolve
// here, so wrk connects to https://127.0.0.1:<port> with a Host header (a
// harness vhost accepts SNI "127.0.0.1"), curl uses --resolve, and the
// production-path tunnel client dials https://localhost:<port> (the tunnel
// vhost gets "localhost" as an extra server name).
package bench
