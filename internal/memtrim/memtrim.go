// Package memtrim keeps a daemon's memory near what it uses: Run hands
// the spare heap back to the operating system once the daemon has gone
// quiet, Limit keeps the soft memory limit proportional to its live data
// (limit.go).
//
// Go keeps the heap a burst grew to (a provisioning run, a list of 1,000
// tunnels, a transfer) and returns it only slowly, so an idle daemon can
// hold several MiB it does not use. On a 512 MB relay the panel, the
// tunnel server and the auth server idle most of the time: each runs
// Run, which watches the runtime's own counters (no hooks in the request
// paths) and calls debug.FreeOSMemory once the process has allocated
// next to nothing for Idle after a burst (start-up counts as one), if at
// least MinFree of its heap is not live. One trim per burst: an idle
// process is not collected again and again.
package memtrim

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Defaults of Options.
const (
	// Check is how often the counters are read.
	Check = time.Second
	// Idle is how long the process must have been quiet.
	Idle = 3 * time.Second
	// Quiet is the allocation rate, in bytes per Check, below which the
	// process counts as quiet: timers, the fallback polls of state
	// files and health checks allocate a few KiB now and then.
	Quiet = 64 << 10
	// MinFree is the spare heap (Sample.Spare) worth a trim.
	MinFree = 1 << 20
)

// Options tune Run; zero fields take the defaults above.
type Options struct {
	Check, Idle time.Duration
	Quiet       uint64
	MinFree     uint64
}

// Sample is what Run reads on each check.
type Sample struct {
	Allocated uint64 // bytes allocated since the process started
	// Spare is the heap the process holds beyond its live data: garbage
	// not yet collected, free spans not yet returned to the OS.
	Spare uint64
}

// Run trims until ctx ends.
func Run(ctx context.Context, o Options) {
	o = o.withDefaults()
	tick := time.NewTicker(o.Check)
	defer tick.Stop()
	tr := newTrimmer(o, time.Now(), readRuntime())
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if tr.observe(now, readRuntime()) {
				debug.FreeOSMemory()
				tr.last = readRuntime().Allocated
			}
		}
	}
}

// trimmer decides, check by check, when a quiet process should trim.
type trimmer struct {
	o          Options
	last       uint64 // Allocated at the previous check
	pending    bool   // a burst happened since the last trim
	quietSince time.Time
}

// newTrimmer starts with a pending burst: start-up was one.
func newTrimmer(o Options, now time.Time, s Sample) *trimmer {
	return &trimmer{o: o, last: s.Allocated, pending: true, quietSince: now}
}

// observe records one check's sample and reports whether to trim now.
func (t *trimmer) observe(now time.Time, s Sample) bool {
	allocated := s.Allocated - t.last
	t.last = s.Allocated
	if allocated >= t.o.Quiet {
		t.pending, t.quietSince = true, now
		return false
	}
	if !t.pending || now.Sub(t.quietSince) < t.o.Idle {
		return false
	}
	t.pending = false
	return s.Spare >= t.o.MinFree
}

func (o Options) withDefaults() Options {
	if o.Check <= 0 {
		o.Check = Check
	}
	if o.Idle <= 0 {
		o.Idle = Idle
	}
	if o.Quiet == 0 {
		o.Quiet = Quiet
	}
	if o.MinFree == 0 {
		o.MinFree = MinFree
	}
	return o
}

var runtimeMetrics = []string{
	"/gc/heap/allocs:bytes",
	"/memory/classes/heap/objects:bytes", // live and dead objects
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/free:bytes", // free, not yet returned
	"/gc/heap/live:bytes",             // live at the last collection
}

// readRuntime reads the counters from runtime/metrics.
func readRuntime() Sample {
	v := read(runtimeMetrics)
	out := Sample{Allocated: v[0]}
	if held := v[1] + v[2] + v[3]; held > v[4] {
		out.Spare = held - v[4]
	}
	return out
}

// read reads the named runtime/metrics counters (0 for one the runtime
// does not have).
func read(names []string) []uint64 {
	s := make([]metrics.Sample, len(names))
	for i, name := range names {
		s[i].Name = name
	}
	metrics.Read(s)
	v := make([]uint64, len(s))
	for i := range s {
		if s[i].Value.Kind() == metrics.KindUint64 {
			v[i] = s[i].Value.Uint64()
		}
	}
	return v
}
