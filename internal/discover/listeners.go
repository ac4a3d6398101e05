// Package discover finds the web apps listening on this machine, without
// root: the listening TCP sockets (Linux: /proc/net/tcp{,6}, with the
// owning process where /proc/<pid>/fd may be read; macOS: lsof's table),
// an HTTP probe for the page title, and a catalog of common apps (an
// embedded JSON file: data, not code) that names them and suggests a
// subdomain and access mode.
package discover

import (
	"context"
	"net/netip"
	"slices"
	"strings"
)

// Listener is one listening TCP socket.
type Listener struct {
	Addr netip.Addr `json:"-"`
	Port int        `json:"port"`
	// PID and Process name the owner when the system tells (0 and "" when
	// the process belongs to another user).
	PID     int    `json:"pid,omitempty"`
	Process string `json:"process,omitempty"`
}

// Local reports whether 127.0.0.1 (or ::1) reaches the listener: it listens
// on a loopback or a wildcard address.
func (l Listener) Local() bool {
	return l.Addr.IsLoopback() || l.Addr.IsUnspecified()
}

// Listeners returns this machine's listening TCP sockets, one per port
// (IPv4 and IPv6 sockets of a port merged), sorted by port.
func Listeners(ctx context.Context) ([]Listener, error) {
	ls, err := systemListeners(ctx)
	if err != nil {
		return nil, err
	}
	return merge(ls), nil
}

// merge keeps one listener per port, preferring one with a reachable
// address and a known process.
func merge(ls []Listener) []Listener {
	byPort := map[int]Listener{}
	for _, l := range ls {
		cur, ok := byPort[l.Port]
		if !ok || (!cur.Local() && l.Local()) || (cur.Process == "" && l.Process != "" && l.Local() == cur.Local()) {
			if ok && l.Process == "" {
				l.PID, l.Process = cur.PID, cur.Process
			}
			byPort[l.Port] = l
		}
	}
	out := make([]Listener, 0, len(byPort))
	for _, l := range byPort {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b Listener) int { return a.Port - b.Port })
	return out
}

// cleanProcess makes a process name printable: control characters and
// lsof's \xNN escapes are replaced, the length bounded.
func cleanProcess(s string) string {
	s = strings.ReplaceAll(s, `\x20`, " ")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > 64 {
		s = s[:64]
	}
	return strings.TrimSpace(s)
}
