package agents

import "slices"

// Capabilities an agent certificate can hold (contract §3.5). The set is
// fixed.
const (
	CapTunnelsRead   = "tunnels:read"
	CapTunnelsWrite  = "tunnels:write"
	CapServicesRead  = "services:read"
	CapServicesWrite = "services:write"
	CapSystemRead    = "system:read"
	CapSitesRead     = "sites:read"
	CapSitesWrite    = "sites:write"
	CapPanelExpose   = "panel:expose"
	CapIdentityRead  = "identity:read"
	CapIdentityQuery = "identity:query"
)

var allCapabilities = []string{
	CapTunnelsRead, CapTunnelsWrite, CapServicesRead, CapServicesWrite, CapSystemRead,
	CapSitesRead, CapSitesWrite, CapPanelExpose, CapIdentityRead, CapIdentityQuery,
}

// AllCapabilities returns the fixed capability set in contract order.
func AllCapabilities() []string { return slices.Clone(allCapabilities) }

// IsCapability reports whether c is one of the fixed capabilities.
func IsCapability(c string) bool { return slices.Contains(allCapabilities, c) }

// CapabilityError names a capability outside the fixed set. Its message,
// `Invalid capability: <c>`, is part of the contract (§2.3).
type CapabilityError struct {
	Capability string
}

func (e *CapabilityError) Error() string { return "Invalid capability: " + e.Capability }

// ValidateCapabilities returns a *CapabilityError for the first entry of caps
// that is not a capability.
func ValidateCapabilities(caps []string) error {
	for _, c := range caps {
		if !IsCapability(c) {
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
	if !slices.Contains(caps, CapTunnelsRead) {
		out = append(out, CapTunnelsRead)
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
		if IsCapability(c) {
			known = append(known, c)
		}
	}
	out, _ := NormalizeCapabilities(known)
	return out
}
