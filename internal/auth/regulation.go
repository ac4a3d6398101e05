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

// regulator counts failed logins per key ("u:<name>", "ip:<addr>").
type regulator struct {
	mu       sync.Mutex
	failures map[string][]time.Time
	bans     map[string]time.Time
}

func newRegulator() *regulator {
	return &regulator{failures: map[string][]time.Time{}, bans: map[string]time.Time{}}
}

// banned reports whether any key is banned at now.
func (r *regulator) banned(now time.Time, keys ...string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := false
	for _, k := range keys {
		if until, ok := r.bans[k]; ok {
			if now.Before(until) {
				out = true
			} else {
				delete(r.bans, k)
			}
		}
	}
	return out
}

// fail records a failure for each key; a key reaching the limit within the
// window is banned.
func (r *regulator) fail(now time.Time, keys ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
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
