package api

// Certificate types in GET /api/certs.
const (
	CertLetsEncrypt = "letsencrypt"
	CertMTLSCA      = "mtls-ca"
	CertMTLSClient  = "mtls-client"
)

// Cert is an entry of GET /api/certs.
type Cert struct {
	Type            string  `json:"type"`
	Domain          *string `json:"domain"` // null for the PKI entries
	ExpiresAt       string  `json:"expiresAt"`
	DaysUntilExpiry int     `json:"daysUntilExpiry"`
	Path            string  `json:"path"`
	ExpiringSoon    bool    `json:"expiringSoon"`
}

// CertList answers GET /api/certs (by daysUntilExpiry).
type CertList struct {
	Certs []Cert `json:"certs"`
}

// AutoRenewStatus answers GET /api/certs/auto-renew-status (the renewal
// timer's state).
type AutoRenewStatus struct {
	Active  bool    `json:"active"`
	NextRun *string `json:"nextRun"`
	LastRun *string `json:"lastRun"`
}

// CertRenewed answers POST /api/certs/:domain/renew.
type CertRenewed struct {
	OK        bool    `json:"ok"`
	Domain    string  `json:"domain"`
	NewExpiry *string `json:"newExpiry"`
	Warning   string  `json:"warning,omitempty"`
}

// AdminRotation answers POST /api/certs/mtls/rotate.
type AdminRotation struct {
	OK          bool   `json:"ok"`
	P12Password string `json:"p12Password"`
	P12         string `json:"p12"` // base64 of the new client.p12
	ExpiresAt   string `json:"expiresAt"`
	Warning     string `json:"warning"`
}

// AdminAuthMode answers GET /api/certs/admin/auth-mode.
type AdminAuthMode struct {
	AdminAuthMode string `json:"adminAuthMode"` // always "p12"
}

// Agent enrollment methods.
const (
	MethodP12           = "p12"
	MethodHardwareBound = "hardware-bound"
)

// NewAgentRequest is the body of POST /api/certs/agent and
// POST /api/certs/agent/enroll. Capabilities default to ["tunnels:read"]
// and must contain it.
type NewAgentRequest struct {
	Label        string        `json:"label"`
	Capabilities *[]Capability `json:"capabilities,omitempty"`
	AllowedSites []string      `json:"allowedSites,omitempty"`
}

// AgentP12 answers POST /api/certs/agent.
type AgentP12 struct {
	OK          bool   `json:"ok"`
	Label       string `json:"label"`
	P12Password string `json:"p12Password"`
	Serial      string `json:"serial"`
	ExpiresAt   string `json:"expiresAt"`
}

// Agent is an entry of GET /api/certs/agent (revoked entries included).
type Agent struct {
	Label            string       `json:"label"`
	Serial           string       `json:"serial"`
	Capabilities     []Capability `json:"capabilities"`
	AllowedSites     []string     `json:"allowedSites"`
	EnrollmentMethod string       `json:"enrollmentMethod"`
	CreatedAt        string       `json:"createdAt"`
	ExpiresAt        string       `json:"expiresAt"`
	Revoked          bool         `json:"revoked"`
	RevokedAt        string       `json:"revokedAt,omitempty"`
	ExpiringSoon     bool         `json:"expiringSoon"`
	// Connected: the agent has a live tunnel session; ConnectedSince is
	// when the oldest one started. Absent for revoked agents and when the
	// tunnel server does not answer.
	Connected      *bool  `json:"connected,omitempty"`
	ConnectedSince string `json:"connectedSince,omitempty"`
}

// AgentList answers GET /api/certs/agent.
type AgentList struct {
	Agents []Agent `json:"agents"`
}

// AgentRevoked answers DELETE /api/certs/agent/:label.
type AgentRevoked struct {
	OK    bool   `json:"ok"`
	Label string `json:"label"`
	// Warning: the change is saved but a relay service did not confirm it
	// is in force yet (docs/api.md, "Changes in force").
	Warning string `json:"warning,omitempty"`
}

// CapabilitiesRequest is the body of PATCH
// /api/certs/agent/:label/capabilities.
type CapabilitiesRequest struct {
	Capabilities []Capability `json:"capabilities"`
}

// CapabilitiesResponse answers it (tunnels:read prepended when missing).
type CapabilitiesResponse struct {
	OK           bool         `json:"ok"`
	Label        string       `json:"label"`
	Capabilities []Capability `json:"capabilities"`
}

// AllowedSitesRequest is the body of PATCH
// /api/certs/agent/:label/allowed-sites.
type AllowedSitesRequest struct {
	AllowedSites []string `json:"allowedSites"`
}

// AllowedSitesResponse answers it.
type AllowedSitesResponse struct {
	OK           bool     `json:"ok"`
	Label        string   `json:"label"`
	AllowedSites []string `json:"allowedSites"`
}

// CSRRequest is the body of POST /api/certs/agent/upgrade-cert.
type CSRRequest struct {
	CSR string `json:"csr"` // PEM CERTIFICATE REQUEST
}

// Rekeyed answers POST /api/certs/agent/upgrade-cert.
type Rekeyed struct {
	OK        bool   `json:"ok"`
	Cert      string `json:"cert"`
	CACert    string `json:"caCert"`
	Serial    string `json:"serial"`
	ExpiresAt string `json:"expiresAt"`
}

// EnrollmentToken answers POST /api/certs/agent/enroll (valid 10 minutes).
type EnrollmentToken struct {
	OK        bool   `json:"ok"`
	Token     string `json:"token"`
	Label     string `json:"label"`
	ExpiresAt string `json:"expiresAt"`
	// PanelFingerprint is the SHA-256 fingerprint (AB:CD:… form) of the
	// self-signed certificate of https://<ip>:9292, for
	// `portlama-agent setup --panel-fingerprint` when the agent enrolls by
	// IP (an addition to the contract's shape; omitted when unreadable).
	PanelFingerprint string `json:"panelFingerprint,omitempty"`
}

// TokenRevoked answers DELETE /api/certs/agent/enroll/:label.
type TokenRevoked struct {
	OK      bool `json:"ok"`
	Revoked bool `json:"revoked"`
}

// EnrollRequest is the body of the public POST /api/enroll.
type EnrollRequest struct {
	Token string `json:"token"`
	CSR   string `json:"csr"`
}

// Enrolled answers POST /api/enroll.
type Enrolled struct {
	OK        bool   `json:"ok"`
	Cert      string `json:"cert"`
	CACert    string `json:"caCert"`
	Label     string `json:"label"`
	Serial    string `json:"serial"`
	ExpiresAt string `json:"expiresAt"`
}
