package auth

import (
	"time"

	"github.com/portlama/portlama/internal/regulation"
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
// guesses than sequential ones. The implementation is shared with the
// panel's 2FA limiter (internal/regulation).
type regulator struct{ *regulation.Regulator }

func newRegulator() *regulator {
	return &regulator{regulation.New(regulation.Config{
		MaxFailures: RegulationMaxRetries,
		FindTime:    RegulationFindTime,
		BanTime:     RegulationBanTime,
		MaxKeys:     regulationMaxKeys,
	})}
}

// begin admits one attempt for keys (see regulation.Regulator.Begin). When
// it refuses, wait is the remaining time of a ban, or 0 when the limit is
// only reached by attempts still being checked (try again once they are
// decided).
func (r *regulator) begin(now time.Time, keys ...string) (ok bool, wait time.Duration) {
	if _, ok := r.Begin(now, keys...); ok {
		return true, 0
	}
	return false, r.banned(now, keys...)
}

// end finishes an attempt admitted by begin: a failure is recorded (and may
// ban), a success just drops the provisional count.
func (r *regulator) end(now time.Time, failed bool, keys ...string) { r.End(now, failed, keys...) }

// banned returns how long the longest ban of keys lasts from now; 0 when
// none is banned.
func (r *regulator) banned(now time.Time, keys ...string) time.Duration {
	d, _ := r.Banned(now, keys...)
	return d
}
