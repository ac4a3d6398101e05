package nginx

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/store"
	"github.com/portlama/portlama/internal/validate"
)

// TestError is returned when "nginx -t" fails after a change; the change
// has been rolled back. Its message is the contract's (§19.5):
// "Nginx config test failed after writing vhost for <fqdn>: <output>".
type TestError struct {
	Action string // "writing vhost for <fqdn>", "removing vhost <name>", ...
	Output string // nginx's output
}

func (e *TestError) Error() string {
	return "Nginx config test failed after " + e.Action + ": " + e.Output
}

// Manager writes Portlama's nginx files and keeps nginx serving: every
// change is tested with the Controller and rolled back when the test (or
// the reload) fails (contract §19.5). One lock serialises all changes made
// through a Manager; use one Manager per process.
type Manager struct {
	layout config.Layout
	ctl    Controller
	log    *slog.Logger
	mu     sync.Mutex
}

// NewManager returns a Manager for the nginx directories of l. A nil logger
// discards messages.
func NewManager(l config.Layout, ctl Controller, log *slog.Logger) *Manager {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{layout: l, ctl: ctl, log: log}
}

// Controller returns the Manager's controller.
func (m *Manager) Controller() Controller { return m.ctl }

func (m *Manager) availablePath(name string) string {
	return filepath.Join(m.layout.NginxSitesAvailable(), name)
}

func (m *Manager) enabledPath(name string) string {
	return filepath.Join(m.layout.NginxSitesEnabled(), name)
}

// VhostEnabled reports whether sites-enabled holds an entry for name.
func (m *Manager) VhostEnabled(name string) (bool, error) {
	if err := ValidVhostName(name); err != nil {
		return false, err
	}
	_, err := os.Lstat(m.enabledPath(name))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// VhostExists reports whether sites-available holds the file name.
func (m *Manager) VhostExists(name string) (bool, error) {
	if err := ValidVhostName(name); err != nil {
		return false, err
	}
	_, err := os.Stat(m.availablePath(name))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// WriteVhost installs sites-available/<name> with content, links it into
// sites-enabled, tests and reloads. A failing test restores the previous
// file and link and returns a *TestError; a failing reload rolls back the
// same way.
func (m *Manager) WriteVhost(ctx context.Context, name, fqdn string, content []byte) error {
	return m.Apply(ctx, Vhost{Name: name, FQDN: fqdn, Content: content})
}

// Apply writes and enables (or, with Vhost.Disabled, writes and disables)
// several vhosts and tests once (provisioning).
// On failure every file and link is restored before the error is returned.
func (m *Manager) Apply(ctx context.Context, vhosts ...Vhost) error {
	if len(vhosts) == 0 {
		return nil
	}
	var fqdns []string
	for _, v := range vhosts {
		if err := ValidVhostName(v.Name); err != nil {
			return err
		}
		if err := validate.FQDN(v.FQDN); err != nil && v.FQDN != "*" {
			return fmt.Errorf("vhost %s: %w", v.Name, err)
		}
		if len(v.Content) == 0 {
			return fmt.Errorf("vhost %s: empty content", v.Name)
		}
		fqdns = append(fqdns, v.FQDN)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	t := &tx{log: m.log}
	for _, v := range vhosts {
		if err := m.writeVhost(t, v); err != nil {
			return t.fail(err)
		}
	}
	return m.testReload(ctx, t, "writing vhost for "+strings.Join(fqdns, ", "))
}

// RemoveVhost deletes the link, the file and any backup of name, tests and
// reloads. When the test or the reload fails the vhost is restored and the
// error returned, so the caller can keep its state. Removing a vhost that
// does not exist is a no-op.
func (m *Manager) RemoveVhost(ctx context.Context, name string) error {
	if err := ValidVhostName(name); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	t := &tx{log: m.log}
	for _, p := range []string{m.enabledPath(name), m.availablePath(name), m.availablePath(name) + ".bak"} {
		if err := t.remove(p); err != nil {
			return t.fail(err)
		}
	}
	if !t.changed {
		return nil
	}
	return m.testReload(ctx, t, "removing vhost "+name)
}

// EnableVhost links an existing sites-available/<name> into sites-enabled,
// tests (removing the link again on failure) and reloads.
func (m *Manager) EnableVhost(ctx context.Context, name string) error {
	if err := ValidVhostName(name); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := os.Stat(m.availablePath(name)); err != nil {
		return fmt.Errorf("enable vhost %s: %w", name, err)
	}
	t := &tx{log: m.log}
	if err := t.link(m.enabledPath(name), m.availablePath(name)); err != nil {
		return t.fail(err)
	}
	if !t.changed {
		return nil
	}
	return m.testReload(ctx, t, "enabling vhost "+name)
}

// DisableVhost removes sites-enabled/<name> only, tests (restoring the
// link on failure) and reloads.
func (m *Manager) DisableVhost(ctx context.Context, name string) error {
	if err := ValidVhostName(name); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	t := &tx{log: m.log}
	if err := t.remove(m.enabledPath(name)); err != nil {
		return t.fail(err)
	}
	if !t.changed {
		return nil
	}
	return m.testReload(ctx, t, "disabling vhost "+name)
}

// WriteShared installs the installer's pieces (conf.d, snippets, cert-help
// page, and the http, default and panel-ip vhosts, enabled unless
// Vhost.Disabled), removes
// Debian's sites-enabled/default, tests once and reloads; on failure
// everything is restored.
func (m *Manager) WriteShared(ctx context.Context, s Shared) error {
	for _, v := range s.Vhosts {
		if err := ValidVhostName(v.Name); err != nil {
			return err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	t := &tx{log: m.log}
	for _, f := range s.Files {
		if err := t.writeFile(f.Path, f.Content, f.Mode); err != nil {
			return t.fail(err)
		}
	}
	for _, v := range s.Vhosts {
		if err := m.writeVhost(t, v); err != nil {
			return t.fail(err)
		}
	}
	if err := t.remove(filepath.Join(m.layout.NginxSitesEnabled(), "default")); err != nil {
		return t.fail(err)
	}
	return m.testReload(ctx, t, "writing the shared configuration")
}

// TestAndReload tests the configuration and reloads nginx (after a CRL or
// certificate change).
func (m *Manager) TestAndReload(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if out, err := m.ctl.Test(ctx); err != nil {
		return &TestError{Action: "updating certificates", Output: out}
	}
	return m.ctl.Reload(ctx)
}

// writeVhost writes v into sites-available and links it, or removes its
// link when v.Disabled.
func (m *Manager) writeVhost(t *tx, v Vhost) error {
	if err := t.writeFile(m.availablePath(v.Name), v.Content, 0o644); err != nil {
		return err
	}
	if v.Disabled {
		return t.remove(m.enabledPath(v.Name))
	}
	return t.link(m.enabledPath(v.Name), m.availablePath(v.Name))
}

// testReload finishes a transaction: test, reload, drop backups; or roll
// back.
func (m *Manager) testReload(ctx context.Context, t *tx, action string) error {
	if out, err := m.ctl.Test(ctx); err != nil {
		m.log.Warn("nginx config test failed; rolling back", "action", action, "output", out)
		return t.fail(&TestError{Action: action, Output: out})
	}
	if err := m.ctl.Reload(ctx); err != nil {
		m.log.Warn("nginx reload failed; rolling back", "action", action, "err", err)
		return t.fail(err)
	}
	t.commit()
	return nil
}

// tx records file system changes so they can be undone.
type tx struct {
	log     *slog.Logger
	undo    []func() error
	commits []func()
	changed bool
}

// fail rolls back and returns err.
func (t *tx) fail(err error) error {
	for i := len(t.undo) - 1; i >= 0; i-- {
		if uerr := t.undo[i](); uerr != nil {
			t.log.Error("nginx rollback step failed", "err", uerr)
			err = fmt.Errorf("%w (rollback incomplete: %v)", err, uerr)
		}
	}
	t.undo = nil
	return err
}

func (t *tx) commit() {
	for _, f := range t.commits {
		f()
	}
}

// writeFile backs up an existing path to <path>.bak, then replaces it
// atomically with mode.
func (t *tx) writeFile(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	old, err := os.ReadFile(path)
	switch {
	case err == nil:
		st, serr := os.Stat(path)
		if serr != nil {
			return fmt.Errorf("stat %s: %w", path, serr)
		}
		bak := path + ".bak"
		if err := store.WriteFileAtomic(bak, old, st.Mode().Perm()); err != nil {
			return fmt.Errorf("back up %s: %w", path, err)
		}
		t.undo = append(t.undo, func() error { return os.Rename(bak, path) })
		t.commits = append(t.commits, func() { _ = os.Remove(bak) })
	case errors.Is(err, fs.ErrNotExist):
		t.undo = append(t.undo, func() error { return ignoreMissing(os.Remove(path)) })
	default:
		return fmt.Errorf("read %s: %w", path, err)
	}
	t.changed = true
	if err := store.WriteFileAtomic(path, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// link makes path a symlink to target.
func (t *tx) link(path, target string) error {
	if cur, err := os.Readlink(path); err == nil && cur == target {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	if err := t.remove(path); err != nil {
		return err
	}
	if err := os.Symlink(target, path); err != nil {
		return fmt.Errorf("link %s: %w", path, err)
	}
	t.changed = true
	t.undo = append(t.undo, func() error { return ignoreMissing(os.Remove(path)) })
	return nil
}

// remove deletes path (a file or a symlink), remembering how to restore it.
func (t *tx) remove(path string) error {
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	var restore func() error
	if st.Mode()&fs.ModeSymlink != 0 {
		target, err := os.Readlink(path)
		if err != nil {
			return fmt.Errorf("read link %s: %w", path, err)
		}
		restore = func() error { return os.Symlink(target, path) }
	} else {
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		mode := st.Mode().Perm()
		restore = func() error { return store.WriteFileAtomic(path, data, mode) }
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	t.changed = true
	t.undo = append(t.undo, restore)
	return nil
}

func ignoreMissing(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
