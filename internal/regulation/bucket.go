package regulation

import (
	"math"
	"sync"
	"time"
)

// Buckets is a token bucket per key: a key may spend Burst tokens at once,
// and its tokens come back at Rate per second. The panel bounds each
// agent's changes with it. It is safe for concurrent use.
type Buckets struct {
	mu      sync.Mutex
	keys    map[string]*bucket
	maxKeys int
}

type bucket struct {
	tokens float64
	at     time.Time
}

// NewBuckets returns buckets that remember at most maxKeys keys (0:
// 10000); when full, the fullest bucket is forgotten (it would be full
// again on its next use anyway).
func NewBuckets(maxKeys int) *Buckets {
	if maxKeys <= 0 {
		maxKeys = 10000
	}
	return &Buckets{keys: map[string]*bucket{}, maxKeys: maxKeys}
}

// Take spends one token of key's bucket (burst tokens when full, refilled
// at rate per second) at now. When the bucket is empty it spends nothing
// and returns false with the time until a token is back.
func (b *Buckets) Take(key string, burst int, rate float64, now time.Time) (ok bool, retryAfter time.Duration) {
	if burst < 1 {
		burst = 1
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	k := b.keys[key]
	if k == nil {
		if len(b.keys) >= b.maxKeys {
			b.evict(float64(burst), rate, now)
		}
		k = &bucket{tokens: float64(burst), at: now}
		b.keys[key] = k
	}
	if el := now.Sub(k.at).Seconds(); el > 0 {
		k.tokens = math.Min(float64(burst), k.tokens+el*rate)
		k.at = now
	}
	if k.tokens >= 1 {
		k.tokens--
		return true, 0
	}
	if rate <= 0 {
		return false, time.Hour
	}
	// At least a millisecond: a bucket a rounding error short of a token
	// still asks for a wait.
	return false, max(time.Millisecond, time.Duration((1-k.tokens)/rate*float64(time.Second)))
}

func (b *Buckets) evict(burst, rate float64, now time.Time) {
	var fullest string
	most := -1.0
	for key, k := range b.keys {
		t := math.Min(burst, k.tokens+now.Sub(k.at).Seconds()*rate)
		if t > most {
			fullest, most = key, t
		}
	}
	delete(b.keys, fullest)
}
