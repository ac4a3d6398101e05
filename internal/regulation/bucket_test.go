package regulation

import (
	"testing"
	"time"
)

func TestBuckets(t *testing.T) {
	b := NewBuckets(2)
	t0 := time.Unix(1_800_000_000, 0)
	const burst, rate = 3, 0.5 // 30 a minute
	for i := range burst {
		if ok, _ := b.Take("a", burst, rate, t0); !ok {
			t.Fatalf("take %d of a full bucket refused", i+1)
		}
	}
	ok, retry := b.Take("a", burst, rate, t0)
	if ok || retry != 2*time.Second {
		t.Fatalf("empty bucket: ok=%v retry=%v, want refused for 2s", ok, retry)
	}
	// Other keys are not affected.
	if ok, _ := b.Take("b", burst, rate, t0); !ok {
		t.Fatal("another key refused")
	}
	// One second later half a token is back: still refused, 1 s to go.
	if ok, retry := b.Take("a", burst, rate, t0.Add(time.Second)); ok || retry != time.Second {
		t.Fatalf("half a token: ok=%v retry=%v", ok, retry)
	}
	if ok, _ := b.Take("a", burst, rate, t0.Add(2*time.Second)); !ok {
		t.Fatal("refilled token refused")
	}
	// Tokens do not pile up beyond the burst.
	late := t0.Add(time.Hour)
	for range burst {
		b.Take("a", burst, rate, late)
	}
	if ok, _ := b.Take("a", burst, rate, late); ok {
		t.Fatal("more than burst tokens after a long pause")
	}
	// A third key evicts the fullest (b, untouched for an hour), not a.
	b.Take("c", burst, rate, late)
	if ok, _ := b.Take("a", burst, rate, late); ok {
		t.Fatal("the drained key was forgotten")
	}
	if len(b.keys) != 2 {
		t.Fatalf("%d keys remembered, want 2", len(b.keys))
	}
}

// FuzzBuckets: whatever the sequence of takes and clock steps, a key is
// granted at most burst plus rate × elapsed tokens, a refusal always names
// a positive wait, and the keys remembered stay bounded.
func FuzzBuckets(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 1, 0, 2, 0, 0})
	f.Add([]byte{3, 3, 3, 0, 255, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		const burst, rate = 3, 0.5
		b := NewBuckets(2)
		now := time.Unix(1_800_000_000, 0)
		start := now
		granted := 0
		for i, op := range ops {
			switch op % 4 {
			case 0:
				ok, retry := b.Take("k", burst, rate, now)
				if ok {
					granted++
				} else if retry <= 0 {
					t.Fatalf("refused with retry %v", retry)
				}
			case 1:
				now = now.Add(time.Duration(op) * 10 * time.Millisecond)
			case 2, 3:
				b.Take(string(rune('a'+i%5)), burst, rate, now)
			}
			if len(b.keys) > 2 {
				t.Fatalf("%d keys remembered", len(b.keys))
			}
		}
		// Evictions give a forgotten key a full bucket again, at most once
		// per other-key take.
		evictions := 0
		for _, op := range ops {
			if op%4 >= 2 {
				evictions++
			}
		}
		if max := burst*(1+evictions) + int(now.Sub(start).Seconds()*rate) + 1; granted > max {
			t.Fatalf("%d tokens granted, at most %d possible", granted, max)
		}
	})
}
