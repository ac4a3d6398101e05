package memtrim

import (
	"context"
	"runtime"
	"runtime/debug"
	"sync"
	"testing"
	"time"
)

// fakeRuntime is a process whose counters the test sets.
type fakeRuntime struct {
	mu    sync.Mutex
	s     Sample
	freed chan Sample
}

func (f *fakeRuntime) read() Sample {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.s
}

func (f *fakeRuntime) set(fn func(s *Sample)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.s)
}

func (f *fakeRuntime) free() {
	f.mu.Lock()
	f.s.Spare = 0
	s := f.s
	f.mu.Unlock()
	f.freed <- s
}

func start(t *testing.T, f *fakeRuntime) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go Run(ctx, Options{Check: time.Millisecond, Idle: 20 * time.Millisecond, Quiet: 100, MinFree: 1000, Free: f.free, Read: f.read})
}

func expectFree(t *testing.T, f *fakeRuntime, want bool, within time.Duration, what string) {
	t.Helper()
	select {
	case <-f.freed:
		if !want {
			t.Fatalf("%s: trimmed", what)
		}
	case <-time.After(within):
		if want {
			t.Fatalf("%s: not trimmed within %v", what, within)
		}
	}
}

func TestTrimsOnceAfterStartAndEachBurst(t *testing.T) {
	f := &fakeRuntime{s: Sample{Spare: 5000}, freed: make(chan Sample, 10)}
	start(t, f)
	expectFree(t, f, true, 5*time.Second, "quiet after start-up")
	expectFree(t, f, false, 80*time.Millisecond, "still quiet, nothing new")

	// A burst: allocating, garbage growing. Nothing is trimmed while it lasts.
	stop := time.After(80 * time.Millisecond)
	for busy := true; busy; {
		f.set(func(s *Sample) { s.Allocated += 1000; s.Spare += 1000 })
		select {
		case <-f.freed:
			t.Fatal("trimmed during the burst")
		case <-stop:
			busy = false
		case <-time.After(time.Millisecond):
		}
	}
	expectFree(t, f, true, 5*time.Second, "quiet after the burst")
	expectFree(t, f, false, 80*time.Millisecond, "quiet, one trim per burst")

	// Slow allocation below Quiet (timers, polls) is no burst.
	for range 40 {
		f.set(func(s *Sample) { s.Allocated += 10; s.Spare += 10 })
		time.Sleep(time.Millisecond)
	}
	expectFree(t, f, false, 80*time.Millisecond, "slow allocation")
}

func TestNoTrimWithLittleToReturn(t *testing.T) {
	f := &fakeRuntime{s: Sample{Spare: 999}, freed: make(chan Sample, 10)}
	start(t, f)
	expectFree(t, f, false, 100*time.Millisecond, "spare below MinFree")
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

// TestLimitFollowsLiveData: the limit is the floor for a small process and
// grows with its live data.
func TestLimitFollowsLiveData(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	base := needed()
	const floor = 1 << 40
	go Limit(ctx, floor, 50)
	limit := func() int64 { return debug.SetMemoryLimit(-1) }
	deadline := time.Now().Add(5 * time.Second)
	for limit() != floor {
		if time.Now().After(deadline) {
			t.Fatalf("limit %d, want the floor %d", limit(), floor)
		}
		time.Sleep(time.Millisecond)
	}
	cancel()

	live := make([][]byte, 64)
	for i := range live {
		live[i] = make([]byte, 1<<20) // 64 MiB live
	}
	runtime.GC()
	if got := needed(); got < base+60<<20 {
		t.Fatalf("needed %d MiB with 64 MiB more live data, was %d MiB", got>>20, base>>20)
	}
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	go Limit(ctx, 1<<20, 50)
	for limit() < (base+60<<20)*3/2 {
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatalf("limit %d MiB with %d MiB needed", limit()>>20, needed()>>20)
		}
		time.Sleep(time.Millisecond)
	}
	runtime.KeepAlive(live)
}
