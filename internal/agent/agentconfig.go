package agent

import (
	"fmt"
	"slices"

	"github.com/portlama/portlama/internal/validate"
)

// ValidateTargetHost checks a tunnel's targetHost with the relay's own rule
// (contract §2.6, internal/validate): a lower-case DNS hostname, a dotted
// IPv4 address, or an IPv6 address without brackets or zone.
func ValidateTargetHost(h string) error {
	if err := validate.TargetHost(h); err != nil {
		return fmt.Errorf("targetHost %q: %w", h, err)
	}
	return nil
}

// Session is what one tunnel session needs; two configs that yield equal
// Sessions need no reconnect.
type Session struct {
	ServerURL   string
	Auth        string
	Fingerprint string
	Remotes     []string
	Tunnels     []AgentTunnel
}

// Equal reports whether s and o connect to the same server with the same
// credentials and the same set of remotes (order does not matter).
func (s Session) Equal(o Session) bool {
	if s.ServerURL != o.ServerURL || s.Auth != o.Auth || s.Fingerprint != o.Fingerprint {
		return false
	}
	a, b := slices.Clone(s.Remotes), slices.Clone(o.Remotes)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
