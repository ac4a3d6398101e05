package api

// The home app's control UI (portlama-agent ui, internal/homeui) serves
// these on 127.0.0.1 under /api/home/; docs/home.md lists the routes.

// HomeServer is one relay of the home app's registry (servers.json).
type HomeServer struct {
	ID string `json:"id"`
	// Kind is "agent" (this machine is enrolled; its tunnels run here) or
	// "admin" (an imported admin P12).
	Kind     string `json:"kind"`
	PanelURL string `json:"panelUrl"`
	AddedAt  string `json:"addedAt"`
	Current  bool   `json:"current"`
}

// HomeServerList answers GET /api/home/servers.
type HomeServerList struct {
	Servers []HomeServer `json:"servers"`
}

// HomeAddServerRequest is the body of POST /api/home/servers: enroll this
// machine with an enrollment token (the agent's setup flow).
type HomeAddServerRequest struct {
	Token    string `json:"token"`
	PanelURL string `json:"panelUrl"`
	// Label is the local name (default: the label the relay returns).
	Label string `json:"label,omitempty"`
	// PanelFingerprint pins the panel's certificate (SHA-256), as shown
	// with the token on the panel.
	PanelFingerprint string `json:"panelFingerprint,omitempty"`
}

// HomeSetupStep is one progress step of an enrollment.
type HomeSetupStep struct {
	Step    string `json:"step"`
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
}

// HomeAddServerResponse answers POST /api/home/servers (and, with the
// steps up to the failing one, its 4xx/5xx error details).
type HomeAddServerResponse struct {
	Server HomeServer      `json:"server"`
	Steps  []HomeSetupStep `json:"steps"`
}

// HomeImportP12Request is the body of POST /api/home/servers/import-p12.
type HomeImportP12Request struct {
	ID       string `json:"id"`
	PanelURL string `json:"panelUrl"`
	// P12 is the file, base64.
	P12      string `json:"p12"`
	Password string `json:"password"`
}

// HomeServerRemoved answers DELETE /api/home/servers/:id.
type HomeServerRemoved struct {
	OK bool `json:"ok"`
	// Revoked: the relay revoked this machine's agent certificate.
	Revoked bool   `json:"revoked"`
	Warning string `json:"warning,omitempty"`
}

// HomeService is an app discovered on this machine.
type HomeService struct {
	Port    int    `json:"port"`
	PID     int    `json:"pid,omitempty"`
	Process string `json:"process,omitempty"`
	HTTP    bool   `json:"http"`
	Status  int    `json:"status,omitempty"`
	Title   string `json:"title,omitempty"`
	AppID   string `json:"appId,omitempty"`
	AppName string `json:"appName,omitempty"`
	// Subdomain and Access are the suggestions for its tunnel.
	Subdomain string     `json:"subdomain"`
	Access    AccessMode `json:"access"`
	// Tunnel is the subdomain of the tunnel already serving this port.
	Tunnel string `json:"tunnel,omitempty"`
}

// HomeServiceList answers GET /api/home/services.
type HomeServiceList struct {
	Services []HomeService `json:"services"`
}

// HomeTunnel is a tunnel of the current server with its live state.
type HomeTunnel struct {
	Tunnel Tunnel `json:"tunnel"`
	// State is the runner's: connected, connecting, reconnecting, refused,
	// unverified; "disabled" for a disabled tunnel; "" when not running.
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
}

// HomeTunnelList answers GET /api/home/tunnels.
type HomeTunnelList struct {
	Tunnels []HomeTunnel `json:"tunnels"`
	// Connection is the runner's connection to the relay (connected,
	// connecting, reconnecting, unverified) and Error its last error.
	Connection string `json:"connection"`
	Error      string `json:"error,omitempty"`
}

// HomeLogs answers GET /api/home/logs: the newest lines last.
type HomeLogs struct {
	Lines []string `json:"lines"`
}

// HomeStatus answers GET /api/home/status.
type HomeStatus struct {
	Version string `json:"version"`
	// Server is the current server (absent when none is set up).
	Server *HomeServer `json:"server,omitempty"`
	// Keychain is the backend in use ("os", "file") or "" with
	// KeychainError saying why none is available.
	Keychain      string `json:"keychain"`
	KeychainError string `json:"keychainError,omitempty"`
}

// HomeLoginLink answers POST /api/home/login-link: a new one-time link
// (how `portlama-agent ui` opens the background service's UI).
type HomeLoginLink struct {
	URL string `json:"url"`
}

// HomeSetupFrame is one line of POST /api/home/servers answered as NDJSON
// (Accept: application/x-ndjson): a progress step as it happens, then
// either Done or Error.
type HomeSetupFrame struct {
	Step  *HomeSetupStep         `json:"step,omitempty"`
	Done  *HomeAddServerResponse `json:"done,omitempty"`
	Error string                 `json:"error,omitempty"`
}

// HomeCloudSize is a droplet size offered in a region.
type HomeCloudSize struct {
	Slug         string  `json:"slug"`
	MemoryMB     int     `json:"memoryMb"`
	VCPUs        int     `json:"vcpus"`
	DiskGB       int     `json:"diskGb"`
	PriceMonthly float64 `json:"priceMonthly"`
	PriceHourly  float64 `json:"priceHourly"`
}

// HomeCloudRegion is a region with its sizes, cheapest first.
type HomeCloudRegion struct {
	Slug  string          `json:"slug"`
	Name  string          `json:"name"`
	Sizes []HomeCloudSize `json:"sizes"`
	// Suggested is the cheapest size of at least 512 MB.
	Suggested string `json:"suggested"`
}

// HomeCloudOptions answers GET /api/home/cloud/options.
type HomeCloudOptions struct {
	Regions []HomeCloudRegion `json:"regions"`
}

// HomeCloudTokenRequest is the body of PUT /api/home/cloud/token.
type HomeCloudTokenRequest struct {
	Token string `json:"token"`
}

// HomeCloudAccount answers PUT /api/home/cloud/token.
type HomeCloudAccount struct {
	Email string `json:"email"`
}

// HomeProvisionRequest is the body of POST /api/home/cloud/provision.
type HomeProvisionRequest struct {
	Name   string `json:"name"`
	Region string `json:"region"`
	Size   string `json:"size"`
}

// HomeProvisionEvent is a progress event of the job.
type HomeProvisionEvent struct {
	Step string `json:"step"`
	// Status: running, done, failed, progress (a line of the install).
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
	// Task and TaskStatus are the installer's (Status progress).
	Task       string `json:"task,omitempty"`
	TaskStatus string `json:"taskStatus,omitempty"`
}

// HomeProvisionJob is the saved job (provision.json) as the UI shows it.
type HomeProvisionJob struct {
	Name   string `json:"name"`
	Region string `json:"region"`
	Size   string `json:"size"`
	// Step is the next step to run ("done" when finished).
	Step         string  `json:"step"`
	Error        string  `json:"error,omitempty"`
	DropletID    int     `json:"dropletId,omitempty"`
	IP           string  `json:"ip,omitempty"`
	PanelURL     string  `json:"panelUrl,omitempty"`
	PriceHourly  float64 `json:"priceHourly"`
	PriceMonthly float64 `json:"priceMonthly"`
	Port22Closed bool    `json:"port22Closed"`
}

// HomeCloud answers GET /api/home/cloud.
type HomeCloud struct {
	// TokenSaved: a DigitalOcean token is in the keychain.
	TokenSaved bool                 `json:"tokenSaved"`
	Steps      []string             `json:"steps"`
	Job        *HomeProvisionJob    `json:"job"`
	Running    bool                 `json:"running"`
	Events     []HomeProvisionEvent `json:"events"`
	// Error is the last run's failure: what happened, whether a droplet
	// exists and what it costs.
	Error string `json:"error,omitempty"`
}
