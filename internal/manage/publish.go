package manage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/portlama/portlama/internal/store"
)

// Publisher is the panel's one path for changing a daemon's state files:
// write, notify, wait for the acknowledgement (docs/api.md, "Changes in
// force"). Changes to one daemon are serialised, so the generation the
// daemon confirms is the one this change wrote, not a concurrent writer's.
//
// Apply's outcome is one of: nil (in force), a *NotConfirmedError (saved;
// the daemon applies it when it reads its files again — the API answers
// 200 with a warning), a *RejectedError (the files are restored to what
// they were and the daemon told again; the API answers 500), or the
// write's own error.
type Publisher struct {
	daemon string // e.g. "tunnel server"
	unit   string // e.g. "portlama-tunnel", for the warning
	files  []string
	notify func(ctx context.Context) error

	mu sync.Mutex
}

// NewPublisher returns the publisher of files to the daemon called daemon
// (run as unit); notify is its Client.Notify of those files.
func NewPublisher(daemon, unit string, notify func(ctx context.Context) error, files ...string) *Publisher {
	return &Publisher{daemon: daemon, unit: unit, files: files, notify: notify}
}

// Apply runs write (which changes some of the publisher's files), then has
// the daemon apply them and waits for its acknowledgement, bounded by the
// notifier's timeout.
func (p *Publisher) Apply(ctx context.Context, write func() error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	before, err := p.snapshot()
	if err != nil {
		return err
	}
	if err := write(); err != nil {
		return err
	}
	if p.unchanged(before) {
		return nil // nothing for the daemon to apply
	}
	err = p.notify(ctx)
	var re *RejectedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &re):
		// The daemon still serves the previous content: put it back on
		// disk so the files stay the source of truth, and say so again.
		bg := context.WithoutCancel(ctx)
		if rerr := p.restore(before); rerr != nil {
			return fmt.Errorf("%w; restoring the previous files failed too: %v", err, rerr)
		}
		p.notify(bg)
		return err
	case errors.Is(err, ErrNotConfirmed):
		return &NotConfirmedError{Daemon: p.daemon, Unit: p.unit, Err: err}
	default:
		return err
	}
}

// snapshot reads the files (nil for one that does not exist).
func (p *Publisher) snapshot() ([][]byte, error) {
	out := make([][]byte, len(p.files))
	for i, f := range p.files {
		data, err := os.ReadFile(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", f, err)
		}
		out[i] = data
	}
	return out, nil
}

func (p *Publisher) unchanged(before [][]byte) bool {
	now, err := p.snapshot()
	if err != nil {
		return false
	}
	for i := range now {
		if (now[i] == nil) != (before[i] == nil) || !bytes.Equal(now[i], before[i]) {
			return false
		}
	}
	return true
}

func (p *Publisher) restore(before [][]byte) error {
	var errs []error
	for i, f := range p.files {
		if before[i] == nil {
			if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		mode := os.FileMode(0o600)
		if fi, err := os.Stat(f); err == nil {
			mode = fi.Mode().Perm()
		}
		if err := store.WriteFileAtomic(f, before[i], mode); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// NotConfirmedError is a change that is saved but that the daemon did not
// confirm (not running, no answer in time). It wraps ErrNotConfirmed.
type NotConfirmedError struct {
	Daemon string
	Unit   string
	Err    error
}

func (e *NotConfirmedError) Error() string { return e.Err.Error() }
func (e *NotConfirmedError) Unwrap() error { return e.Err }

// Warning is the API's warning for the change.
func (e *NotConfirmedError) Warning() string {
	return fmt.Sprintf("Saved, but the %s did not confirm the change in time, so it may not be in force yet. "+
		"It applies it as soon as it runs again; check that %s is running.", e.Daemon, e.Unit)
}

// genericWarning is the warning of an unconfirmed change that did not
// come through a Publisher.
const genericWarning = "Saved, but a relay service did not confirm the change in time, so it may not be in force yet. Check that portlama-tunnel and portlama-auth are running."

// Warning splits a change's outcome: an unconfirmed change is no failure
// and comes back as the API's warning (err nil); any other error is
// returned as it is.
func Warning(err error) (warning string, rest error) {
	if err == nil {
		return "", nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		// errors.Join of several steps: a warning only when every step is
		// in force or unconfirmed.
		var ws []string
		for _, e := range j.Unwrap() {
			w, rest := Warning(e)
			if rest != nil {
				return "", err
			}
			ws = append(ws, w)
		}
		return JoinWarnings(ws...), nil
	}
	var nc *NotConfirmedError
	if errors.As(err, &nc) {
		return nc.Warning(), nil
	}
	if errors.Is(err, ErrNotConfirmed) {
		return genericWarning, nil
	}
	return "", err
}

// JoinWarnings joins the distinct non-empty warnings of the steps of one
// change.
func JoinWarnings(ws ...string) string {
	var out []string
	for _, w := range ws {
		if w == "" {
			continue
		}
		if !slices.Contains(out, w) {
			out = append(out, w)
		}
	}
	return strings.Join(out, " ")
}
