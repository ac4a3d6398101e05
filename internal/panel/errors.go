package panel

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Error is an API error answered with the envelope of contract §2.2:
// {"error": Message, "details"?: Details, <Extra keys>...}. Handlers return
// it (as an error) to answer with Status.
type Error struct {
	Status  int
	Message string
	Details any            // omitted when nil
	Extra   map[string]any // extra top-level keys a route names, e.g. onboardingStatus
}

// Error returns the message and status.
func (e *Error) Error() string { return fmt.Sprintf("%d %s", e.Status, e.Message) }

// NewError returns an error answered with status and {"error": msg}.
func NewError(status int, msg string) *Error { return &Error{Status: status, Message: msg} }

// WithDetails returns a copy of e with details set.
func (e *Error) WithDetails(details any) *Error {
	c := *e
	c.Details = details
	return &c
}

// With returns a copy of e with an extra top-level key.
func (e *Error) With(key string, value any) *Error {
	c := *e
	c.Extra = make(map[string]any, len(e.Extra)+1)
	for k, v := range e.Extra {
		c.Extra[k] = v
	}
	c.Extra[key] = value
	return &c
}

// Failed is the 500 a route anticipates: {"error": msg, "details": "<err>"}
// with details a plain string (contract §2.2). msg reads "Failed to …".
// Never pass an error whose text may hold a secret.
func Failed(msg string, err error) *Error {
	e := &Error{Status: http.StatusInternalServerError, Message: msg}
	if err != nil {
		e.Details = err.Error()
	}
	return e
}

// MarshalJSON encodes the envelope.
func (e *Error) MarshalJSON() ([]byte, error) {
	m := make(map[string]any, len(e.Extra)+2)
	for k, v := range e.Extra {
		m[k] = v
	}
	m["error"] = e.Message
	if e.Details != nil {
		m["details"] = e.Details
	}
	return json.Marshal(m)
}

// Issue is one schema validation failure: the path of object keys and
// array indices, and a human-readable message.
type Issue struct {
	Path    []any  `json:"path"`
	Message string `json:"message"`
}

// The fixed errors of the contract.
var (
	errNotFound          = NewError(http.StatusNotFound, "Not found")
	errInternal          = NewError(http.StatusInternalServerError, "Internal server error")
	errInvalidJSON       = NewError(http.StatusBadRequest, "Invalid JSON body")
	errUnsupportedMedia  = NewError(http.StatusUnsupportedMediaType, "Unsupported Media Type")
	errTooLarge          = NewError(http.StatusRequestEntityTooLarge, "Request body is too large")
	errRateLimited       = NewError(http.StatusTooManyRequests, "Rate limit exceeded, retry in 1 minute")
	errCrossOrigin       = NewError(http.StatusForbidden, "Cross-origin request refused")
	errTwoFARequired     = NewError(http.StatusUnauthorized, "2fa_required")
	errRevoked           = NewError(http.StatusForbidden, "Certificate has been revoked")
	errOnboardingDone    = NewError(http.StatusGone, "Onboarding already completed")
	errCertificateNeeded = NewError(http.StatusForbidden, "mTLS certificate required").WithDetails(map[string]string{
		"hint": "Access to the Portlama panel requires a valid client certificate.",
	})
)

// ValidationError is the 400 of contract §2.2 with the given issues.
func ValidationError(issues ...Issue) *Error {
	for i := range issues {
		if issues[i].Path == nil {
			issues[i].Path = []any{}
		}
	}
	return NewError(http.StatusBadRequest, "Validation failed").WithDetails(map[string]any{"issues": issues})
}

func onboardingIncomplete(status string) *Error {
	return NewError(http.StatusServiceUnavailable, "Onboarding not complete").With("onboardingStatus", status)
}

// writeJSON answers with status and v encoded as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		data = []byte(`{"error":"Internal server error"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(append(data, '\n'))
}

func writeError(w http.ResponseWriter, e *Error) { writeJSON(w, e.Status, e) }
