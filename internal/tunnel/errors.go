package tunnel

import (
	"errors"
	"fmt"
)

// Sentinel errors a *Error matches with errors.Is. They say what the agent
// should do next.
var (
	// ErrRefused: the relay answered and refused this agent: wrong or
	// revoked credentials, a certificate of another agent, or nginx
	// refused the client certificate. Refetch agent-config, then back off.
	ErrRefused = errors.New("tunnel server refused the connection")
	// ErrUnverified: the relay's TLS certificate or SSH key did not verify.
	// Never retry blindly: someone may be in the middle.
	ErrUnverified = errors.New("tunnel server could not be verified")
	// ErrUnreachable: the relay could not be reached (network, DNS, nginx
	// without a tunnel server behind it). Back off and retry.
	ErrUnreachable = errors.New("tunnel server unreachable")
	// ErrLost: an established session ended (network loss, relay restart,
	// keepalive timeout, the relay closed it). Back off and retry.
	ErrLost = errors.New("tunnel session lost")
)

// Kind classifies a *Error.
type Kind int

// Error kinds; each matches one sentinel error.
const (
	KindRefused Kind = iota + 1
	KindUnverified
	KindUnreachable
	KindLost
)

func (k Kind) sentinel() error {
	switch k {
	case KindRefused:
		return ErrRefused
	case KindUnverified:
		return ErrUnverified
	case KindUnreachable:
		return ErrUnreachable
	default:
		return ErrLost
	}
}

// String names the kind for logs and status files.
func (k Kind) String() string {
	switch k {
	case KindRefused:
		return "refused"
	case KindUnverified:
		return "unverified"
	case KindUnreachable:
		return "unreachable"
	case KindLost:
		return "lost"
	}
	return "unknown"
}

// Error is how the tunnel client reports a failed or ended session. Its
// fields are values to act on; Reason is for people.
type Error struct {
	Kind Kind
	// HTTPStatus is the status of a refused WebSocket upgrade (nginx's 400
	// or 495/496 for a missing, foreign or revoked client certificate, the
	// tunnel server's 403), or 0.
	HTTPStatus int
	// Reason says in plain words what happened.
	Reason string
	// Err is the underlying error, if any.
	Err error
}

func (e *Error) Error() string {
	msg := e.Kind.sentinel().Error() + ": " + e.Reason
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Is matches the sentinel of the error's kind.
func (e *Error) Is(target error) bool { return target == e.Kind.sentinel() }

func (e *Error) Unwrap() error { return e.Err }

func newError(k Kind, err error, format string, args ...any) *Error {
	return &Error{Kind: k, Reason: fmt.Sprintf(format, args...), Err: err}
}
