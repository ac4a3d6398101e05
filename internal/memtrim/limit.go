package memtrim

import (
	"context"
	"runtime/debug"
	"time"
)

// Limit keeps the process's soft memory limit (debug.SetMemoryLimit) at
// what it needs plus percent of that, never below floor, re-reading the
// runtime's counters every Check until ctx ends. What it needs is its live
// heap (as of the last collection) and everything the runtime holds
// besides the heap (stacks, GC metadata). Garbage may then pile up to
// percent of that between collections, whatever a higher GOGC allows,
// which keeps the collector's work per allocated byte bounded as GOGC
// does: a fixed limit would either let a small process's heap grow to
// five times its live data under a burst, or make the collector run
// without pause once the live data of a big relay (1,000 bound ports,
// their goroutines' stacks) nears it.
func Limit(ctx context.Context, floor int64, percent int) {
	set := func() { debug.SetMemoryLimit(limitFor(needed(), floor, percent)) }
	set()
	tick := time.NewTicker(Check)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			set()
		}
	}
}

// limitFor is the limit for a process that needs needed bytes.
func limitFor(needed, floor int64, percent int) int64 {
	return max(floor, needed*int64(100+percent)/100)
}

var limitMetrics = []string{
	"/memory/classes/total:bytes",
	"/memory/classes/heap/released:bytes",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/free:bytes",
	"/gc/heap/live:bytes",
}

// needed is the memory the runtime counts against the limit, less the
// heap's garbage and free space: what the process cannot give back.
func needed() int64 {
	v := read(limitMetrics)
	total, released, objects, unused, free, live := int64(v[0]), int64(v[1]), int64(v[2]), int64(v[3]), int64(v[4]), int64(v[5])
	return max(0, total-released-objects-unused-free) + live
}
