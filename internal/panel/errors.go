package panel

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/errkind"
)

// NewError returns an API error answered with status and {"error": msg}.
// Handlers return *api.Error values (as errors) to answer with their
// status; see statusOf for domain errors.
func NewError(status int, msg string) *api.Error { return api.NewError(status, msg) }

// Failed is the 500 a route anticipates: {"error": msg, "details": "<err>"}
// with details a plain string (docs/api.md, "Errors"). msg reads "Failed to …".
// Never pass an error whose text may hold a secret.
func Failed(msg string, err error) *api.Error {
	e := api.NewError(http.StatusInternalServerError, msg)
	if err != nil {
		e = e.WithDetails(err.Error())
	}
	return e
}

// Issue is the API's validation issue (api.Issue), the schema's failure
// record.
type Issue = api.Issue

// The fixed errors of the contract.
var (
	errNotFound          = api.ErrNotFound
	errInternal          = api.NewError(http.StatusInternalServerError, api.MsgInternal)
	errInvalidJSON       = api.NewError(http.StatusBadRequest, api.MsgInvalidJSON)
	errUnsupportedMedia  = api.NewError(http.StatusUnsupportedMediaType, api.MsgUnsupportedMedia)
	errTooLarge          = api.NewError(http.StatusRequestEntityTooLarge, api.MsgTooLarge)
	errRateLimited       = api.NewError(http.StatusTooManyRequests, api.MsgRateLimited)
	errCrossOrigin       = api.NewError(http.StatusForbidden, api.MsgCrossOrigin)
	errTwoFARequired     = api.ErrTwoFARequired
	errRevoked           = api.ErrRevoked
	errOnboardingDone    = api.NewError(http.StatusGone, api.MsgOnboardingDone)
	errCertificateNeeded = api.NewError(http.StatusForbidden, api.MsgCertificateRequired).WithDetails(api.HintDetails{
		Hint: "Access to the Portlama panel requires a valid client certificate.",
	})
)

// ValidationError is the 400 of docs/api.md, "Errors" with the given issues.
func ValidationError(issues ...api.Issue) *api.Error {
	for i := range issues {
		if issues[i].Path == nil {
			issues[i].Path = []any{}
		}
	}
	return api.NewError(http.StatusBadRequest, api.MsgValidation).WithDetails(api.ValidationDetails{Issues: issues})
}

func onboardingIncomplete(status string) *api.Error {
	e := api.NewError(http.StatusServiceUnavailable, api.MsgOnboardingPending)
	e.OnboardingStatus = status
	return e
}

// statuses maps the kinds of domain errors (internal/errkind) to HTTP
// statuses: the one place where a domain error becomes a status code.
var statuses = map[*errkind.Kind]int{
	errkind.Invalid:      http.StatusBadRequest,
	errkind.Unauthorized: http.StatusUnauthorized,
	errkind.Forbidden:    http.StatusForbidden,
	errkind.NotFound:     http.StatusNotFound,
	errkind.Conflict:     http.StatusConflict,
	errkind.Gone:         http.StatusGone,
	errkind.Failed:       http.StatusInternalServerError,
}

// statusOf returns the status of a domain error's kind, 0 for an error
// without one.
func statusOf(err error) int {
	if k := errkind.KindOf(err); k != nil {
		return statuses[k]
	}
	return 0
}

// apiError turns a handler's error into the answer: an *api.Error as it
// is; a domain error with a kind into its status and message (a field
// error becomes a validation issue on that field; a Failed error carries
// its cause as details); anything else is nil (500 Internal server error,
// logged by the caller).
func apiError(err error) *api.Error {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae
	}
	status := statusOf(err)
	if status == 0 {
		return nil
	}
	msg := errkind.Message(err)
	if field := errkind.FieldOf(err); field != "" && status == http.StatusBadRequest {
		return ValidationError(api.Issue{Path: []any{field}, Message: msg})
	}
	e := api.NewError(status, msg)
	if ke, ok := errkind.As(err); ok {
		switch {
		case ke.Detail != "":
			e = e.WithDetails(ke.Detail)
		case ke.Kind == errkind.Failed && ke.Cause != nil:
			e = e.WithDetails(ke.Cause.Error())
		}
	}
	return e
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

func writeError(w http.ResponseWriter, e *api.Error) { writeJSON(w, e.Status, e) }
