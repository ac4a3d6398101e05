package errkind

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"
)

func TestKindsAndCauses(t *testing.T) {
	err := fmt.Errorf("update: %w", Wrap(Failed, fs.ErrPermission, "Failed to save"))
	if !errors.Is(err, Failed) || !errors.Is(err, fs.ErrPermission) {
		t.Fatal("kind or cause not matched")
	}
	if errors.Is(err, NotFound) {
		t.Fatal("another kind matched")
	}
	if Message(err) != "Failed to save" {
		t.Fatalf("message %q", Message(err))
	}
	e, ok := As(err)
	if !ok || e.Cause != fs.ErrPermission {
		t.Fatalf("As: %v %v", e, ok)
	}
	if got := New(NotFound, "Tunnel %s", "x").Error(); got != "Tunnel x" {
		t.Fatalf("Error() = %q", got)
	}
	if f, _ := As(Field("label", "bad")); f.Field != "label" || !errors.Is(f, Invalid) {
		t.Fatalf("Field: %+v", f)
	}
	if Message(errors.New("plain")) != "plain" {
		t.Fatal("plain message")
	}
}

type fieldErr struct{}

func (fieldErr) Error() string      { return "bad capability" }
func (fieldErr) ErrorField() string { return "capabilities" }
func (fieldErr) Unwrap() error      { return Invalid }

func TestSentinelFieldAndKindOf(t *testing.T) {
	errUsed := Sentinel(Unauthorized, "Token has already been used")
	wrapped := fmt.Errorf("enroll: %w", errUsed)
	if !errors.Is(wrapped, errUsed) || !errors.Is(wrapped, Unauthorized) || KindOf(wrapped) != Unauthorized {
		t.Fatal("sentinel kind not matched")
	}
	if Message(errUsed) != "Token has already been used" {
		t.Fatalf("message %q", Message(errUsed))
	}
	if FieldOf(fieldErr{}) != "capabilities" || KindOf(fieldErr{}) != Invalid {
		t.Fatal("Fielder not recognised")
	}
	if KindOf(errors.New("x")) != nil || FieldOf(errors.New("x")) != "" {
		t.Fatal("plain error has a kind or field")
	}
	same := &Error{Kind: Conflict, Message: "exists", Cause: errors.New("exists")}
	if same.Error() != "exists" {
		t.Fatalf("repeated cause text: %q", same.Error())
	}
}
