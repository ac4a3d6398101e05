package demo

import (
	"fmt"
	"net"
	"strconv"
	"sync"
)

// portSpec asks for one port: v is the option (0 → def, -1 → a free
// port, else v itself), flag names it in advice.
type portSpec struct {
	v, def int
	flag   string
}

// handedOut are the free ports this process chose before: never chosen
// twice, so stacks started in parallel by one test binary cannot collide
// (the kernel may hand a port released by one stack to the next).
var (
	handedMu  sync.Mutex
	handedOut = map[int]bool{}
)

// allocPorts resolves the specs. Every listener is held until all ports
// are chosen, so one call never returns the same port twice, and a fixed
// port that is busy is refused with advice.
func allocPorts(specs []portSpec) ([]int, error) {
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
		switch sp.v {
		case -1:
			for {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					return nil, err
				}
				held = append(held, l)
				p := l.Addr().(*net.TCPAddr).Port
				if !handedOut[p] {
					handedOut[p] = true
					out[i] = p
					break
				}
			}
		default:
			p := sp.v
			if p == 0 {
				p = sp.def
			}
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				return nil, fmt.Errorf("port %d is in use on 127.0.0.1; stop what uses it or choose another with %s", p, sp.flag)
			}
			held = append(held, l)
			out[i] = p
		}
	}
	return out, nil
}
