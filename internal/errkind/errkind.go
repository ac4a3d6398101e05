// Package errkind gives domain errors a kind that callers check with
// errors.Is, so that the panel maps domain errors to HTTP statuses in one
// place (internal/panel, statusOf) and nothing is classified by error text.
//
// A domain package returns New(kind, msg) for a refusal whose message the
// API shows as it is (the contract's wording), or Wrap(kind, cause, msg)
// when a cause is kept for errors.Is/As and for the "details" of a 500:
//
//	return errkind.New(errkind.NotFound, "Tunnel not found")
//	return errkind.Wrap(errkind.Failed, fmt.Errorf("certificate: %w", err), "Failed to create tunnel")
//
//	errors.Is(err, errkind.NotFound) // true
//	errkind.Message(err)             // "Tunnel not found"
package errkind

import (
	"errors"
	"fmt"
)

// Kind classifies an error. The kinds are the variables below; compare
// with errors.Is(err, errkind.NotFound).
type Kind struct{ name string }

func (k *Kind) Error() string { return k.name }

// The kinds, with the HTTP status the panel answers for each.
var (
	Invalid      = &Kind{"invalid"}      // 400: the request breaks a rule
	Unauthorized = &Kind{"unauthorized"} // 401: a credential (token, code) is wrong
	Forbidden    = &Kind{"forbidden"}    // 403: the caller may not do this
	NotFound     = &Kind{"not found"}    // 404
	Conflict     = &Kind{"conflict"}     // 409: the state does not allow it
	Gone         = &Kind{"gone"}         // 410: it existed, but no longer applies
	Failed       = &Kind{"failed"}       // 500 with the cause as details: an anticipated failure
)

// Error is a domain error: a kind, the message the API shows, the field it
// concerns (answered as a validation issue on that field), details for the
// API and the cause. For Failed errors without Detail the API's details
// are the cause's text.
type Error struct {
	Kind    *Kind
	Message string
	Field   string // optional: the request field the error is about
	Detail  string // optional: the API's "details" string
	Cause   error
}

// Error returns the message, and the cause's text after a colon.
func (e *Error) Error() string {
	if e.Cause != nil && e.Cause.Error() != e.Message {
		return e.Message + ": " + e.Cause.Error()
	}
	return e.Message
}

// Unwrap returns the kind and the cause, so errors.Is matches both.
func (e *Error) Unwrap() []error {
	if e.Cause != nil {
		return []error{e.Kind, e.Cause}
	}
	return []error{e.Kind}
}

// New returns an error of kind k with a formatted message.
func New(k *Kind, format string, args ...any) error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}

// Field returns an Invalid error about one request field.
func Field(field, format string, args ...any) error {
	return &Error{Kind: Invalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an error of kind k with a formatted message and a cause.
func Wrap(k *Kind, cause error, format string, args ...any) error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...), Cause: cause}
}

// Sentinel returns an error with the given text that matches kind k under
// errors.Is, for a package's sentinel errors (errors.Is(err, pkg.ErrX)
// keeps working, and so does errors.Is(err, errkind.NotFound)).
func Sentinel(k *Kind, text string) error { return &sentinel{kind: k, text: text} }

type sentinel struct {
	kind *Kind
	text string
}

func (s *sentinel) Error() string { return s.text }
func (s *sentinel) Unwrap() error { return s.kind }

// Fielder is implemented by domain error types that concern one request
// field (the API answers them as a validation issue on that field).
type Fielder interface {
	ErrorField() string
}

// FieldOf returns the request field err concerns, or "".
func FieldOf(err error) string {
	if e, ok := As(err); ok && e.Field != "" {
		return e.Field
	}
	var f Fielder
	if errors.As(err, &f) {
		return f.ErrorField()
	}
	return ""
}

// KindOf returns the kind of err, or nil when it has none.
func KindOf(err error) *Kind {
	for _, k := range []*Kind{Invalid, Unauthorized, Forbidden, NotFound, Conflict, Gone, Failed} {
		if errors.Is(err, k) {
			return k
		}
	}
	return nil
}

// As returns the outermost *Error in err's chain.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// Message returns the message of the outermost *Error in err's chain, or
// err's text when there is none.
func Message(err error) string {
	if e, ok := As(err); ok {
		return e.Message
	}
	return err.Error()
}
