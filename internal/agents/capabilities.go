package agents

import (
	"slices"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/errkind"
)

// CapabilityError names a capability outside the fixed set. Its message,
// `Invalid capability: <c>`, is part of the API (docs/api.md, "Validation semantics").
type CapabilityError struct {
	Capability string
}

func (e *CapabilityError) Error() string { return "Invalid capability: " + e.Capability }

// Unwrap gives the error its kind (errkind.Invalid).
func (e *CapabilityError) Unwrap() error { return errkind.Invalid }

// ErrorField names the request field.
func (e *CapabilityError) ErrorField() string { return "capabilities" }

// ValidateCapabilities returns a *CapabilityError for the first entry of caps
// that is not a capability.
func ValidateCapabilities(caps []string) error {
	for _, c := range caps {
		if !api.IsCapability(c) {
			return &CapabilityError{Capability: c}
		}
	}
	return nil
}

// NormalizeCapabilities validates caps and returns them without duplicates,
// in the given order, with tunnels:read prepended when missing. The result is
// never nil.
func NormalizeCapabilities(caps []string) ([]string, error) {
	if err := ValidateCapabilities(caps); err != nil {
		return nil, err
	}
	out := []string{}
	if !slices.Contains(caps, api.CapTunnelsRead) {
		out = append(out, api.CapTunnelsRead)
	}
	for _, c := range caps {
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// filterCapabilities keeps only known capabilities (stored data may predate
// a change of the set) and makes sure tunnels:read is present.
func filterCapabilities(caps []string) []string {
	known := []string{}
	for _, c := range caps {
		if api.IsCapability(c) {
			known = append(known, c)
		}
	}
	out, _ := NormalizeCapabilities(known)
	return out
}
