package install

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/portlama/portlama/internal/nginx"
	"github.com/portlama/portlama/internal/system"
)

// UninstallTasks lists what uninstall does, in order. purge also removes
// the PKI (the CA and every client certificate it issued).
func (in *Installer) UninstallTasks(purge bool) []Task {
	keep := "keeps " + in.layout.PKIDir() + " (the CA and client certificates) unless --purge"
	if purge {
		keep = "removes " + in.layout.PKIDir() + " too (--purge)"
	}
	return []Task{
		{Name: "root", Title: "Running as root", Changes: "nothing", Run: in.checkRoot},
		{Name: "services", Title: "Services", Changes: "stops and disables the portlama units", Run: in.stopServices},
		{Name: "units", Title: "systemd units", Changes: "removes the portlama unit files and the nginx.service drop-in", Run: in.removeUnits},
		{Name: "nginx", Title: "nginx", Changes: "removes the portlama vhosts, conf.d/portlama.conf and snippets, puts back the original nginx.conf and the default site", Run: in.removeNginx},
		{Name: "fail2ban", Title: "fail2ban", Changes: "removes the portlama jail and filter", Run: in.removeFail2ban},
		{Name: "firewall", Title: "Firewall (ufw)", Changes: "removes the rules for 80, 443 and 9292 (ufw stays on with SSH allowed)", Run: in.removeFirewall},
		{Name: "ssh", Title: "SSH", Changes: "removes the key-only block from sshd_config", Run: in.removeSSH},
		{Name: "swap", Title: "Swap", Changes: "removes the swap file the installer made", Run: in.removeSwap},
		{Name: "files", Title: "Files", Changes: "removes " + in.paths.Binary + ", " + in.layout.WWWDir + ", " + in.paths.StateDir + " and " + in.layout.DataDir + "; " + keep, Run: func(ctx context.Context) (Result, error) { return in.removeFiles(ctx, purge) }},
		{Name: "user", Title: "Service user", Changes: "removes the user " + ServiceUser, Run: in.removeUser},
	}
}

// Uninstall removes what Run installed. Failures of single tasks are
// reported and the others still run; the error lists them.
func (in *Installer) Uninstall(ctx context.Context, purge bool) error {
	var failed []string
	for i, t := range in.UninstallTasks(purge) {
		if i == 1 {
			if err := in.loadState(); err != nil {
				return err
			}
		}
		if err := in.runTask(ctx, t); err != nil {
			if t.Name == "root" {
				return err
			}
			failed = append(failed, err.Error())
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("uninstall finished with errors: %s", strings.Join(failed, "; "))
	}
	return nil
}

// relayUnits are the units uninstall stops, timers and sockets first.
var relayUnits = []string{UnitRenewTimer, UnitRenew, UnitPanel, UnitTunnel, UnitAuth, UnitHelperSocket, UnitHelper}

func (in *Installer) stopServices(ctx context.Context) (Result, error) {
	var stopped []string
	for _, u := range relayUnits {
		name := strings.TrimSuffix(u, ".service")
		st, err := in.sd.Status(ctx, name)
		if err != nil {
			return Result{}, err
		}
		if st.LoadState != "loaded" {
			continue
		}
		if err := in.sd.Disable(ctx, name); err != nil {
			return Result{}, err
		}
		stopped = append(stopped, name)
	}
	if len(stopped) == 0 {
		return done(false, "no portlama units")
	}
	return done(true, "stopped %s", strings.Join(stopped, ", "))
}

func (in *Installer) removeUnits(ctx context.Context) (Result, error) {
	files, err := Units(in.unitParams())
	if err != nil {
		return Result{}, err
	}
	n := 0
	for _, f := range files {
		p := filepath.Join(in.paths.SystemdDir, f.Name)
		if err := os.Remove(p); err == nil {
			n++
		} else if !errors.Is(err, fs.ErrNotExist) {
			return Result{}, err
		}
	}
	os.Remove(filepath.Join(in.paths.SystemdDir, filepath.Dir(NginxDropIn))) // only when empty
	if n == 0 {
		return done(false, "no unit files")
	}
	if err := in.sd.DaemonReload(ctx); err != nil {
		return Result{}, err
	}
	return done(true, "removed %d unit files", n)
}

func (in *Installer) removeNginx(ctx context.Context) (Result, error) {
	l := in.layout
	n := 0
	rm := func(p string) error {
		err := os.Remove(p)
		if err == nil {
			n++
			return nil
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	for _, dir := range []string{l.NginxSitesEnabled(), l.NginxSitesAvailable(), l.NginxSnippets()} {
		entries, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return Result{}, err
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "portlama-") {
				if err := rm(filepath.Join(dir, e.Name())); err != nil {
					return Result{}, err
				}
			}
		}
	}
	if err := rm(filepath.Join(l.NginxConfD(), "portlama.conf")); err != nil {
		return Result{}, err
	}
	// The links of the apps' routes (the route files went with
	// sites-available's portlama-*).
	for _, dir := range []string{nginx.CheckedSitesDir(l), nginx.RoutesDir(l.NginxSitesEnabled())} {
		if err := os.RemoveAll(dir); err != nil {
			return Result{}, err
		}
	}
	conf := in.nginxConfPath()
	if orig, err := os.ReadFile(conf + nginx.SystemConfOrigSuffix); err == nil {
		if err := writeLike(conf, orig, 0o644); err != nil {
			return Result{}, err
		}
		if err := rm(conf + nginx.SystemConfOrigSuffix); err != nil {
			return Result{}, err
		}
	}
	avail := filepath.Join(l.NginxSitesAvailable(), "default")
	link := filepath.Join(l.NginxSitesEnabled(), "default")
	if _, err := os.Stat(avail); err == nil && in.state.DefaultSiteRemoved {
		if _, err := os.Lstat(link); errors.Is(err, fs.ErrNotExist) {
			if err := os.Symlink(avail, link); err != nil {
				return Result{}, err
			}
			n++
		}
	}
	for _, d := range []string{l.NginxSitesAvailable(), l.NginxSitesEnabled()} {
		if _, err := ensureDir(d, 0o755, 0, 0); err != nil {
			return Result{}, err
		}
	}
	st, err := in.sd.Status(ctx, system.UnitNginx)
	if err != nil {
		return Result{}, err
	}
	if st.State == system.StateActive {
		// The drop-in is gone too: a restart leaves nginx as the
		// distribution runs it.
		if out, err := (nginx.System{Run: func(ctx context.Context, argv []string) ([]byte, error) { return system.Run(ctx, in.cmd, argv...) }}).Test(ctx); err != nil {
			return Result{}, fmt.Errorf("nginx -t fails without Portlama's files; fix /etc/nginx and restart nginx: %s", out)
		}
		if err := in.sd.Restart(ctx, system.UnitNginx); err != nil {
			return Result{}, err
		}
	}
	return done(n > 0, "removed %d files and links; nginx.conf and the default site are back", n)
}

func (in *Installer) removeFail2ban(ctx context.Context) (Result, error) {
	n := 0
	for _, p := range []string{filepath.Join(in.paths.Fail2banDir, "jail.d", "portlama.conf"), filepath.Join(in.paths.Fail2banDir, "filter.d", "portlama-auth.conf")} {
		if err := os.Remove(p); err == nil {
			n++
		} else if !errors.Is(err, fs.ErrNotExist) {
			return Result{}, err
		}
	}
	if n == 0 {
		return done(false, "no portlama jails")
	}
	st, err := in.sd.Status(ctx, "fail2ban")
	if err == nil && st.State == system.StateActive {
		if err := in.sd.Restart(ctx, "fail2ban"); err != nil {
			in.sd.Stop(ctx, "fail2ban")
			return done(true, "removed the portlama jails; fail2ban does not start with its own configuration alone (Debian's sshd jail needs backend = systemd), so it is stopped")
		}
	}
	return done(true, "removed the portlama jails")
}

func (in *Installer) removeFirewall(ctx context.Context) (Result, error) {
	if _, err := in.run(ctx, "ufw", "version"); err != nil {
		return skipped("ufw is not installed")
	}
	changed := false
	for _, p := range PublicPorts {
		out, err := in.run(ctx, "ufw", "delete", "allow", strconv.Itoa(p)+"/tcp")
		if err != nil && !strings.Contains(string(out), "non-existent") {
			return Result{}, err
		}
		if err == nil && !strings.Contains(string(out), "non-existent") {
			changed = true
		}
	}
	return done(changed, "rules for 80, 443, 9292 removed; ufw stays on with SSH allowed")
}

func (in *Installer) removeSSH(ctx context.Context) (Result, error) {
	cur, err := os.ReadFile(in.paths.SSHDConfig)
	if errors.Is(err, fs.ErrNotExist) {
		return skipped("no sshd_config")
	}
	if err != nil {
		return Result{}, err
	}
	want := WithoutSSHBlock(string(cur))
	backup := in.paths.SSHDConfig + sshBackupSuffix
	if want == string(cur) {
		os.Remove(backup)
		return done(false, "no portlama block in %s", in.paths.SSHDConfig)
	}
	fi, err := os.Stat(in.paths.SSHDConfig)
	if err != nil {
		return Result{}, err
	}
	candidate := in.paths.SSHDConfig + ".portlama-new"
	if err := writeLike(candidate, []byte(want), 0o600); err != nil {
		return Result{}, err
	}
	defer os.Remove(candidate)
	if out, err := in.run(ctx, "sshd", "-t", "-f", candidate); err != nil {
		return Result{}, fmt.Errorf("sshd_config without the portlama block does not pass sshd -t; left as it is: %s", strings.TrimSpace(string(out)))
	}
	if err := writeLike(in.paths.SSHDConfig, []byte(want), fi.Mode().Perm()); err != nil {
		return Result{}, err
	}
	os.Remove(backup)
	if _, err := in.run(ctx, "systemctl", "try-reload-or-restart", "ssh.service"); err != nil {
		return Result{}, err
	}
	return done(true, "sshd_config is as before portlama install")
}

func (in *Installer) removeSwap(ctx context.Context) (Result, error) {
	if !in.state.SwapCreated {
		return done(false, "the installer made no swap file")
	}
	procSwaps, _ := os.ReadFile(filepath.Join(in.paths.ProcDir, "swaps"))
	for _, s := range activeSwaps(string(procSwaps)) {
		if s == in.paths.Swapfile {
			if _, err := in.run(ctx, "swapoff", in.paths.Swapfile); err != nil {
				return Result{}, err
			}
		}
	}
	if data, err := os.ReadFile(in.paths.Fstab); err == nil {
		var out []string
		lines := strings.Split(string(data), "\n")
		for i := 0; i < len(lines); i++ {
			if lines[i] == fstabMarker {
				if i+1 < len(lines) && strings.HasPrefix(lines[i+1], in.paths.Swapfile+" ") {
					i++
				}
				continue
			}
			out = append(out, lines[i])
		}
		if err := writeLike(in.paths.Fstab, []byte(strings.Join(out, "\n")), 0o644); err != nil {
			return Result{}, err
		}
	}
	for _, p := range []string{in.paths.Swapfile, in.paths.SysctlFile} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return Result{}, err
		}
	}
	in.state.SwapCreated = false
	if err := in.saveState(); err != nil {
		return Result{}, err
	}
	return done(true, "removed %s", in.paths.Swapfile)
}

func (in *Installer) removeFiles(_ context.Context, purge bool) (Result, error) {
	for _, p := range []string{in.paths.Binary, in.layout.WWWDir, in.paths.StateDir, filepath.Dir(in.paths.Socket)} {
		if p == "/run" || p == "/" {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			return Result{}, err
		}
	}
	l := in.layout
	if purge {
		if err := os.RemoveAll(l.DataDir); err != nil {
			return Result{}, err
		}
		return done(true, "removed everything, the PKI included")
	}
	entries, err := os.ReadDir(l.DataDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Result{}, err
	}
	for _, e := range entries {
		p := filepath.Join(l.DataDir, e.Name())
		if p == l.PKIDir() {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			return Result{}, err
		}
	}
	if len(entries) == 0 {
		return done(false, "nothing left")
	}
	// The service user goes away: the kept PKI belongs to root until the
	// next install gives it back.
	if _, err := os.Stat(l.PKIDir()); err == nil {
		if _, err := chownTree(l.PKIDir(), 0, 0, nil); err != nil {
			return Result{}, err
		}
		if err := os.Chown(l.DataDir, 0, 0); err != nil {
			return Result{}, err
		}
	}
	return done(true, "kept %s (the CA and admin certificate; --purge removes it)", l.PKIDir())
}

func (in *Installer) removeUser(ctx context.Context) (Result, error) {
	if _, _, err := in.lookupUser(); err != nil {
		return done(false, "no user %s", ServiceUser)
	}
	if _, err := in.run(ctx, "userdel", ServiceUser); err != nil {
		return Result{}, err
	}
	return done(true, "removed the user %s", ServiceUser)
}
