package tunnel

import (
	"os"
	"runtime/debug"
)

// GCPercent is the garbage-collection target of the tunnel processes (the
// tunnel server and the agent) unless GOGC is set. x/crypto/ssh allocates
// every received packet (32 KiB for bulk data), so a transfer makes
// garbage at its own rate; a higher target trades a little memory for less
// collector CPU. MemoryLimit caps the heap so the trade never costs a 512
// MB relay more than that, and the idle trim (trim.go) hands the extra
// memory back once a burst is over. (test/bench measures both.)
const (
	GCPercent   = 400
	MemoryLimit = 256 << 20
)

// TuneGC applies GCPercent and MemoryLimit unless the operator set GOGC or
// GOMEMLIMIT.
func TuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(GCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(MemoryLimit)
	}
}
