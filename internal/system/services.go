package system

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ServiceManager controls the relay's services: systemd units on a relay
// (Systemd), child processes in the demo and tests. Unit names are given
// without the ".service" suffix for services ("portlama-panel", "nginx");
// other unit types keep theirs ("portlama-helper.socket").
type ServiceManager interface {
	// Start, Stop, Restart and Reload run the action and return once
	// the service manager has carried it out (systemctl waits for the job).
	Start(ctx context.Context, unit string) error
	Stop(ctx context.Context, unit string) error
	Restart(ctx context.Context, unit string) error
	Reload(ctx context.Context, unit string) error
	// Enable makes the unit start at boot and starts it now.
	Enable(ctx context.Context, unit string) error
	// Disable stops the unit and keeps it from starting at boot.
	Disable(ctx context.Context, unit string) error
	// Status reports the unit's state and since when it is active.
	Status(ctx context.Context, unit string) (UnitStatus, error)
	// Follow passes the unit's last backlog log lines to fn, then each
	// new line as it is written, until ctx ends (nil), the log source
	// ends (ErrLogEnded) or fn fails (its error). fn may block: reading
	// pauses meanwhile. An error wrapping ErrLogStart means the log
	// could not be opened at all.
	Follow(ctx context.Context, unit string, backlog int, fn func(LogLine) error) error
}

// Action is a service action of the panel's services API (docs/api.md, "Services and live logs").
type Action string

const (
	ActionStart   Action = "start"
	ActionStop    Action = "stop"
	ActionRestart Action = "restart"
	ActionReload  Action = "reload"
)

// Actions lists the service actions in the contract's order.
var Actions = []Action{ActionStart, ActionStop, ActionRestart, ActionReload}

// ParseAction returns the Action named s.
func ParseAction(s string) (Action, error) {
	for _, a := range Actions {
		if string(a) == s {
			return a, nil
		}
	}
	return "", fmt.Errorf("unknown service action %q (want start, stop, restart or reload)", s)
}

// Do runs action a on unit through m.
func Do(ctx context.Context, m ServiceManager, unit string, a Action) error {
	switch a {
	case ActionStart:
		return m.Start(ctx, unit)
	case ActionStop:
		return m.Stop(ctx, unit)
	case ActionRestart:
		return m.Restart(ctx, unit)
	case ActionReload:
		return m.Reload(ctx, unit)
	}
	return fmt.Errorf("unknown service action %q", a)
}

// The relay's units.
const (
	UnitNginx  = "nginx"
	UnitPanel  = "portlama-panel"
	UnitTunnel = "portlama-tunnel"
	UnitAuth   = "portlama-auth"
	// UnitRenewTimer runs `portlama certs renew` daily; the installer
	// writes and enables it (portlama-renew.service is what it starts).
	UnitRenewTimer = "portlama-renew.timer"
)

// ManagedServices are the services of the panel's services API, in the
// contract's order (docs/api.md, "Services and live logs").
var ManagedServices = []string{UnitNginx, UnitTunnel, UnitAuth, UnitPanel}

// States of UnitStatus.State (docs/api.md, "Services and live logs").
const (
	StateActive   = "active"
	StateInactive = "inactive"
	StateFailed   = "failed"
	StateUnknown  = "unknown"
)

// UnitStatus is a unit's state.
type UnitStatus struct {
	Unit string
	// State is the contract's status: active, inactive, failed or unknown
	// (every other systemd state, e.g. activating).
	State string
	// ActiveState and SubState are systemd's own words.
	ActiveState string
	SubState    string
	// LoadState is "loaded", or "not-found" for a unit that does not exist.
	LoadState string
	// UnitFileState is "enabled", "disabled", "static"…; empty if unknown.
	UnitFileState string
	// Since is when the unit last became active; zero when it is not.
	Since time.Time
	// MainPID is the unit's main process, 0 when none.
	MainPID int
}

// Uptime is how long the unit has been active at now, 0 when it is not.
func (s UnitStatus) Uptime(now time.Time) time.Duration {
	if s.State != StateActive || s.Since.IsZero() || now.Before(s.Since) {
		return 0
	}
	return now.Sub(s.Since)
}

// FormatUptime formats an uptime as docs/api.md, "Services and live logs" says: "2d 5h 30m",
// "5h 30m", "12m" (leading zero units omitted), or "45s" under a minute.
func FormatUptime(d time.Duration) string {
	if d < time.Minute {
		if d < 0 {
			d = 0
		}
		return strconv.Itoa(int(d/time.Second)) + "s"
	}
	m := int64(d / time.Minute)
	days, hours, mins := m/(24*60), m/60%24, m%60
	var parts []string
	if days > 0 {
		parts = append(parts, strconv.FormatInt(days, 10)+"d")
	}
	if days > 0 || hours > 0 {
		parts = append(parts, strconv.FormatInt(hours, 10)+"h")
	}
	parts = append(parts, strconv.FormatInt(mins, 10)+"m")
	return strings.Join(parts, " ")
}

// ErrLogEnded is returned by Follow when the log source ends by itself.
var ErrLogEnded = errors.New("log stream ended")

// ErrLogStart is wrapped by Follow's error when the log cannot be opened.
var ErrLogStart = errors.New("cannot start the log stream")

// LogLine is one journal line (docs/api.md, "Services and live logs" log frames).
type LogLine struct {
	// Timestamp is the ISO 8601 prefix of the line, or "" when it has none.
	Timestamp string `json:"timestamp"`
	Message   string `json:"message"`
}

var unitRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}(\.(service|socket|timer))?$`)
})

// ValidUnit checks a unit name: lower-case letters, digits and hyphens,
// optionally with a .service, .socket or .timer suffix. Unit names reach
// argv only; the check keeps anything that looks like an option out.
func ValidUnit(unit string) error {
	if !unitRE().MatchString(unit) {
		return fmt.Errorf("invalid unit name %q", unit)
	}
	return nil
}
