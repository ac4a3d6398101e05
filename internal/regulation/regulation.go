// Package regulation limits guessing: it counts failed attempts per key (a
// user, a client address) and bans a key that fails too often. The auth
// server's login regulation and the panel's 2FA limiter both use it.
//
// Attempts are admitted with Begin and finished with End. An attempt counts
// as in flight between the two, and a key whose recent failures plus
// attempts in flight reach the limit admits no more, so parallel attempts
// get no more guesses than sequential ones.
package regulation

import (
	"sync"
	"time"
)

// Config sets the limits. Zero values take Authelia's defaults: 5 failures
// within 2 minutes ban for 5 minutes; 10000 keys remembered.
type Config struct {
	MaxFailures int
	FindTime    time.Duration // failures older than this are forgotten
	BanTime     time.Duration
	// MaxKeys bounds the keys remembered; when full, keys with neither a
	// ban nor recent failures are dropped, then the least recently active
	// key that is not banned.
	MaxKeys int
	// BanOnNextAttempt starts the ban at the first attempt after the limit
	// was reached (the panel's 2FA rule) instead of at the failure that
	// reached it (the auth server's).
	BanOnNextAttempt bool
}

// Regulator counts failures and bans. It is safe for concurrent use.
type Regulator struct {
	cfg  Config
	mu   sync.Mutex
	keys map[string]*entry
}

type entry struct {
	failures    []time.Time
	bannedUntil time.Time
	inflight    int
	last        time.Time
}

// New returns a Regulator for cfg.
func New(cfg Config) *Regulator {
	if cfg.MaxFailures <= 0 {
		cfg.MaxFailures = 5
	}
	if cfg.FindTime <= 0 {
		cfg.FindTime = 2 * time.Minute
	}
	if cfg.BanTime <= 0 {
		cfg.BanTime = 5 * time.Minute
	}
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = 10000
	}
	return &Regulator{cfg: cfg, keys: map[string]*entry{}}
}

// Begin admits one attempt for keys, atomically. It refuses when a key is
// banned (retryAfter: until the ban ends), or when a key's recent failures
// plus the attempts in flight reach the limit (retryAfter: the ban that
// starts now with BanOnNextAttempt, else a second, as the attempts in flight
// may yet succeed). An admitted attempt must be finished with End.
func (r *Regulator) Begin(now time.Time, keys ...string) (retryAfter time.Duration, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d, banned := r.bannedLocked(now, keys...); banned {
		return d, false
	}
	for _, k := range keys {
		e := r.keys[k]
		if e == nil {
			continue
		}
		recent := r.recent(e, now)
		if len(recent) >= r.cfg.MaxFailures && r.cfg.BanOnNextAttempt {
			e.failures = nil
			e.bannedUntil = now.Add(r.cfg.BanTime)
			e.last = now
			return r.cfg.BanTime, false
		}
		if len(recent)+e.inflight >= r.cfg.MaxFailures {
			return time.Second, false
		}
	}
	for _, k := range keys {
		e := r.entry(k, now)
		e.inflight++
		e.last = now
	}
	return 0, true
}

// End finishes an attempt admitted by Begin: a failure is recorded (and,
// without BanOnNextAttempt, bans a key reaching the limit); a success only
// ends the attempt (it does not reset the count).
func (r *Regulator) End(now time.Time, failed bool, keys ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range keys {
		e := r.keys[k]
		if e == nil {
			if !failed {
				continue
			}
			e = r.entry(k, now)
		}
		if e.inflight > 0 {
			e.inflight--
		}
		e.last = now
		if !failed {
			continue
		}
		e.failures = append(r.recent(e, now), now)
		if !r.cfg.BanOnNextAttempt && len(e.failures) >= r.cfg.MaxFailures {
			e.bannedUntil = now.Add(r.cfg.BanTime)
			e.failures = nil
		}
	}
}

// Banned reports whether any key is banned at now, and for how long.
func (r *Regulator) Banned(now time.Time, keys ...string) (retryAfter time.Duration, banned bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bannedLocked(now, keys...)
}

// Tracked returns the number of keys remembered.
func (r *Regulator) Tracked() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.keys)
}

// InFlight returns the number of attempts admitted and not yet ended.
func (r *Regulator) InFlight() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.keys {
		n += e.inflight
	}
	return n
}

func (r *Regulator) bannedLocked(now time.Time, keys ...string) (time.Duration, bool) {
	var longest time.Duration
	for _, k := range keys {
		if e := r.keys[k]; e != nil && now.Before(e.bannedUntil) {
			longest = max(longest, e.bannedUntil.Sub(now))
		}
	}
	return longest, longest > 0
}

// recent returns e's failures within FindTime of now.
func (r *Regulator) recent(e *entry, now time.Time) []time.Time {
	kept := e.failures[:0]
	for _, t := range e.failures {
		if now.Sub(t) < r.cfg.FindTime {
			kept = append(kept, t)
		}
	}
	e.failures = kept
	return kept
}

// entry returns k's entry, making room for a new one if needed (r.mu held).
func (r *Regulator) entry(k string, now time.Time) *entry {
	if e := r.keys[k]; e != nil {
		return e
	}
	if len(r.keys) >= r.cfg.MaxKeys {
		r.evict(now)
	}
	e := &entry{}
	r.keys[k] = e
	return e
}

// evict drops every key with neither a ban, nor recent failures, nor an
// attempt in flight; if that frees nothing, the least recently active key
// that is not banned.
func (r *Regulator) evict(now time.Time) {
	var oldest string
	for k, e := range r.keys {
		banned := now.Before(e.bannedUntil)
		if !banned && e.inflight == 0 && len(r.recent(e, now)) == 0 {
			delete(r.keys, k)
			continue
		}
		if !banned && (oldest == "" || e.last.Before(r.keys[oldest].last)) {
			oldest = k
		}
	}
	if len(r.keys) >= r.cfg.MaxKeys && oldest != "" {
		delete(r.keys, oldest)
	}
}
