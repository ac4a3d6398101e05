// Package ports picks loopback TCP ports for the relays and servers the
// demo and the tests start, without races: every port of one request is
// chosen while the others are held, and no port is handed out twice in one
// process (the kernel may give a port one stack just released to the next,
// which made two stacks' nginx collide on one address).
package ports

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
)

// Spec asks for one port: V is the option (0 → Def, -1 → a free port,
// else V itself), Flag names it in the advice when it is taken.
type Spec struct {
	V, Def int
	Flag   string
}

// handedOut are the free ports this process chose before: never chosen
// twice, so stacks started in parallel by one test binary cannot collide
// (the kernel may hand a port released by one stack to the next).
var (
	handedMu  sync.Mutex
	handedOut = map[int]bool{}
)

// Alloc resolves the specs. Every listener is held until all ports are
// chosen, so one call never returns the same port twice, and a fixed port
// that is busy is refused with advice.
func Alloc(specs []Spec) ([]int, error) {
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	handedMu.Lock()
	defer handedMu.Unlock()
	out := make([]int, len(specs))
	for i, sp := range specs {
		switch sp.V {
		case -1:
			l, p, err := pickFree()
			if err != nil {
				return nil, err
			}
			held = append(held, l)
			handedOut[p] = true
			out[i] = p
		default:
			p := sp.V
			if p == 0 {
				p = sp.Def
			}
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				return nil, fmt.Errorf("port %d is in use on 127.0.0.1; stop what uses it or choose another with %s", p, sp.Flag)
			}
			held = append(held, l)
			out[i] = p
		}
	}
	return out, nil
}

// Free returns n free loopback ports (Alloc of n free ones).
func Free(n int) ([]int, error) {
	specs := make([]Spec, n)
	for i := range specs {
		specs[i].V = -1
	}
	return Alloc(specs)
}

// Free ports come from below the kernel's ephemeral range (32768–60999 by
// default): between its choice and its use (nginx binds it later) a port
// from that range can be taken by any outgoing connection or :0 listener
// on the machine, which made a test's nginx fail with "address already in
// use". Each process starts in its own block of the range, so concurrent
// test binaries rarely pick the same ports either.
const (
	pickMin    = 30000
	pickMax    = 32767
	pickBlocks = 12
)

// pickFree returns a held listener on a free port of the pick range (the
// process's block first, then the whole range), or on a kernel-chosen
// port when the range is used up. handedMu is held.
func pickFree() (net.Listener, int, error) {
	size := (pickMax - pickMin + 1) / pickBlocks
	base := pickMin + (os.Getpid()%pickBlocks)*size
	for try := 0; try < 4*(pickMax-pickMin+1); try++ {
		if try == 2*size {
			base, size = pickMin, pickMax-pickMin+1
		}
		p := base + rand.IntN(size)
		if handedOut[p] {
			continue
		}
		if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p))); err == nil {
			return l, p, nil
		}
	}
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, 0, err
		}
		if p := l.Addr().(*net.TCPAddr).Port; !handedOut[p] {
			return l, p, nil
		}
		l.Close()
	}
}
