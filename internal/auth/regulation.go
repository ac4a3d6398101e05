package auth

import (
	"sync"
	"time"
)

// Regulation defaults (Authelia's): 5 failures within 2 minutes ban the
// user and the client address for 5 minutes.
const (
	RegulationMaxRetries = 5
	RegulationFindTime   = 2 * time.Minute
	RegulationBanTime    = 5 * time.Minute
	regulationMaxKeys    = 10000
)

// regulator counts failed logins per key ("u:<name>", "ip:<addr>") and the
// attempts being checked right now, so parallel attempts cannot get more
// guesses than sequential ones.
type regulator struct {
	mu       sync.Mutex
	failures map[string][]time.Time
	bans     map[string]time.Time
	inflight map[string]int
}

func newRegulator() *regulator {
	return &regulator{failures: map[string][]time.Time{}, bans: map[string]time.Time{}, inflight: map[string]int{}}
}

// begin admits one attempt for keys, atomically: it refuses when a key is
// banned (wait is the ban's remaining time) or when the key's recent
// failures plus the attempts already being checked reach the limit (wait is
// 0: try again once those are decided); otherwise it counts the attempt as
// in flight. Every admitted attempt must be ended with end.
func (r *regulator) begin(now time.Time, keys ...string) (ok bool, wait time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d := r.bannedLocked(now, keys...); d > 0 {
		return false, d
	}
	for _, k := range keys {
		recent := 0
		for _, t := range r.failures[k] {
			if now.Sub(t) < RegulationFindTime {
				recent++
			}
		}
		if recent+r.inflight[k] >= RegulationMaxRetries {
			return false, 0
		}
	}
	for _, k := range keys {
		r.inflight[k]++
	}
	return true, 0
}

// end finishes an attempt admitted by begin: a failure is recorded (and may
// ban), a success just drops the provisional count.
func (r *regulator) end(now time.Time, failed bool, keys ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range keys {
		if r.inflight[k] <= 1 {
			delete(r.inflight, k)
		} else {
			r.inflight[k]--
		}
	}
	if failed {
		r.failLocked(now, keys...)
	}
}

// banned returns how long the longest ban of keys lasts from now; 0 when
// none is banned.
func (r *regulator) banned(now time.Time, keys ...string) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bannedLocked(now, keys...)
}

func (r *regulator) bannedLocked(now time.Time, keys ...string) time.Duration {
	var out time.Duration
	for _, k := range keys {
		if until, ok := r.bans[k]; ok {
			if now.Before(until) {
				out = max(out, until.Sub(now))
			} else {
				delete(r.bans, k)
			}
		}
	}
	return out
}

// failLocked records a failure for each key (r.mu held); a key reaching the limit within the
// window is banned.
func (r *regulator) failLocked(now time.Time, keys ...string) {
	if len(r.failures) > regulationMaxKeys {
		r.pruneLocked(now)
	}
	for _, k := range keys {
		list := r.failures[k]
		kept := list[:0]
		for _, t := range list {
			if now.Sub(t) < RegulationFindTime {
				kept = append(kept, t)
			}
		}
		kept = append(kept, now)
		if len(kept) >= RegulationMaxRetries {
			r.bans[k] = now.Add(RegulationBanTime)
			delete(r.failures, k)
			continue
		}
		r.failures[k] = kept
	}
}

func (r *regulator) pruneLocked(now time.Time) {
	for k, list := range r.failures {
		if len(list) == 0 || now.Sub(list[len(list)-1]) >= RegulationFindTime {
			delete(r.failures, k)
		}
	}
	for k, until := range r.bans {
		if !now.Before(until) {
			delete(r.bans, k)
		}
	}
}
