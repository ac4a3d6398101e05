package api

import "slices"

// Capability is a permission an agent certificate can hold (docs/api.md,
// "Capabilities"). The set is fixed; nothing extends it at run time.
type Capability = string

// The capabilities, in the API's order.
const (
	CapTunnelsRead   Capability = "tunnels:read" // always granted
	CapTunnelsWrite  Capability = "tunnels:write"
	CapServicesRead  Capability = "services:read"
	CapServicesWrite Capability = "services:write"
	CapSystemRead    Capability = "system:read"
	CapSitesRead     Capability = "sites:read"
	CapSitesWrite    Capability = "sites:write"
	CapPanelExpose   Capability = "panel:expose"
	CapIdentityRead  Capability = "identity:read" // reserved: no route uses it yet
	CapIdentityQuery Capability = "identity:query"
)

var capabilities = []Capability{
	CapTunnelsRead, CapTunnelsWrite, CapServicesRead, CapServicesWrite, CapSystemRead,
	CapSitesRead, CapSitesWrite, CapPanelExpose, CapIdentityRead, CapIdentityQuery,
}

// Capabilities returns the fixed capability set in the API's order.
func Capabilities() []Capability { return slices.Clone(capabilities) }

// IsCapability reports whether c is one of the fixed capabilities.
func IsCapability(c string) bool { return slices.Contains(capabilities, c) }
