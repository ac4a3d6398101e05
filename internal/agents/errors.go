package agents

import (
	"errors"
	"fmt"

	"github.com/portlama/portlama/internal/errkind"
	"github.com/portlama/portlama/internal/pki"
)

// Errors of token enrollment. Their messages are the contract's 401 error
// strings (docs/api.md, "Enrollment") and are returned to clients verbatim.
var (
	ErrInvalidToken = errkind.Sentinel(errkind.Unauthorized, "Invalid enrollment token")
	ErrTokenUsed    = errkind.Sentinel(errkind.Unauthorized, "Enrollment token has already been used")
	ErrTokenExpired = errkind.Sentinel(errkind.Unauthorized, "Enrollment token has expired")
)

// Kinds of *LabelError, for errors.Is.
var (
	// ErrExists: a non-revoked agent with the label exists (409).
	ErrExists = errkind.Sentinel(errkind.Conflict, "agent certificate already exists")
	// ErrNotFound: no non-revoked agent with the label (404).
	ErrNotFound = errkind.Sentinel(errkind.NotFound, "agent certificate not found")
	// ErrInvalidLabel: the label breaks the agent label rule (400).
	ErrInvalidLabel = errkind.Sentinel(errkind.Invalid, "invalid agent label")
)

// LabelError is an error about one agent label. errors.Is(err, ErrExists /
// ErrNotFound / ErrInvalidLabel) tells the kind; Error() is the contract's
// message, e.g. `Agent certificate with label "home" already exists` or
// `Agent certificate "home" not found`.
type LabelError struct {
	Label string
	Err   error
}

func (e *LabelError) Error() string {
	switch e.Err {
	case ErrExists:
		return `Agent certificate with label "` + e.Label + `" already exists`
	case ErrNotFound:
		return `Agent certificate "` + e.Label + `" not found`
	case ErrInvalidLabel:
		return fmt.Sprintf("Invalid agent label %q: use 1-50 characters a-z, 0-9 and '-', starting with a letter or digit", e.Label)
	}
	return fmt.Sprintf("agent %q: %v", e.Label, e.Err)
}

func (e *LabelError) Unwrap() error { return e.Err }

// ErrorField names the request field of an invalid label.
func (e *LabelError) ErrorField() string {
	if e.Err == ErrInvalidLabel {
		return "label"
	}
	return ""
}

func labelErr(label string, kind error) error { return &LabelError{Label: label, Err: kind} }

// wrap adds what was being done to err, except for the errors whose message
// is returned to clients as is.
func wrap(op string, err error) error {
	var le *LabelError
	var ce *CapabilityError
	var csr *pki.CSRError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &le), errors.As(err, &ce), errors.As(err, &csr),
		errors.Is(err, ErrInvalidToken), errors.Is(err, ErrTokenUsed), errors.Is(err, ErrTokenExpired):
		return err
	}
	return fmt.Errorf("%s: %w", op, err)
}
