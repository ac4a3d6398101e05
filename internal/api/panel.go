package api

// OK answers routes that report only success ({"ok":true}).
type OK struct {
	OK bool `json:"ok"`
	// Warning: the change is saved but a relay service did not confirm it
	// is in force yet (docs/api.md, "Changes in force").
	Warning string `json:"warning,omitempty"`
}

// Health answers GET /api/health.
type Health struct {
	Status  string `json:"status"` // "ok"
	Version string `json:"version"`
}

// Onboarding states, in order.
const (
	StatusFresh        = "FRESH"
	StatusDomainSet    = "DOMAIN_SET"
	StatusDNSReady     = "DNS_READY"
	StatusProvisioning = "PROVISIONING"
	StatusCompleted    = "COMPLETED"
)

// OnboardingStatus answers GET /api/onboarding/status.
type OnboardingStatus struct {
	Status string  `json:"status"`
	Domain *string `json:"domain"`
	IP     string  `json:"ip"`
	// HTTPSPort is the port of the domain vhosts (443 on an installed
	// relay), so clients can link to https://<name>.<d> (an addition to the
	// contract's shape, for the web UI).
	HTTPSPort int `json:"httpsPort"`
	// PanelIPURL is https://<ip>:<port> of the panel by IP (9292 on an
	// installed relay; an addition to the contract's shape, for the web UI).
	PanelIPURL string `json:"panelIpUrl"`
}

// SetDomainRequest is the body of POST /api/onboarding/domain.
type SetDomainRequest struct {
	Domain string `json:"domain"`
	Email  string `json:"email"`
}

// SetDomainResponse answers POST /api/onboarding/domain.
type SetDomainResponse struct {
	OK     bool   `json:"ok"`
	Domain string `json:"domain"`
	Email  string `json:"email"`
}

// DNSCheck answers POST /api/onboarding/verify-dns.
type DNSCheck struct {
	OK                  bool     `json:"ok"`
	Domain              string   `json:"domain"`
	ResolvedIPs         []string `json:"resolvedIps"`
	ExpectedIP          string   `json:"expectedIp"`
	WildcardOK          bool     `json:"wildcardOk"`
	WildcardResolvedIPs []string `json:"wildcardResolvedIps"`
	MissingNames        []string `json:"missingNames"`
	Message             string   `json:"message"`
}

// SystemStats answers GET /api/system/stats (bytes and seconds).
type SystemStats struct {
	CPU    CPUStats `json:"cpu"`
	Memory Usage    `json:"memory"`
	Disk   Usage    `json:"disk"`
	Uptime int64    `json:"uptime"`
}

// CPUStats is the CPU part of SystemStats.
type CPUStats struct {
	Usage float64 `json:"usage"` // percent, one decimal
	Cores int     `json:"cores"`
}

// Usage is used and free space of memory or the root filesystem.
type Usage struct {
	Total uint64 `json:"total"`
	Used  uint64 `json:"used"`
	Free  uint64 `json:"free"`
}
