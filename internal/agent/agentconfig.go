package agent

import (
	"fmt"

	"github.com/portlama/portlama/internal/validate"
)

// ValidateTargetHost checks a tunnel's targetHost with the relay's own rule
// (docs/api.md, "Shared value rules", internal/validate): a lower-case DNS hostname, a dotted
// IPv4 address, or an IPv6 address without brackets or zone.
func ValidateTargetHost(h string) error {
	if err := validate.TargetHost(h); err != nil {
		return fmt.Errorf("targetHost %q: %w", h, err)
	}
	return nil
}
