// Package store keeps the relay's state as JSON documents on disk.
//
// Every write is atomic: the new content goes to a uniquely named temporary
// file in the target's directory (created with the final mode), is synced,
// renamed over the target, and the directory is synced. A crash at any point
// leaves either the old or the new document, never a torn one.
//
// Read-modify-write cycles (Doc.Update) are serialised by an in-process mutex
// per path and an advisory flock on a sibling ".lock" file, so concurrent API
// calls, and other processes such as `portlama reset-admin`, never lose an
// update.
package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
)

// WriteFileAtomic replaces path with data. The file is created with mode
// (independent of the umask) and is never observed half-written. Written
// by root, a file that exists keeps its owner.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	return writeFileAtomic(path, data, mode, nil)
}

// WriteFileAtomicOwned is WriteFileAtomic for a file owned by uid:gid: the
// temporary file gets its owner before it is renamed into place, so the
// file never exists with another owner (the installer, running as root,
// writes files a service user owns).
func WriteFileAtomicOwned(path string, data []byte, mode os.FileMode, uid, gid int) error {
	return writeFileAtomicOwned(path, data, mode, uid, gid, nil)
}

// writeFileAtomic is WriteFileAtomic with a hook between the write of the
// temporary file and the rename, used by tests to inject failures.
func writeFileAtomic(path string, data []byte, mode os.FileMode, beforeRename func() error) (err error) {
	return writeFileAtomicOwned(path, data, mode, -1, -1, beforeRename)
}

// writeFileAtomicOwned is writeFileAtomic with an owner; -1 keeps the
// creating process's.
func writeFileAtomicOwned(path string, data []byte, mode os.FileMode, uid, gid int, beforeRename func() error) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temporary file for %s: %w", path, err)
	}
	tmpName := tmp.Name()
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	if uid < 0 && gid < 0 && os.Geteuid() == 0 {
		// Root (`portlama reset-admin`, `certs renew` run by hand) keeps
		// the owner of the file it replaces, so the service user can
		// still read its own state afterwards.
		if fi, serr := os.Lstat(path); serr == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				uid, gid = int(st.Uid), int(st.Gid)
			}
		}
	}
	if uid >= 0 || gid >= 0 {
		if err = tmp.Chown(uid, gid); err != nil {
			return fmt.Errorf("set owner of %s: %w", tmpName, err)
		}
	}
	if err = tmp.Chmod(mode); err != nil {
		return fmt.Errorf("set mode of %s: %w", tmpName, err)
	}
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmpName, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmpName, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmpName, err)
	}
	if beforeRename != nil {
		if err = beforeRename(); err != nil {
			return err
		}
	}
	if err = os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("rename %s into place: %w", path, err)
	}
	if err = syncDir(dir); err != nil {
		return err
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// Doc is one JSON document of type T at a fixed path. Docs with the same
// path share their lock, so separate Doc values for one file are safe.
type Doc[T any] struct {
	path string
	mode os.FileMode
	*pathState

	// beforeRename, when set by tests, runs between writing the temporary
	// file and renaming it into place.
	beforeRename func() error
}

// pathState is what the Docs of one path share: the write lock and the
// count of writes this process made (Version).
type pathState struct {
	mu     sync.Mutex
	writes atomic.Uint64
}

var (
	statesMu sync.Mutex
	states   = map[string]*pathState{}
)

func statePath(path string) *pathState {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	statesMu.Lock()
	defer statesMu.Unlock()
	st, ok := states[abs]
	if !ok {
		st = &pathState{}
		states[abs] = st
	}
	return st
}

// NewDoc returns the document at path, written with mode.
func NewDoc[T any](path string, mode os.FileMode) *Doc[T] {
	return &Doc[T]{path: path, mode: mode, pathState: statePath(path)}
}

// Version identifies what a document file holds, without reading it: the
// file's identity, size and change times, and the number of writes this
// process made to it. Every write replaces the file (a new inode), so a
// change by another process shows as a new identity or time; this
// process's own writes are counted, so even a replacement within one tick
// of the file system's clock that reused the inode number is seen.
// The zero Version is no file read yet.
type Version struct {
	id      fileID
	writes  uint64
	present bool
}

// fileID is an open file's identity, size and change times (identify has
// one implementation per supported OS).
type fileID struct {
	dev, ino     uint64
	size         int64
	mtime, ctime syscall.Timespec
}

// LoadChanged is Load unless the file still holds since (a Version an
// earlier LoadChanged returned): then it returns changed false, the zero
// T, and reads nothing. A missing file always counts as changed.
func (d *Doc[T]) LoadChanged(since Version) (v T, ver Version, changed bool, err error) {
	ver.writes = d.writes.Load()
	f, err := os.Open(d.path)
	if errors.Is(err, fs.ErrNotExist) {
		return v, ver, true, nil
	}
	if err != nil {
		return v, ver, false, fmt.Errorf("read %s: %w", d.path, err)
	}
	defer f.Close()
	// The version of the open file is the version of what is read from it.
	if ver.id, err = identify(f); err != nil {
		return v, ver, false, fmt.Errorf("stat %s: %w", d.path, err)
	}
	ver.present = true
	if since.present && ver == since {
		return v, ver, false, nil
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return v, ver, false, fmt.Errorf("read %s: %w", d.path, err)
	}
	v, err = d.parse(data)
	return v, ver, true, err
}

// Path returns the document's file path.
func (d *Doc[T]) Path() string { return d.path }

// Load reads the document. A missing file yields the zero value of T; a file
// that does not parse is an error (it is never silently replaced).
func (d *Doc[T]) Load() (T, error) {
	var v T
	data, err := os.ReadFile(d.path)
	if errors.Is(err, fs.ErrNotExist) {
		return v, nil
	}
	if err != nil {
		return v, fmt.Errorf("read %s: %w", d.path, err)
	}
	return d.parse(data)
}

// parse decodes the document's content; blank content is the zero T.
func (d *Doc[T]) parse(data []byte) (T, error) {
	var v T
	if len(bytes.TrimSpace(data)) == 0 {
		return v, nil
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return v, fmt.Errorf("parse %s: %w", d.path, err)
	}
	return v, nil
}

// Update loads the document, applies fn and writes the result, all under the
// document's lock. If fn returns an error nothing is written and the error is
// returned. Update returns the document as written.
func (d *Doc[T]) Update(fn func(*T) error) (T, error) {
	var zero T
	unlock, err := d.lock()
	if err != nil {
		return zero, err
	}
	defer unlock()
	v, err := d.Load()
	if err != nil {
		return zero, err
	}
	if err := fn(&v); err != nil {
		return zero, err
	}
	if err := d.write(v); err != nil {
		return zero, err
	}
	return v, nil
}

// Save replaces the document with v under the document's lock.
func (d *Doc[T]) Save(v T) error {
	unlock, err := d.lock()
	if err != nil {
		return err
	}
	defer unlock()
	return d.write(v)
}

func (d *Doc[T]) write(v T) error {
	data, err := Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", d.path, err)
	}
	// Counted even when the write fails: a failure after the rename
	// (the directory sync) has replaced the file all the same.
	defer d.writes.Add(1)
	return writeFileAtomic(d.path, data, d.mode, d.beforeRename)
}

// Marshal encodes v as the store writes it: 2-space indent, trailing newline,
// no HTML escaping.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// lock takes the in-process mutex, then an exclusive flock on path+".lock"
// so that other processes writing the same document wait too.
func (d *Doc[T]) lock() (func(), error) {
	d.mu.Lock()
	f, err := os.OpenFile(d.path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		d.mu.Unlock()
		return nil, fmt.Errorf("open lock file for %s: %w", d.path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		d.mu.Unlock()
		return nil, fmt.Errorf("lock %s: %w", d.path, err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
		d.mu.Unlock()
	}, nil
}
