package nginx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/store"
	"github.com/portlama/portlama/internal/validate"
)

// TestError is returned when "nginx -t" fails after a change; the change
// has been rolled back. Its message is the one in docs/architecture.md, "Safe write, test, reload and rollback":
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
// the reload) fails (docs/architecture.md, "Safe write, test, reload and rollback").
//
// Changes are committed in groups: a change that arrives while a test and
// reload runs waits for it and then shares the next one with every other
// change that arrived meanwhile, so a burst of changes costs a few reloads
// (each reload starts new workers while the old ones drain), never one
// each, and no change waits for a fixed delay. Every method returns once a
// reload that includes its change is done, or with the error that kept the
// change out: when the group's test fails, the changes are retried one at a
// time and only those that break the configuration are rolled back and
// fail. Across processes (the renewal timer runs `portlama certs renew`)
// changes are serialised by a lock file in sites-available.
type Manager struct {
	layout config.Layout
	ctl    Controller
	log    *slog.Logger

	mu      sync.Mutex
	queue   []*change
	running bool

	// Test hooks: lockWait runs when a group waits for another holder of
	// the lock file, queued after a change joins the queue.
	lockWait func()
	queued   func()
}

// commitTimeout bounds one group's lock wait, test and reload.
const commitTimeout = 2 * time.Minute

// lockName is the lock file in sites-available (nginx includes only
// sites-enabled).
const lockName = ".portlama.lock"

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

// routePath is where a vhost's route is kept (sites-available/<name>.route;
// never read by nginx itself), routeLink its link into the routes
// directory the shared wildcard server includes.
func (m *Manager) routePath(name string) string { return m.availablePath(name) + routeSuffix }

func (m *Manager) routeLink(name string) string {
	return filepath.Join(RoutesDir(m.layout.NginxSitesEnabled()), name)
}

// routeSuffix names a route file in sites-available.
const routeSuffix = ".route"

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
// several vhosts as one change (provisioning): on failure every file and
// link is restored before the error is returned.
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
		// The shared wildcard server comes with every app it serves; the
		// message names the app.
		if v.Name != AppsVhost || len(vhosts) == 1 {
			fqdns = append(fqdns, v.FQDN)
		}
	}
	if len(fqdns) > 3 { // the panel's rewrite at start carries every vhost
		fqdns = append(fqdns[:3:3], fmt.Sprintf("%d more", len(fqdns)-3))
	}
	return m.submit(ctx, &change{action: "writing vhost for " + strings.Join(fqdns, ", "), stage: func(t *tx) error {
		for _, v := range vhosts {
			if err := m.writeVhost(t, v); err != nil {
				return err
			}
		}
		return nil
	}})
}

// RemoveVhost deletes the link, the file and any backup of name, tests and
// reloads. When the test or the reload fails the vhost is restored and the
// error returned, so the caller can keep its state. Removing a vhost that
// does not exist is a no-op.
func (m *Manager) RemoveVhost(ctx context.Context, name string) error {
	if err := ValidVhostName(name); err != nil {
		return err
	}
	return m.submit(ctx, &change{action: "removing vhost " + name, stage: func(t *tx) error {
		for _, p := range []string{m.routeLink(name), m.routePath(name), m.routePath(name) + ".bak", m.enabledPath(name), m.availablePath(name), m.availablePath(name) + ".bak"} {
			if err := t.remove(p); err != nil {
				return err
			}
		}
		return nil
	}})
}

// EnableVhost links an existing sites-available/<name> into sites-enabled,
// tests (removing the link again on failure) and reloads.
func (m *Manager) EnableVhost(ctx context.Context, name string) error {
	if err := ValidVhostName(name); err != nil {
		return err
	}
	return m.submit(ctx, &change{action: "enabling vhost " + name, stage: func(t *tx) error {
		if _, err := os.Stat(m.availablePath(name)); err != nil {
			return fmt.Errorf("enable vhost %s: %w", name, err)
		}
		if err := t.link(m.enabledPath(name), m.availablePath(name)); err != nil {
			return err
		}
		if _, err := os.Stat(m.routePath(name)); err == nil {
			return t.link(m.routeLink(name), m.routePath(name))
		}
		return nil
	}})
}

// DisableVhost removes sites-enabled/<name> only, tests (restoring the
// link on failure) and reloads.
func (m *Manager) DisableVhost(ctx context.Context, name string) error {
	if err := ValidVhostName(name); err != nil {
		return err
	}
	return m.submit(ctx, &change{action: "disabling vhost " + name, stage: func(t *tx) error {
		if err := t.remove(m.routeLink(name)); err != nil {
			return err
		}
		return t.remove(m.enabledPath(name))
	}})
}

// WriteShared installs the installer's pieces (conf.d, snippets, pages,
// and the http, default and panel-ip vhosts, enabled unless
// Vhost.Disabled), removes Debian's sites-enabled/default, tests and
// reloads; on failure everything is restored.
func (m *Manager) WriteShared(ctx context.Context, s Shared) error {
	for _, v := range s.Vhosts {
		if err := ValidVhostName(v.Name); err != nil {
			return err
		}
	}
	return m.submit(ctx, &change{action: "writing the shared configuration", stage: func(t *tx) error {
		for _, f := range s.Files {
			if err := t.writeFile(f.Path, f.Content, f.Mode); err != nil {
				return err
			}
		}
		for _, v := range s.Vhosts {
			if err := m.writeVhost(t, v); err != nil {
				return err
			}
		}
		return t.remove(filepath.Join(m.layout.NginxSitesEnabled(), "default"))
	}})
}

// TestAndReload tests the configuration and reloads nginx (after a CRL or
// certificate change).
func (m *Manager) TestAndReload(ctx context.Context) error {
	return m.submit(ctx, &change{action: "updating certificates", force: true})
}

// writeVhost writes v (and its route, or removes a route it had) into
// sites-available and links them, or removes the links when v.Disabled.
func (m *Manager) writeVhost(t *tx, v Vhost) error {
	if !v.IfChanged || !sameFile(m.availablePath(v.Name), v.Content) {
		if err := t.writeFile(m.availablePath(v.Name), v.Content, 0o644); err != nil {
			return err
		}
	}
	route, link := m.routePath(v.Name), m.routeLink(v.Name)
	switch {
	case v.Route == nil:
		for _, p := range []string{link, route, route + ".bak"} {
			if err := t.remove(p); err != nil {
				return err
			}
		}
	case !sameFile(route, v.Route):
		if err := t.writeFile(route, v.Route, 0o644); err != nil {
			return err
		}
	}
	if v.Disabled {
		if err := t.remove(link); err != nil {
			return err
		}
		return t.remove(m.enabledPath(v.Name))
	}
	if v.Route != nil {
		if err := t.link(link, route); err != nil {
			return err
		}
	}
	return t.link(m.enabledPath(v.Name), m.availablePath(v.Name))
}

// sameFile reports whether path holds exactly data.
func sameFile(path string, data []byte) bool {
	cur, err := os.ReadFile(path)
	return err == nil && bytes.Equal(cur, data)
}

// change is one caller's request.
type change struct {
	action string          // for messages: "writing vhost for <fqdn>", ...
	stage  func(*tx) error // writes the files; nil for none
	force  bool            // test and reload even when no file changed
	done   chan error
}

// submit queues c for the next group and waits for its outcome. A change
// still queued when ctx ends is withdrawn; one already being committed is
// waited for, so the answer is always true.
func (m *Manager) submit(ctx context.Context, c *change) error {
	c.done = make(chan error, 1)
	m.mu.Lock()
	m.queue = append(m.queue, c)
	if !m.running {
		m.running = true
		go m.run()
	}
	hook := m.queued
	m.mu.Unlock()
	if hook != nil {
		hook()
	}
	select {
	case err := <-c.done:
		return err
	case <-ctx.Done():
	}
	m.mu.Lock()
	for i, q := range m.queue {
		if q == c {
			m.queue = slices.Delete(m.queue, i, i+1)
			m.mu.Unlock()
			return ctx.Err()
		}
	}
	m.mu.Unlock()
	return <-c.done
}

// run commits groups until the queue is empty.
func (m *Manager) run() {
	for {
		m.mu.Lock()
		group := m.queue
		m.queue = nil
		if len(group) == 0 {
			m.running = false
			m.mu.Unlock()
			return
		}
		m.mu.Unlock()
		m.commit(group)
	}
}

// staged is a change whose files are written and not yet committed.
type staged struct {
	c *change
	t *tx
}

// stage writes c's files; a change that fails there, or changes nothing
// and needs no reload, is answered at once (ok false).
func (m *Manager) stage(c *change) (staged, bool) {
	t := &tx{log: m.log}
	if c.stage != nil {
		if err := c.stage(t); err != nil {
			c.done <- t.fail(err)
			return staged{}, false
		}
	}
	if !t.changed && !c.force {
		c.done <- nil
		return staged{}, false
	}
	return staged{c, t}, true
}

// commit applies a group of changes with one test and one reload, under
// the cross-process lock.
func (m *Manager) commit(group []*change) {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	unlock, err := lockFile(ctx, filepath.Join(m.layout.NginxSitesAvailable(), lockName), m.lockWait)
	if err != nil {
		for _, c := range group {
			c.done <- err
		}
		return
	}
	defer unlock()

	var live []staged
	for _, c := range group {
		if s, ok := m.stage(c); ok {
			live = append(live, s)
		}
	}
	if len(live) == 0 {
		return
	}
	if out, err := m.ctl.Test(ctx); err != nil {
		live = m.isolate(ctx, live, out)
		if len(live) == 0 {
			return
		}
	}
	if err := m.ctl.Reload(ctx); err != nil {
		m.log.Warn("nginx reload failed; rolling back", "changes", len(live), "err", err)
		rollback(live, err)
		return
	}
	for _, s := range live {
		s.t.commit()
		s.c.done <- nil
	}
}

// isolate handles a group whose combined test failed: it undoes every
// change, then re-applies and tests them one at a time, in order, failing
// (and rolling back) each change that breaks the configuration. It returns
// the changes that stay applied; the last test passed with exactly those.
func (m *Manager) isolate(ctx context.Context, live []staged, out string) []staged {
	if len(live) == 1 {
		m.log.Warn("nginx config test failed; rolling back", "action", live[0].c.action, "output", out)
		rollback(live, &TestError{Action: live[0].c.action, Output: out})
		return nil
	}
	for i := len(live) - 1; i >= 0; i-- {
		if err := live[i].t.fail(nil); err != nil {
			m.log.Error("nginx rollback incomplete", "action", live[i].c.action, "err", err)
		}
	}
	var kept []staged
	for _, s := range live {
		s, ok := m.stage(s.c)
		if !ok {
			continue
		}
		if out, err := m.ctl.Test(ctx); err != nil {
			m.log.Warn("nginx config test failed; rolling back", "action", s.c.action, "output", out)
			s.c.done <- s.t.fail(&TestError{Action: s.c.action, Output: out})
			continue
		}
		kept = append(kept, s)
	}
	return kept
}

// rollback undoes staged changes, last first, and answers each with err.
func rollback(live []staged, err error) {
	for i := len(live) - 1; i >= 0; i-- {
		live[i].c.done <- live[i].t.fail(err)
	}
}

// tx records file system changes so they can be undone.
type tx struct {
	log     *slog.Logger
	undo    []func() error
	commits []func()
	changed bool
}

// fail rolls back and returns err (nil err: nil unless the rollback was
// incomplete).
func (t *tx) fail(err error) error {
	for i := len(t.undo) - 1; i >= 0; i-- {
		if uerr := t.undo[i](); uerr != nil {
			t.log.Error("nginx rollback step failed", "err", uerr)
			if err == nil {
				err = fmt.Errorf("rollback incomplete: %w", uerr)
			} else {
				err = fmt.Errorf("%w (rollback incomplete: %v)", err, uerr)
			}
		}
	}
	t.undo = nil
	t.commits = nil
	return err
}

func (t *tx) commit() {
	for _, f := range t.commits {
		f()
	}
}

// writeFile backs up an existing path to <path>.bak (docs/architecture.md, "Safe write, test, reload and rollback"; for
// an operator after a crash), then replaces it atomically with mode. The
// undo restores the old content from memory, so two changes to one file in
// a group roll back correctly.
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
		bak, perm := path+".bak", st.Mode().Perm()
		if err := store.WriteFileAtomic(bak, old, perm); err != nil {
			return fmt.Errorf("back up %s: %w", path, err)
		}
		t.undo = append(t.undo, func() error {
			_ = os.Remove(bak)
			return store.WriteFileAtomic(path, old, perm)
		})
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
