package api

// The auth server's JSON login API on https://auth.<d> (Authelia's, kept
// for its clients).

// FirstFactorRequest is the body of POST /api/firstfactor.
type FirstFactorRequest struct {
	Username       string `json:"username"`
	Password       string `json:"password"`
	KeepMeLoggedIn bool   `json:"keepMeLoggedIn"`
	TargetURL      string `json:"targetURL"`
	RequestMethod  string `json:"requestMethod"`
}

// TOTPRequest is the body of POST /api/secondfactor/totp.
type TOTPRequest struct {
	Token     string `json:"token"` // six digits
	TargetURL string `json:"targetURL"`
}

// PortalStatus is the auth server's answer envelope: {"status":"OK"|"KO",
// "message"?}.
type PortalStatus struct {
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

// PortalCookieName is the auth server's login session cookie
// (Domain=<d>).
const PortalCookieName = "portlama_session"
