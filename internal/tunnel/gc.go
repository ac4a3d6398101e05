package tunnel

import (
	"context"
	"os"
	"runtime/debug"

	"github.com/portlama/portlama/internal/memtrim"
)

// GCPercent is the garbage-collection target of the tunnel processes (the
// tunnel server and the agent) unless GOGC is set. x/crypto/ssh allocates
// every received packet (32 KiB for bulk data), so a transfer makes
// garbage at its own rate; a higher target trades a little memory for less
// collector CPU. The memory limits cap what that trade may cost, and the
// idle trim (memtrim.Run) hands the extra memory back once a burst is over.
// (test/bench measures both.)
//
// The tunnel server's limit is low on purpose: under load its live heap
// is a few MiB (sessions, bindings, packets in flight), and GCPercent
// alone let it grow to 5× that: 56–62 MiB RSS right after BenchmarkRelay's
// load for 17 MiB idle, 32 MiB with the limit, for the same req/s and
// download rate (docs/architecture.md, "Memory"; a 20 MiB floor gave 29
// MiB but cost bulk downloads a third more server CPU). The limit is no
// fixed number (1,000 bound ports and their goroutines' stacks alone take
// 15 MiB): memtrim.Limit keeps it at what the server needs plus
// ServerMemoryHeadroom per cent, ServerMemoryLimit at least. The agent
// runs beside other programs on the home machine and keeps the generous
// MemoryLimit.
const (
	GCPercent            = 400
	MemoryLimit          = 256 << 20
	ServerMemoryLimit    = 24 << 20
	ServerMemoryHeadroom = 50
)

// TuneAgent tunes a process that runs tunnel clients (portlama-agent run
// and ui) until ctx ends: GCPercent, MemoryLimit and Procs unless the
// operator set GOGC, GOMEMLIMIT or GOMAXPROCS, and the idle trim.
func TuneAgent(ctx context.Context) {
	tuneGC(MemoryLimit)
	tuneProcs()
	go memtrim.Run(ctx, memtrim.Options{})
}

// TuneServer is TuneAgent for the tunnel server, whose memory limit
// follows what it needs (see ServerMemoryLimit) unless GOMEMLIMIT is set.
func TuneServer(ctx context.Context) {
	tuneGC(ServerMemoryLimit)
	if os.Getenv("GOMEMLIMIT") == "" {
		go memtrim.Limit(ctx, ServerMemoryLimit, ServerMemoryHeadroom)
	}
	tuneProcs()
	go memtrim.Run(ctx, memtrim.Options{})
}

func tuneGC(limit int64) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(GCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(limit)
	}
}
