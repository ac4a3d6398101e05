package install

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/portlama/portlama/internal/store"
)

// Swap.

const (
	swapSize       = 1 << 30
	swappiness     = 10
	fstabMarker    = "# portlama install: 1 GiB swap file (portlama uninstall removes it)"
	sysctlContents = "# Managed by portlama install: prefer RAM, use the swap file only under pressure.\nvm.swappiness = 10\n"
)

// activeSwaps returns the swap areas listed in /proc/swaps.
func activeSwaps(procSwaps string) []string {
	var out []string
	for i, line := range strings.Split(procSwaps, "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) == 0 {
			continue
		}
		out = append(out, f[0])
	}
	return out
}

// inContainer reports whether this machine is a container (swap and
// sysctl belong to the host then).
func (in *Installer) inContainer(ctx context.Context) (string, bool) {
	out, err := in.run(ctx, "systemd-detect-virt", "--container")
	name := strings.TrimSpace(string(out))
	if err == nil && name != "" && name != "none" {
		return name, true
	}
	return "", false
}

func (in *Installer) swap(ctx context.Context) (Result, error) {
	procSwaps, err := os.ReadFile(filepath.Join(in.paths.ProcDir, "swaps"))
	if err != nil {
		return Result{}, fmt.Errorf("read active swap: %w", err)
	}
	active := activeSwaps(string(procSwaps))
	if slices.Contains(active, in.paths.Swapfile) {
		return in.swappiness(ctx, false, "swap file %s active", in.paths.Swapfile)
	}
	if len(active) > 0 {
		return skipped("this machine already has swap (%s)", strings.Join(active, ", "))
	}
	if name, ok := in.inContainer(ctx); ok {
		return skipped("running in a container (%s): swap is the host's", name)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(in.paths.Swapfile), &st); err == nil && st.Bavail*uint64(st.Bsize) < 2*swapSize {
		return skipped("less than 2 GiB free on %s: no swap file created", filepath.Dir(in.paths.Swapfile))
	}
	if _, err := os.Stat(in.paths.Swapfile); errors.Is(err, fs.ErrNotExist) {
		if err := createSwapfile(ctx, in, in.paths.Swapfile); err != nil {
			os.Remove(in.paths.Swapfile)
			return Result{}, err
		}
		in.state.SwapCreated = true
		if err := in.saveState(); err != nil {
			return Result{}, err
		}
	}
	if _, err := in.run(ctx, "swapon", in.paths.Swapfile); err != nil {
		return Result{}, err
	}
	if err := in.addFstab(); err != nil {
		return Result{}, err
	}
	return in.swappiness(ctx, true, "1 GiB swap file %s", in.paths.Swapfile)
}

func createSwapfile(ctx context.Context, in *Installer, path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create swap file: %w", err)
	}
	// Swap files may not have holes: allocate (or write) every block.
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, swapSize); err != nil {
		zero := make([]byte, 1<<20)
		for n := 0; n < swapSize; n += len(zero) {
			if _, err := f.Write(zero); err != nil {
				f.Close()
				return fmt.Errorf("write swap file: %w", err)
			}
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write swap file: %w", err)
	}
	_, err = in.run(ctx, "mkswap", path)
	return err
}

// addFstab appends the swap file to /etc/fstab, after a marker line, once.
func (in *Installer) addFstab() error {
	data, err := os.ReadFile(in.paths.Fstab)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == in.paths.Swapfile {
			return nil
		}
	}
	if len(data) > 0 && !bytes.HasSuffix(data, []byte("\n")) {
		data = append(data, '\n')
	}
	data = append(data, []byte(fstabMarker+"\n"+in.paths.Swapfile+" none swap sw 0 0\n")...)
	return writeLike(in.paths.Fstab, data, 0o644)
}

func (in *Installer) swappiness(ctx context.Context, changed bool, format string, args ...any) (Result, error) {
	ch, err := writeIfChanged(in.paths.SysctlFile, []byte(sysctlContents), 0o644, 0, 0)
	if err != nil {
		return Result{}, err
	}
	cur, _ := os.ReadFile(filepath.Join(in.paths.ProcDir, "sys/vm/swappiness"))
	if strings.TrimSpace(string(cur)) != strconv.Itoa(swappiness) {
		if _, err := in.run(ctx, "sysctl", "-q", "-w", "vm.swappiness="+strconv.Itoa(swappiness)); err != nil {
			return Result{}, err
		}
		ch = true
	}
	return done(changed || ch, format+", swappiness %d", append(args, swappiness)...)
}

// Firewall.

// sshPorts returns the ports sshd listens on, from `sshd -T`; 22 when
// sshd cannot say.
func (in *Installer) sshPorts(ctx context.Context) []int {
	out, err := in.run(ctx, "sshd", "-T")
	if err != nil {
		return []int{22}
	}
	var ports []int
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == "port" {
			if p, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && p > 0 && p < 65536 && !slices.Contains(ports, p) {
				ports = append(ports, p)
			}
		}
	}
	if len(ports) == 0 {
		return []int{22}
	}
	return ports
}

// PublicPorts are the TCP ports the relay opens besides SSH.
var PublicPorts = []int{80, 443, 9292}

func (in *Installer) firewall(ctx context.Context) (Result, error) {
	changed := false
	status, err := in.run(ctx, "ufw", "status", "verbose")
	if err != nil {
		return Result{}, err
	}
	st := string(status)
	for _, d := range [][2]string{{"incoming", "deny (incoming)"}, {"outgoing", "allow (outgoing)"}} {
		if strings.Contains(st, d[1]) {
			continue
		}
		if _, err := in.run(ctx, "ufw", "default", strings.Fields(d[1])[0], d[0]); err != nil {
			return Result{}, err
		}
		changed = true
	}
	ports := append(in.sshPorts(ctx), PublicPorts...)
	var names []string
	for _, p := range ports {
		out, err := in.run(ctx, "ufw", "allow", strconv.Itoa(p)+"/tcp", "comment", "portlama")
		if err != nil {
			return Result{}, err
		}
		if !strings.Contains(string(out), "Skipping") {
			changed = true
		}
		names = append(names, strconv.Itoa(p))
	}
	if !strings.Contains(st, "Status: active") {
		if _, err := in.run(ctx, "ufw", "--force", "enable"); err != nil {
			return Result{}, err
		}
		changed = true
	}
	if err := in.sd.Enable(ctx, "ufw"); err != nil {
		return Result{}, err
	}
	return done(changed, "active: deny incoming, allow %s/tcp", strings.Join(names, ", "))
}

// fail2ban.

// Fail2banJail is the installer's jail file.
const Fail2banJail = `# Managed by portlama install.
[DEFAULT]
# Bans go into ufw, so they show in "ufw status" and cover every port.
banaction = ufw
banaction_allports = ufw

[sshd]
enabled  = true
backend  = systemd
maxretry = 5
findtime = 10m
bantime  = 1h

# Failed password or TOTP logins at the auth server (auth.<domain>).
[portlama-auth]
enabled     = true
backend     = systemd
journalmatch = _SYSTEMD_UNIT=portlama-auth.service
filter      = portlama-auth
port        = http,https
maxretry    = 5
findtime    = 10m
bantime     = 1h
`

// Fail2banFilter matches the auth server's failed and refused logins
// (slog text from internal/auth: msg="first factor failed" user=...
// ip=<addr>; "login refused: ..." once its own regulation blocks the
// address, so fail2ban keeps counting past that). The address is the last
// field, so nothing a user types (slog quotes a name with spaces or
// quotes) can stand in for it.
const Fail2banFilter = `# Managed by portlama install.
[Definition]
failregex = ^.*level=WARN msg="(?:first factor failed|second factor failed|login refused: [a-z ]+|second factor refused: [a-z ]+)" user=(?:"(?:[^"\\]|\\.)*"|[^\s"]*) ip=<HOST>$
ignoreregex =
`

func (in *Installer) fail2ban(ctx context.Context) (Result, error) {
	dir := in.paths.Fail2banDir
	c1, err := writeIfChanged(filepath.Join(dir, "jail.d", "portlama.conf"), []byte(Fail2banJail), 0o644, 0, 0)
	if err != nil {
		return Result{}, err
	}
	c2, err := writeIfChanged(filepath.Join(dir, "filter.d", "portlama-auth.conf"), []byte(Fail2banFilter), 0o644, 0, 0)
	if err != nil {
		return Result{}, err
	}
	st, err := in.sd.Status(ctx, "fail2ban")
	if err != nil {
		return Result{}, err
	}
	switch {
	case c1 || c2 || st.State != "active":
		if err := in.sd.Enable(ctx, "fail2ban"); err != nil {
			return Result{}, err
		}
		if err := in.sd.Restart(ctx, "fail2ban"); err != nil {
			return Result{}, err
		}
	case st.UnitFileState != "enabled":
		if err := in.sd.Enable(ctx, "fail2ban"); err != nil {
			return Result{}, err
		}
	}
	want := []string{"sshd", "portlama-auth"}
	jails, err := in.fail2banJails(ctx, want)
	if err != nil {
		return Result{}, err
	}
	return done(c1 || c2, "jails %s", strings.Join(jails, ", "))
}

// fail2banJails waits until fail2ban runs the wanted jails (it answers
// before it has loaded them) and returns its jails.
func (in *Installer) fail2banJails(ctx context.Context, want []string) ([]string, error) {
	// fail2ban (Python) can take a while on a busy small machine.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, err := in.run(ctx, "fail2ban-client", "status")
		jails := ParseFail2banJails(string(out))
		missing := slices.DeleteFunc(slices.Clone(want), func(j string) bool { return slices.Contains(jails, j) })
		if err == nil && len(missing) == 0 {
			return jails, nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return nil, fmt.Errorf("fail2ban does not answer: %w", err)
			}
			return nil, fmt.Errorf("fail2ban runs without the %s jail (jails: %s); see journalctl -u fail2ban", strings.Join(missing, ", "), strings.Join(jails, ", "))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// ParseFail2banJails reads the jail list of `fail2ban-client status`.
func ParseFail2banJails(out string) []string {
	for _, line := range strings.Split(out, "\n") {
		if _, list, ok := strings.Cut(line, "Jail list:"); ok {
			var jails []string
			for _, j := range strings.Split(list, ",") {
				if j = strings.TrimSpace(j); j != "" {
					jails = append(jails, j)
				}
			}
			return jails
		}
	}
	return nil
}

// SSH.

const (
	sshBackupSuffix = ".portlama-orig"
	sshBlockStart   = "# portlama install: key-only SSH login. portlama uninstall removes this block."
	sshBlockEnd     = "# end of portlama install block"
	sshBlock        = sshBlockStart + "\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n" + sshBlockEnd + "\n"
)

// WithSSHBlock returns sshd_config text with the installer's block at the
// top (sshd keeps the first value it reads, so the block wins over later
// lines and over drop-ins in sshd_config.d) and whether that changed it.
func WithSSHBlock(text string) (string, bool) {
	if strings.HasPrefix(text, sshBlock) {
		return text, false
	}
	return sshBlock + WithoutSSHBlock(text), true
}

// WithoutSSHBlock removes the installer's block.
func WithoutSSHBlock(text string) string {
	start := strings.Index(text, sshBlockStart)
	if start < 0 {
		return text
	}
	end := strings.Index(text[start:], sshBlockEnd)
	if end < 0 {
		return text
	}
	end += start + len(sshBlockEnd)
	if end < len(text) && text[end] == '\n' {
		end++
	}
	return text[:start] + text[end:]
}

// authorizedKeys reports whether some account has an SSH key: root's
// authorized_keys or one in /home/*.
func authorizedKeys() []string {
	var found []string
	candidates := []string{"/root/.ssh/authorized_keys"}
	homes, _ := filepath.Glob("/home/*/.ssh/authorized_keys")
	candidates = append(candidates, homes...)
	for _, p := range candidates {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line != "" && !strings.HasPrefix(line, "#") {
				found = append(found, p)
				break
			}
		}
		f.Close()
	}
	return found
}

func (in *Installer) ssh(ctx context.Context) (Result, error) {
	cur, err := os.ReadFile(in.paths.SSHDConfig)
	if errors.Is(err, fs.ErrNotExist) {
		return skipped("no OpenSSH server configuration (%s)", in.paths.SSHDConfig)
	}
	if err != nil {
		return Result{}, err
	}
	want, changed := WithSSHBlock(string(cur))
	if !changed {
		return in.checkSSHEffective(ctx, false)
	}
	keys := authorizedKeys()
	if len(keys) == 0 {
		return skipped("no SSH key is authorized (/root/.ssh/authorized_keys, /home/*/.ssh/authorized_keys): password login stays on so you are not locked out; add a key and run portlama install again")
	}
	fi, err := os.Stat(in.paths.SSHDConfig)
	if err != nil {
		return Result{}, err
	}
	backup := in.paths.SSHDConfig + sshBackupSuffix
	if _, err := os.Stat(backup); errors.Is(err, fs.ErrNotExist) {
		if err := store.WriteFileAtomic(backup, cur, fi.Mode().Perm()); err != nil {
			return Result{}, fmt.Errorf("back up %s: %w", in.paths.SSHDConfig, err)
		}
	}
	candidate := in.paths.SSHDConfig + ".portlama-new"
	if err := store.WriteFileAtomic(candidate, []byte(want), 0o600); err != nil {
		return Result{}, err
	}
	defer os.Remove(candidate)
	if out, err := in.run(ctx, "sshd", "-t", "-f", candidate); err != nil {
		return Result{}, fmt.Errorf("the new SSH configuration does not pass sshd -t; nothing was changed: %s", strings.TrimSpace(string(out)))
	}
	if err := writeLike(in.paths.SSHDConfig, []byte(want), fi.Mode().Perm()); err != nil {
		return Result{}, err
	}
	if _, err := in.run(ctx, "systemctl", "try-reload-or-restart", "ssh.service"); err != nil {
		return Result{}, err
	}
	return in.checkSSHEffective(ctx, true)
}

func (in *Installer) checkSSHEffective(ctx context.Context, changed bool) (Result, error) {
	out, err := in.run(ctx, "sshd", "-T")
	if err != nil {
		return Result{}, err
	}
	if !strings.Contains("\n"+string(out), "\npasswordauthentication no\n") {
		return Result{}, fmt.Errorf("sshd still allows password login after the change (a Match block in %s?)", in.paths.SSHDConfig)
	}
	return done(changed, "password login off (keys only)")
}
