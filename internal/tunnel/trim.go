package tunnel

import (
	"context"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// Idle trimming: after a burst of traffic Go keeps the heap it grew to
// (with GCPercent up to five times the live heap, tens of MiB for a few MiB
// of live data) until later collections return it, slowly. On a 512 MB
// relay that is memory held for nothing, so once no data has moved for
// trimIdle after some did, the process hands it back at once. (Idle means
// no traffic, not no connections: nginx keeps idle keep-alive connections
// to the relay ports open.)
const (
	trimCheck = time.Second
	trimIdle  = 3 * time.Second
)

// trimmer counts the writes of data through the tunnel.
type trimmer struct {
	moved atomic.Uint64
	free  func() // debug.FreeOSMemory; tests replace it
}

func newTrimmer() *trimmer { return &trimmer{free: debug.FreeOSMemory} }

// touch records that data moved.
func (t *trimmer) touch() {
	if t != nil {
		t.moved.Add(1)
	}
}

// run checks every check and frees memory once traffic has stopped for
// idle after some happened; it returns when ctx ends.
func (t *trimmer) run(ctx context.Context, check, idle time.Duration) {
	tick := time.NewTicker(check)
	defer tick.Stop()
	seen := t.moved.Load()
	busy := false
	var quietSince time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			n := t.moved.Load()
			switch {
			case n != seen:
				seen, busy, quietSince = n, true, now
			case busy && now.Sub(quietSince) >= idle:
				t.free()
				busy = false
			}
		}
	}
}
