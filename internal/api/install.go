package api

// InstallStatus is the status of an InstallEvent.
type InstallStatus = string

// Statuses of InstallEvent.
const (
	InstallRunning InstallStatus = "running"
	InstallDone    InstallStatus = "done"
	InstallSkipped InstallStatus = "skipped"
	InstallFailed  InstallStatus = "failed"
	InstallSummary InstallStatus = "summary"
)

// InstallEvent is one progress report of `portlama install --json` (one
// NDJSON line). The home app's cloud provisioning reads them over SSH.
type InstallEvent struct {
	Time    string         `json:"time"`
	Task    string         `json:"task,omitempty"`
	Title   string         `json:"title,omitempty"`
	Status  InstallStatus  `json:"status"`
	Changed bool           `json:"changed,omitempty"`
	Message string         `json:"message,omitempty"`
	Error   string         `json:"error,omitempty"`
	Summary *InstallResult `json:"summary,omitempty"`
}

// InstallResult is what the installer tells the user at the end (the
// summary event).
type InstallResult struct {
	IP              string `json:"ip"`
	PanelURL        string `json:"panelUrl"`
	P12Path         string `json:"p12Path"`
	P12PasswordPath string `json:"p12PasswordPath"`
	SCP             string `json:"scp"`
	Next            string `json:"next"`
}
