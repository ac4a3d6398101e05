package install

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/nginx"
	"github.com/portlama/portlama/internal/pki"
)

func (in *Installer) lookupUser() (int, int, error) {
	u, err := user.Lookup(ServiceUser)
	if err != nil {
		return 0, 0, err
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return 0, 0, err
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return 0, 0, err
	}
	if uid == 0 || gid == 0 {
		return 0, 0, fmt.Errorf("the user %s has uid or gid 0; remove it and run portlama install again", ServiceUser)
	}
	return uid, gid, nil
}

func (in *Installer) user(ctx context.Context) (Result, error) {
	changed := false
	if _, _, err := in.lookupUser(); err != nil {
		var unknown user.UnknownUserError
		if !errors.As(err, &unknown) {
			return Result{}, fmt.Errorf("look up user %s: %w", ServiceUser, err)
		}
		if _, err := in.run(ctx, "useradd", "--system", "--user-group", "--home-dir", in.paths.StateDir,
			"--no-create-home", "--shell", "/usr/sbin/nologin", "--comment", "Portlama relay", ServiceUser); err != nil {
			return Result{}, err
		}
		changed = true
	}
	uid, gid, err := in.lookupUser()
	if err != nil {
		return Result{}, fmt.Errorf("look up user %s: %w", ServiceUser, err)
	}
	in.uid, in.gid = uid, gid
	return done(changed, "%s (uid %d)", ServiceUser, uid)
}

func (in *Installer) binary(context.Context) (Result, error) {
	src, err := filepath.EvalSymlinks(in.opts.Binary)
	if err != nil {
		return Result{}, fmt.Errorf("find the portlama binary: %w", err)
	}
	if a, err := os.Stat(src); err == nil {
		if b, err := os.Stat(in.paths.Binary); err == nil && os.SameFile(a, b) {
			return done(false, "%s is this binary", in.paths.Binary)
		}
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return Result{}, fmt.Errorf("read the portlama binary: %w", err)
	}
	changed, err := writeIfChanged(in.paths.Binary, data, 0o755, 0, 0)
	if err != nil {
		return Result{}, err
	}
	return done(changed, "%s", in.paths.Binary)
}

// ensureDir makes path a directory (not a link) with mode and owner.
func ensureDir(path string, mode os.FileMode, uid, gid int) (bool, error) {
	changed := false
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return false, err
		}
		if err := os.Mkdir(path, mode); err != nil {
			return false, err
		}
		changed = true
		if fi, err = os.Lstat(path); err != nil {
			return false, err
		}
	} else if err != nil {
		return false, err
	}
	if !fi.IsDir() {
		return false, fmt.Errorf("%s exists but is not a directory; move it away and run portlama install again", path)
	}
	if fi.Mode().Perm() != mode {
		if err := os.Chmod(path, mode); err != nil {
			return false, err
		}
		changed = true
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && (int(st.Uid) != uid || int(st.Gid) != gid) {
		if err := os.Lchown(path, uid, gid); err != nil {
			return false, err
		}
		changed = true
	}
	return changed, nil
}

// relayDirs are the directories the installer owns, with modes and
// whether the service user owns them (else root with the service group).
func (in *Installer) relayDirs() []struct {
	path    string
	mode    os.FileMode
	service bool
} {
	l := in.layout
	return []struct {
		path    string
		mode    os.FileMode
		service bool
	}{
		{l.DataDir, 0o700, true},
		{l.PKIDir(), pki.DirMode, true},
		{l.TunnelDir(), 0o700, true},
		{l.AuthDir(), 0o700, true},
		{l.CertsDir, 0o700, true},
		{l.WWWDir, 0o755, true},
		{l.ACMEWebroot, 0o755, true},
		{in.paths.StateDir, 0o700, true},
		// The panel writes vhosts here; nginx reads them only after the
		// lint gate (docs/security.md).
		{l.NginxSitesAvailable(), 0o775, false},
		{l.NginxSitesEnabled(), 0o775, false},
	}
}

func (in *Installer) directories(context.Context) (Result, error) {
	n := 0
	for _, d := range in.relayDirs() {
		uid, gid := 0, in.gid
		if d.service {
			uid = in.uid
		}
		ch, err := ensureDir(d.path, d.mode, uid, gid)
		if err != nil {
			return Result{}, err
		}
		if ch {
			n++
		}
	}
	return done(n > 0, "%s, %s", in.layout.DataDir, in.layout.WWWDir)
}

func (in *Installer) pki(context.Context) (Result, error) {
	_, res, err := pki.Init(pki.Config{Dir: in.layout.PKIDir(), Logger: in.log}, in.ip)
	if err != nil {
		return Result{}, err
	}
	if len(res.Created) == 0 {
		return done(false, "CA and admin certificate kept")
	}
	return done(true, "created %s", strings.Join(res.Created, ", "))
}

func (in *Installer) panelConfig(context.Context) (Result, error) {
	changed := false
	secretPath := in.layout.ProxySecretFile()
	if cur, err := os.ReadFile(secretPath); err == nil {
		if s := strings.TrimSpace(string(cur)); len(s) != 64 || !isHex(s) {
			return Result{}, fmt.Errorf("%s is not a 64-character hex secret; remove it and run portlama install again (a new one is made)", secretPath)
		}
	} else if errors.Is(err, fs.ErrNotExist) {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return Result{}, err
		}
		if _, err := writeIfChanged(secretPath, []byte(hex.EncodeToString(b)+"\n"), 0o600, in.uid, in.gid); err != nil {
			return Result{}, err
		}
		changed = true
	} else {
		return Result{}, err
	}
	ps := config.NewPanelStore(in.layout.PanelConfig())
	if c, err := ps.Load(); err == nil && c.IP == in.ip && c.DataDir == in.layout.DataDir {
		return done(changed, "panel.json kept (ip %s)", in.ip)
	}
	if _, err := ps.Init(func(c *config.PanelConfig) error {
		c.IP, c.DataDir = in.ip, in.layout.DataDir
		return nil
	}); err != nil {
		return Result{}, err
	}
	if err := os.Chown(in.layout.PanelConfig(), in.uid, in.gid); err != nil {
		return Result{}, err
	}
	return done(true, "panel.json: ip %s", in.ip)
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// ownership gives every file below the relay's data and web directories to
// the service user. It walks through an os.Root, so a link planted in
// those directories cannot make it change anything outside them, and it
// changes links themselves (Lchown), never their targets.
func (in *Installer) ownership(context.Context) (Result, error) {
	keepRoot := append([]string{in.paths.StateFile}, nginx.HelpPages(in.layout)...)
	var given []string
	for _, dir := range []string{in.layout.DataDir, in.layout.WWWDir} {
		c, err := chownTree(dir, in.uid, in.gid, keepRoot)
		if err != nil {
			return Result{}, err
		}
		given = append(given, c...)
	}
	if len(given) == 0 {
		return done(false, "owned by %s", ServiceUser)
	}
	shown := given[:min(len(given), 3)]
	more := ""
	if len(given) > len(shown) {
		more = fmt.Sprintf(" and %d more", len(given)-len(shown))
	}
	return done(true, "gave %d files to %s (%s%s)", len(given), ServiceUser, strings.Join(shown, ", "), more)
}

// chownTree sets uid:gid on everything below dir except the paths in keep,
// and returns how many entries it changed.
func chownTree(dir string, uid, gid int, keep []string) ([]string, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	var given []string
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if slices.Contains(keep, filepath.Join(dir, p)) {
			return nil
		}
		fi, err := root.Lstat(p)
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok || int(st.Uid) == uid && int(st.Gid) == gid {
			return nil
		}
		if err := root.Lchown(p, uid, gid); err != nil {
			return fmt.Errorf("give %s to %s: %w", filepath.Join(dir, p), ServiceUser, err)
		}
		given = append(given, filepath.Join(dir, p))
		return nil
	})
	return given, err
}

// sameContent reports whether path holds data.
func sameContent(path string, data []byte) bool {
	cur, err := os.ReadFile(path)
	return err == nil && bytes.Equal(cur, data)
}
