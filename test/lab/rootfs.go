package lab

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// DropletPackages are installed into the droplet's root file system by
// debootstrap. The droplet has no route to a mirror, so everything
// portlama install would fetch is here already (install then skips apt),
// plus what the tests use inside (curl, iproute2's ss, procps).
var DropletPackages = []string{
	"systemd", "systemd-sysv", "dbus", "iproute2", "ca-certificates", "procps", "curl",
	"nginx", "libnginx-mod-http-js", "fail2ban", "python3-systemd", "ufw", "nftables", "iptables",
	"sudo", "openssh-server",
}

// rootfsVersion changes when the customisation below changes.
const rootfsVersion = "1"

// Rootfs is a cached, read-only Debian 12 root file system. Droplets boot
// from an overlay on it.
type Rootfs struct {
	Dir      string
	Key      string
	Packages []string
	// Built is true when this run built it (no cache).
	Built bool
}

// rootfsKey names a root file system by everything that goes into it.
func rootfsKey(mirror string, packages []string) string {
	p := slices.Clone(packages)
	slices.Sort(p)
	sum := sha256.Sum256([]byte("bookworm\n" + mirror + "\n" + strings.Join(p, ",") + "\n" + rootfsVersion))
	return hex.EncodeToString(sum[:6])
}

// Rootfs returns the cached root file system for packages, building it
// with debootstrap when it is missing (about a minute).
func (l *Lab) Rootfs(ctx context.Context, packages []string) *Rootfs {
	l.t.Helper()
	r, err := buildRootfs(ctx, l.opts.CacheDir, l.opts.Mirror, packages, l.t.Logf)
	if err != nil {
		l.t.Fatal(err)
	}
	return r
}

func buildRootfs(ctx context.Context, cacheDir, mirror string, packages []string, logf func(string, ...any)) (*Rootfs, error) {
	key := rootfsKey(mirror, packages)
	dir := filepath.Join(cacheDir, "rootfs-"+key)
	r := &Rootfs{Dir: dir, Key: key, Packages: packages}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, err
	}
	// One builder at a time per cache.
	lock, err := os.OpenFile(filepath.Join(cacheDir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return nil, err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	marker := filepath.Join(dir, "etc", "portlama-lab-rootfs")
	if _, err := os.Stat(marker); err == nil {
		now := time.Now()
		os.Chtimes(marker, now, now) // in use: keep it through pruning
		return r, nil
	}
	pruneRootfs(cacheDir, 7*24*time.Hour, logf)
	logf("lab: building the droplet's root file system (debootstrap bookworm from %s, key %s)", mirror, key)
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	start := time.Now()
	out, err := run(ctx, "debootstrap", "--variant=minbase", "--include="+strings.Join(packages, ","), "bookworm", tmp, mirror)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("debootstrap: %w\n%s", err, tail(string(out), 3000))
	}
	if err := customize(tmp); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(tmp, "etc", "portlama-lab-rootfs"), []byte(key+"\n"), 0o644); err != nil {
		return nil, err
	}
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return nil, err
	}
	logf("lab: root file system built in %s", time.Since(start).Round(time.Second))
	r.Built = true
	return r, nil
}

// customize makes the debootstrapped tree a droplet: its own hostname, an
// empty machine id (systemd makes one at first boot), and no leftovers
// from the build host.
func customize(root string) error {
	files := map[string]string{
		"etc/hostname":   "droplet\n",
		"etc/machine-id": "",
		"etc/hosts":      "127.0.0.1 localhost\n127.0.1.1 droplet\n::1 localhost ip6-localhost ip6-loopback\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	// apt inside has no mirror to reach; keep it from trying on a timer.
	for _, u := range []string{"apt-daily.timer", "apt-daily-upgrade.timer"} {
		link := filepath.Join(root, "etc/systemd/system", u)
		if err := os.Symlink("/dev/null", link); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	return nil
}

// pruneRootfs removes cached root file systems not used for maxAge (an
// older package list).
func pruneRootfs(cacheDir string, maxAge time.Duration, logf func(string, ...any)) {
	dirs, _ := filepath.Glob(filepath.Join(cacheDir, "rootfs-*"))
	for _, d := range dirs {
		fi, err := os.Stat(filepath.Join(d, "etc", "portlama-lab-rootfs"))
		if err == nil && time.Since(fi.ModTime()) < maxAge {
			continue
		}
		logf("lab: removing the unused cached root file system %s", d)
		os.RemoveAll(d)
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
