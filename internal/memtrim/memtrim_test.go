package memtrim

import (
	"context"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// checks drives a trimmer the way Run does, one check per step of the
// test's own clock.
type checks struct {
	t   *testing.T
	tr  *trimmer
	now time.Time
	s   Sample
}

var testOptions = Options{Check: time.Millisecond, Idle: 20 * time.Millisecond, Quiet: 100, MinFree: 1000}

func newChecks(t *testing.T, spare uint64) *checks {
	c := &checks{t: t, now: time.Unix(0, 0), s: Sample{Spare: spare}}
	c.tr = newTrimmer(testOptions, c.now, c.s)
	return c
}

// run makes n checks, each after allocating alloc bytes (all garbage), and
// returns how many of them trimmed; a trim returns the spare heap.
func (c *checks) run(n int, alloc uint64) int {
	trims := 0
	for range n {
		c.now = c.now.Add(testOptions.Check)
		c.s.Allocated += alloc
		c.s.Spare += alloc
		if c.tr.observe(c.now, c.s) {
			trims++
			c.s.Spare = 0
		}
	}
	return trims
}

// The steps run in order on one trimmer: each makes n checks, allocating
// alloc bytes before every check, and expects trims of them to trim.
func TestTrimsOnceAfterStartAndEachBurst(t *testing.T) {
	c := newChecks(t, 5000)
	for _, step := range []struct {
		what  string
		n     int
		alloc uint64
		trims int
	}{
		{"before Idle has passed after start-up", 19, 0, 0},
		{"quiet after start-up", 1, 0, 1},
		{"still quiet, nothing new", 80, 0, 0},
		{"during a burst (allocating, garbage growing)", 80, 1000, 0},
		{"quiet after the burst", 20, 0, 1},
		{"quiet, one trim per burst", 80, 0, 0},
		{"slow allocation below Quiet (timers, polls) is no burst", 80, 10, 0},
	} {
		if got := c.run(step.n, step.alloc); got != step.trims {
			t.Fatalf("%s: %d trims, want %d", step.what, got, step.trims)
		}
	}
}

func TestNoTrimWithLittleToReturn(t *testing.T) {
	c := newChecks(t, 999)
	if n := c.run(100, 0); n != 0 {
		t.Fatalf("spare below MinFree: %d trims", n)
	}
}

func TestReadRuntime(t *testing.T) {
	a := readRuntime()
	sink = make([]byte, 1<<20)
	b := readRuntime()
	if b.Allocated < a.Allocated+1<<20 {
		t.Fatalf("allocated %d → %d after a 1 MiB allocation", a.Allocated, b.Allocated)
	}
	sink = nil
}

var sink []byte

func TestLimitFor(t *testing.T) {
	for _, tc := range []struct {
		needed, floor int64
		percent       int
		want          int64
	}{
		{needed: 10 << 20, floor: 24 << 20, percent: 50, want: 24 << 20},
		{needed: 20 << 20, floor: 24 << 20, percent: 50, want: 30 << 20},
		{needed: 100 << 20, floor: 0, percent: 0, want: 100 << 20},
	} {
		if got := limitFor(tc.needed, tc.floor, tc.percent); got != tc.want {
			t.Errorf("limitFor(%d, %d, %d) = %d, want %d", tc.needed, tc.floor, tc.percent, got, tc.want)
		}
	}
}

// TestLimitFollowsLiveData: the limit is the floor for a small process and
// grows with its live data. Limit sets it before its first wait, so with
// an ended context it sets it once and returns.
func TestLimitFollowsLiveData(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	limit := func() int64 { return debug.SetMemoryLimit(-1) }
	base := needed()
	const floor = 1 << 40
	Limit(ended, floor, 50)
	if limit() != floor {
		t.Fatalf("limit %d, want the floor %d", limit(), floor)
	}

	live := make([][]byte, 64)
	for i := range live {
		live[i] = make([]byte, 1<<20) // 64 MiB live
	}
	runtime.GC()
	if got := needed(); got < base+60<<20 {
		t.Fatalf("needed %d MiB with 64 MiB more live data, was %d MiB", got>>20, base>>20)
	}
	Limit(ended, 1<<20, 50)
	if limit() < (base+60<<20)*3/2 {
		t.Fatalf("limit %d MiB with %d MiB needed", limit()>>20, needed()>>20)
	}
	runtime.KeepAlive(live)
}
