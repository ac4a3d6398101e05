package install

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/portlama/portlama/internal/store"
)

// writeIfChanged writes data to path with mode and owner unless the file
// already has exactly that content, mode and owner. The parent directory is
// created (0755) when missing. It reports whether it wrote.
func writeIfChanged(path string, data []byte, mode os.FileMode, uid, gid int) (bool, error) {
	if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, data) {
		if fi, err := os.Lstat(path); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm() == mode {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == uid && int(st.Gid) == gid {
				return false, nil
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return false, fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	if err := store.WriteFileAtomicOwned(path, data, mode, uid, gid); err != nil {
		return false, err
	}
	return true, nil
}

// writeLike replaces a system file, keeping its owner (root when new).
func writeLike(path string, data []byte, mode os.FileMode) error {
	uid, gid := 0, 0
	if fi, err := os.Stat(path); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(st.Uid), int(st.Gid)
		}
	}
	_, err := writeIfChanged(path, data, mode, uid, gid)
	return err
}

// State is what the installer found and did that uninstall must know:
// install-state.json in the data directory.
type State struct {
	// SwapCreated: the installer made the swap file.
	SwapCreated bool `json:"swapCreated"`
	// DefaultSiteRemoved: sites-enabled/default existed and was removed.
	DefaultSiteRemoved bool `json:"defaultSiteRemoved"`
	// Packages the installer installed (uninstall lists them; it does not
	// remove them).
	Packages []string `json:"packages"`
}

func (in *Installer) loadState() error {
	data, err := os.ReadFile(in.paths.StateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("read %s: %w", in.paths.StateFile, err)
	}
	// Only names the installer itself installs are honoured.
	s.Packages = slices.DeleteFunc(s.Packages, func(p string) bool { return !slices.Contains(allPackages, p) })
	in.state = s
	return nil
}

func (in *Installer) saveState() error {
	data, err := store.Marshal(in.state)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(in.paths.StateFile), 0o700); err != nil {
		return err
	}
	_, err = writeIfChanged(in.paths.StateFile, data, 0o600, 0, 0)
	return err
}
