package api

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Error is the API's error envelope: {"error": Message, "details"?: ...}
// plus the keys some routes add (onboardingStatus, retryAfter, tunnel). The
// panel answers it with Status; the client returns it for every non-2xx
// answer. Compare with errors.Is against the variables below (or any
// *Error: a zero Status or empty Message in the target matches anything).
type Error struct {
	// Status is the HTTP status (not part of the body).
	Status int `json:"-"`

	// The body's keys, in the order the panel has always written them
	// (alphabetical).

	// Details depend on the route: ValidationDetails, ScopeDetails,
	// CapabilityDetails, HintDetails or a JSON string ("Failed to …"
	// answers). Decode them with DecodeDetails.
	Details json.RawMessage `json:"details,omitempty"`
	// Message is the "error" string, verbatim; clients match on it.
	Message string `json:"error"`
	// OnboardingStatus is sent with 503 "Onboarding not complete" and the
	// onboarding 409s.
	OnboardingStatus string `json:"onboardingStatus,omitempty"`
	// RetryAfter (seconds) is sent with the panel 2FA 429.
	RetryAfter int `json:"retryAfter,omitempty"`
	// Tunnel is sent with 409 "Agent panel tunnel already exists".
	Tunnel *Tunnel `json:"tunnel,omitempty"`
}

// Error returns the message and the status.
func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("%s (HTTP %d)", msg, e.Status)
}

// Is matches target when it is an *Error whose Status (if not zero) and
// Message (if not empty) equal e's.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	return (t.Status == 0 || t.Status == e.Status) && (t.Message == "" || t.Message == e.Message)
}

// NewError returns an error answered with status and {"error": msg}.
func NewError(status int, msg string) *Error { return &Error{Status: status, Message: msg} }

// WithDetails returns a copy of e with details encoded as JSON.
func (e *Error) WithDetails(details any) *Error {
	c := *e
	data, err := json.Marshal(details)
	if err != nil {
		data = nil // details are the panel's own values; they always encode
	}
	c.Details = data
	return &c
}

// DecodeDetails decodes e's details into v (a pointer); it reports false
// when there are none or they have another shape.
func (e *Error) DecodeDetails(v any) bool {
	return len(e.Details) > 0 && json.Unmarshal(e.Details, v) == nil
}

// DetailText returns string details ("Failed to …" answers), or "".
func (e *Error) DetailText() string {
	var s string
	if e.DecodeDetails(&s) {
		return s
	}
	return ""
}

// Issue is one schema validation failure: the path of object keys
// (strings) and array indices (numbers), and a human-readable message.
type Issue struct {
	Path    []any  `json:"path"`
	Message string `json:"message"`
}

// ValidationDetails are the details of 400 "Validation failed".
type ValidationDetails struct {
	Issues []Issue `json:"issues"`
}

// ScopeDetails are the details of 403 "Insufficient certificate scope".
type ScopeDetails struct {
	Required []string `json:"required"`
	Current  string   `json:"current"`
}

// CapabilityDetails are the details of 403 "Insufficient certificate
// capability".
type CapabilityDetails struct {
	Required Capability   `json:"required"`
	Granted  []Capability `json:"granted"`
}

// HintDetails are the details of errors that carry advice.
type HintDetails struct {
	Hint string `json:"hint"`
}

// Messages of the errors every route can answer.
const (
	MsgNotFound            = "Not found"
	MsgInternal            = "Internal server error"
	MsgInvalidJSON         = "Invalid JSON body"
	MsgUnsupportedMedia    = "Unsupported Media Type"
	MsgTooLarge            = "Request body is too large"
	MsgRateLimited         = "Rate limit exceeded, retry in 1 minute"
	MsgCrossOrigin         = "Cross-origin request refused"
	MsgTwoFARequired       = "2fa_required"
	MsgRevoked             = "Certificate has been revoked"
	MsgCertificateRequired = "mTLS certificate required"
	MsgOnboardingDone      = "Onboarding already completed"
	MsgOnboardingPending   = "Onboarding not complete"
	MsgValidation          = "Validation failed"
	MsgScope               = "Insufficient certificate scope"
	MsgCapability          = "Insufficient certificate capability"
)

// Targets for errors.Is.
var (
	ErrNotFound      = &Error{Status: http.StatusNotFound, Message: MsgNotFound}
	ErrTwoFARequired = &Error{Status: http.StatusUnauthorized, Message: MsgTwoFARequired}
	ErrRevoked       = &Error{Status: http.StatusForbidden, Message: MsgRevoked}
	// ErrCertificateRequired matches the panel's 403 and nginx's answer (400 or 496)
	// to a request without a valid client certificate.
	ErrCertificateRequired = &Error{Message: MsgCertificateRequired}
	ErrOnboardingPending   = &Error{Status: http.StatusServiceUnavailable, Message: MsgOnboardingPending}
	ErrValidation          = &Error{Status: http.StatusBadRequest, Message: MsgValidation}
	ErrScope               = &Error{Status: http.StatusForbidden, Message: MsgScope}
	ErrCapability          = &Error{Status: http.StatusForbidden, Message: MsgCapability}
	ErrRateLimited         = &Error{Status: http.StatusTooManyRequests}
)
