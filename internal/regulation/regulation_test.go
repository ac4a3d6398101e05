package regulation

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)

// Parallel attempts get no more guesses than sequential ones, in both
// modes.
func TestParallelAttemptsAreCounted(t *testing.T) {
	for _, next := range []bool{false, true} {
		r := New(Config{BanOnNextAttempt: next})
		var wg sync.WaitGroup
		admitted := make(chan bool, 50)
		for range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, ok := r.Begin(t0, "ip:1")
				admitted <- ok
			}()
		}
		wg.Wait()
		close(admitted)
		n := 0
		for ok := range admitted {
			if ok {
				n++
			}
		}
		if n != 5 {
			t.Fatalf("BanOnNextAttempt=%v: %d parallel attempts admitted, want 5", next, n)
		}
		for range n {
			r.End(t0, true, "ip:1")
		}
		if _, ok := r.Begin(t0, "ip:1"); ok {
			t.Fatalf("BanOnNextAttempt=%v: attempt admitted after 5 failures", next)
		}
		if r.InFlight() != 0 {
			t.Fatalf("in flight %d", r.InFlight())
		}
	}
}

func TestBanStart(t *testing.T) {
	// Auth server: the fifth failure bans.
	r := New(Config{})
	for range 5 {
		r.Begin(t0, "u:a")
		r.End(t0, true, "u:a")
	}
	if d, banned := r.Banned(t0.Add(30*time.Second), "u:a"); !banned || d != 270*time.Second {
		t.Fatalf("banned %v for %v", banned, d)
	}
	// Panel 2FA: the next attempt starts the ban.
	p := New(Config{BanOnNextAttempt: true, MaxKeys: 1000})
	for range 5 {
		p.Begin(t0, "ip:1")
		p.End(t0, true, "ip:1")
	}
	if _, banned := p.Banned(t0, "ip:1"); banned {
		t.Fatal("banned before the next attempt")
	}
	if d, ok := p.Begin(t0.Add(30*time.Second), "ip:1"); ok || d != 5*time.Minute {
		t.Fatalf("next attempt: %v %v", d, ok)
	}
	if d, ok := p.Begin(t0.Add(40*time.Second), "ip:1"); ok || d != 290*time.Second {
		t.Fatalf("during the ban: %v %v", d, ok)
	}
	if _, ok := p.Begin(t0.Add(30*time.Second+5*time.Minute), "ip:1"); !ok {
		t.Fatal("refused after the ban")
	}
	// Failures older than FindTime are forgotten; a success resets nothing.
	q := New(Config{})
	for i := range 4 {
		q.Begin(t0, "k")
		q.End(t0.Add(time.Duration(i)*time.Second), true, "k")
	}
	q.Begin(t0, "k")
	q.End(t0, false, "k")
	if _, ok := q.Begin(t0.Add(3*time.Minute), "k"); !ok {
		t.Fatal("old failures still counted")
	}
}

func TestBounded(t *testing.T) {
	r := New(Config{BanOnNextAttempt: true, MaxKeys: 100})
	banned := "192.0.2.1"
	for range 5 {
		r.Begin(t0, banned)
		r.End(t0, true, banned)
	}
	r.Begin(t0, banned) // starts the ban
	for i := range 300 {
		k := fmt.Sprintf("10.0.0.%d", i)
		r.Begin(t0.Add(time.Duration(i)*time.Millisecond), k)
		r.End(t0.Add(time.Duration(i)*time.Millisecond), true, k)
		if n := r.Tracked(); n > 100 {
			t.Fatalf("%d keys tracked, limit 100", n)
		}
	}
	if _, banned := r.Banned(t0.Add(time.Minute), banned); !banned {
		t.Fatal("a banned key was evicted")
	}
	later := t0.Add(time.Hour)
	r.Begin(later, "203.0.113.9")
	r.End(later, true, "203.0.113.9")
	if n := r.Tracked(); n != 1 {
		t.Fatalf("%d keys tracked after the others went stale, want 1", n)
	}
}

// FuzzRegulator drives a regulator with arbitrary sequences at one instant:
// however attempts interleave, at most MaxFailures of them can fail (every
// failure needs an admitted attempt, and failures plus attempts in flight
// never exceed the limit), and the key count stays bounded.
func FuzzRegulator(f *testing.F) {
	f.Add([]byte{0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1}, false)
	f.Add([]byte{0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2}, true)
	f.Add([]byte{0, 0, 0, 1, 2, 0, 0, 1, 1, 1, 0, 0, 1, 3, 3, 3, 3, 3}, false)
	f.Fuzz(func(t *testing.T, ops []byte, next bool) {
		r := New(Config{BanOnNextAttempt: next, MaxKeys: 4})
		open, failures := 0, 0
		for i, op := range ops {
			switch op % 4 {
			case 0:
				if _, ok := r.Begin(t0, "k"); ok {
					open++
				}
			case 1:
				if open > 0 {
					r.End(t0, true, "k")
					open--
					failures++
				}
			case 2:
				if open > 0 {
					r.End(t0, false, "k")
					open--
				}
			case 3:
				if _, ok := r.Begin(t0, fmt.Sprint("other", i)); ok {
					r.End(t0, false, fmt.Sprint("other", i))
				}
			}
			if failures > 5 {
				t.Fatalf("%d failures admitted", failures)
			}
		}
		if r.InFlight() != open || r.Tracked() > 4 {
			t.Fatalf("in flight %d (want %d), tracked %d", r.InFlight(), open, r.Tracked())
		}
	})
}
