package api

import "encoding/json"

// Provisioning task states (the snapshot's tasks[].status).
const (
	TaskPending = "pending"
	TaskRunning = "running"
	TaskDone    = "done"
	TaskError   = "error"
)

// ProvisionStarted answers POST /api/onboarding/provision (202).
type ProvisionStarted struct {
	OK      bool   `json:"ok"`
	Message string `json:"message"` // "Provisioning started"
}

// ProvisionProgress counts finished tasks, plus one while a task runs.
type ProvisionProgress struct {
	Current int `json:"current"`
	Total   int `json:"total"`
}

// ProvisionTask is one task in the snapshot frame.
type ProvisionTask struct {
	ID      string  `json:"id"`
	Title   string  `json:"title"`
	Status  string  `json:"status"` // pending, running, done, error
	Message string  `json:"message"`
	Log     *string `json:"log"`
}

// ProvisionTaskError is the snapshot's error: the failed task and why.
type ProvisionTaskError struct {
	Task    string `json:"task"`
	Message string `json:"message"`
}

// ProvisionResult is the outcome of a finished provisioning. The admin
// password is shown once: it is null in snapshots taken five seconds after
// the job ended.
type ProvisionResult struct {
	AdminUsername string  `json:"adminUsername"`
	AdminPassword *string `json:"adminPassword"`
	PanelURL      string  `json:"panelUrl"`
	AuthURL       string  `json:"authUrl"`
}

// ProvisionState is the snapshot frame the provisioning WebSocket sends on
// connect ("type":"state").
type ProvisionState struct {
	Type      string              `json:"type"` // "state"
	IsRunning bool                `json:"isRunning"`
	Tasks     []ProvisionTask     `json:"tasks"`
	Error     *ProvisionTaskError `json:"error"`
	Result    *ProvisionResult    `json:"result"`
}

// ProvisionProgressEvent is the frame sent when a task starts
// ("running") and when it finishes ("done").
type ProvisionProgressEvent struct {
	Task     string            `json:"task"`
	Title    string            `json:"title"`
	Status   string            `json:"status"`
	Message  string            `json:"message"`
	Log      *string           `json:"log"`
	Progress ProvisionProgress `json:"progress"`
}

// ProvisionCompleteEvent is the last frame of a successful run
// ("task":"complete").
type ProvisionCompleteEvent struct {
	Task     string            `json:"task"`   // "complete"
	Status   string            `json:"status"` // "done"
	Message  string            `json:"message"`
	Result   ProvisionResult   `json:"result"`
	Progress ProvisionProgress `json:"progress"`
}

// ProvisionFailureEvent is the last frame of a failed run.
type ProvisionFailureEvent struct {
	Task     string            `json:"task"`    // the failed task's id, or "unknown"
	Status   string            `json:"status"`  // "error"
	Message  string            `json:"message"` // "Failed: <title>"
	Error    string            `json:"error"`
	Progress ProvisionProgress `json:"progress"`
}

// ProvisionFrame is any frame of the provisioning WebSocket, decoded: the
// fields of every frame type, so a client reads one type and looks at
// Type (snapshot), Task and Status.
type ProvisionFrame struct {
	Type      string             `json:"type,omitempty"`
	IsRunning bool               `json:"isRunning,omitempty"`
	Tasks     []ProvisionTask    `json:"tasks,omitempty"`
	Task      string             `json:"task,omitempty"`
	Title     string             `json:"title,omitempty"`
	Status    string             `json:"status,omitempty"`
	Message   string             `json:"message,omitempty"`
	Log       *string            `json:"log,omitempty"`
	Error     json.RawMessage    `json:"error,omitempty"` // string in a failure, object or null in a snapshot
	Result    *ProvisionResult   `json:"result,omitempty"`
	Progress  *ProvisionProgress `json:"progress,omitempty"`
}

// Provisioning frame constants.
const (
	FrameState       = "state"
	TaskComplete     = "complete"
	MsgProvisioned   = "Provisioning complete"
	MsgProvisionBusy = "Provisioning already in progress"
	MsgNeedDNS       = "DNS must be verified before provisioning"
)
