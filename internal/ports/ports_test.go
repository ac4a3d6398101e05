package ports

import (
	"net"
	"strconv"
	"testing"
)

// Free ports are distinct, bindable, below the kernel's ephemeral range,
// and never handed out twice in one process.
func TestFreeIsDistinctAndBelowTheEphemeralRange(t *testing.T) {
	seen := map[int]bool{}
	for range 20 {
		ps, err := Free(5)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if seen[p] {
				t.Fatalf("port %d handed out twice", p)
			}
			seen[p] = true
			if p < pickMin || p > pickMax {
				t.Errorf("port %d outside %d–%d", p, pickMin, pickMax)
			}
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				t.Fatalf("port %d is not free: %v", p, err)
			}
			l.Close()
		}
	}
}

// A fixed port that is taken is refused with the flag to change.
func TestAllocRefusesATakenFixedPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p := l.Addr().(*net.TCPAddr).Port
	if _, err := Alloc([]Spec{{V: p, Flag: "--https-port"}}); err == nil {
		t.Fatal("a taken port was accepted")
	}
}
