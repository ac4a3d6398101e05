package tunnel

import (
	"os"
	"runtime"
)

// Procs is the GOMAXPROCS of the tunnel processes (the tunnel server and
// the agent) unless GOMAXPROCS is set. Their work is a chain of goroutine
// hand-offs per packet (socket reader → SSH mux → channel reader → socket
// writer); with more than one P every hand-off can wake another thread,
// and on the relay's few shared cores those wake-ups and the idle threads
// spinning for work cost more than the parallelism gains: with one P the
// tunnel server and the agent spend about a tenth less CPU per request and
// per downloaded byte (test/bench, docs/architecture.md "Performance").
// One core still carries several hundred MiB/s of tunnel traffic, more
// than a VPS's network link.
const Procs = 1

// tuneProcs applies Procs unless the operator set GOMAXPROCS.
func tuneProcs() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(Procs)
	}
}
