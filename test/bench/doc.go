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
// repetitions), -profile-dir (CPU profiles of the tunnel phases).
package bench
