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

// begin admits one attempt for keys (see regulation.Regulator.Begin).
func (r *regulator) begin(now time.Time, keys ...string) bool {
	_, ok := r.Begin(now, keys...)
	return ok
}

// end finishes an attempt admitted by begin: a failure is recorded (and may
// ban), a success just drops the provisional count.
func (r *regulator) end(now time.Time, failed bool, keys ...string) { r.End(now, failed, keys...) }

// banned reports whether any key is banned at now.
func (r *regulator) banned(now time.Time, keys ...string) bool {
	_, b := r.Banned(now, keys...)
	return b
}
