package api

// ServiceStatus is a managed service's state (docs/api.md, "Services and
// live logs"): every systemd state other than these three is "unknown".
type ServiceStatus string

// Service states.
const (
	ServiceActive   ServiceStatus = "active"
	ServiceInactive ServiceStatus = "inactive"
	ServiceFailed   ServiceStatus = "failed"
	ServiceUnknown  ServiceStatus = "unknown"
)

// ServiceAction is an action of POST /api/services/:name/:action.
type ServiceAction string

// Service actions.
const (
	ServiceStart   ServiceAction = "start"
	ServiceStop    ServiceAction = "stop"
	ServiceRestart ServiceAction = "restart"
	ServiceReload  ServiceAction = "reload"
)

// Service is one managed service in GET /api/services.
type Service struct {
	Name   string        `json:"name"`
	Status ServiceStatus `json:"status"`
	// Uptime is "2d 5h 30m", "5h 30m", "12m" or "45s" while the service
	// is active, else null.
	Uptime *string `json:"uptime"`
}

// ServiceList answers GET /api/services, in the order nginx,
// portlama-tunnel, portlama-auth, portlama-panel.
type ServiceList struct {
	Services []Service `json:"services"`
}

// ServiceActionResult answers POST /api/services/:name/:action.
type ServiceActionResult struct {
	OK     bool          `json:"ok"`
	Name   string        `json:"name"`
	Action ServiceAction `json:"action"`
}

// LogLine is one text frame of WS /api/services/:name/logs: the line's ISO
// timestamp ("" when it has none) and the rest of the line.
type LogLine struct {
	Timestamp string `json:"timestamp"`
	Message   string `json:"message"`
}
