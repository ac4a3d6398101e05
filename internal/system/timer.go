package system

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// TimerStatus is a timer unit's schedule (GET /api/certs/auto-renew-status).
type TimerStatus struct {
	Unit    string
	Active  bool
	LastRun time.Time // zero: never ran
	NextRun time.Time // zero: not scheduled
}

// TimerReporter reports timer units; Systemd and the demo's supervisor are
// ones. It is apart from ServiceManager because only the certificate
// routes need it.
type TimerReporter interface {
	TimerStatus(ctx context.Context, unit string) (TimerStatus, error)
}

var _ TimerReporter = Systemd{}

// TimerStatus runs "systemctl show" for a .timer unit.
func (s Systemd) TimerStatus(ctx context.Context, unit string) (TimerStatus, error) {
	if err := ValidUnit(unit); err != nil {
		return TimerStatus{}, err
	}
	out, err := s.systemctl(ctx, "show", "--property=ActiveState,LastTriggerUSec,NextElapseUSecRealtime", "--timestamp=unix", unit)
	if err != nil {
		return TimerStatus{}, fmt.Errorf("status of %s: %w", unit, err)
	}
	return ParseTimerShow(unit, out), nil
}

// ParseTimerShow reads the output of TimerStatus's "systemctl show".
func ParseTimerShow(unit string, out []byte) TimerStatus {
	ts := TimerStatus{Unit: unit}
	for _, line := range strings.Split(string(out), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		switch k {
		case "ActiveState":
			ts.Active = v == StateActive
		case "LastTriggerUSec":
			ts.LastRun = parseShowTime(v)
		case "NextElapseUSecRealtime":
			ts.NextRun = parseShowTime(v)
		}
	}
	return ts
}
