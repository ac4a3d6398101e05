package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/portlama/portlama/internal/system"
)

// DropletConfig describes a droplet.
type DropletConfig struct {
	// Name is the machine's name; default "droplet".
	Name string
	// Addr is its address; default DropletAddr (on the internet).
	Addr netip.Addr
	// LAN puts the droplet on the LAN of this NAT home (Lab.NATHome)
	// instead of the internet: a home machine booted with systemd.
	LAN string
	// Rootfs is the root file system it boots from (Lab.Rootfs).
	Rootfs *Rootfs
	// MemoryLimit puts the whole container under a cgroup-v1 memory limit
	// (bytes); 0 means none (the peak is measured either way).
	MemoryLimit int64
	// Mask lists units masked before the first boot: a home machine booted
	// from the droplet's root file system runs none of the relay's
	// packages (and the CPU they would take at each boot is shared).
	Mask []string
}

// Droplet is a booted systemd machine (systemd-nspawn) on the lab's
// network. Its root file system is an overlay on the cached Rootfs, so it
// keeps its state across Reboot and is thrown away with the lab.
type Droplet struct {
	*Host
	// Root is the droplet's root directory as seen from the host.
	Root string

	lab     *Lab
	cfg     DropletConfig
	dir     string
	machine string
	cgroups []string // memory and name=systemd cgroup directories
	nspawn  *exec.Cmd
	exited  chan error
	initPID int
	bootLog string
	booted  int
}

// Droplet creates, boots and waits for a droplet.
func (l *Lab) Droplet(ctx context.Context, cfg DropletConfig) *Droplet {
	l.t.Helper()
	if cfg.Name == "" {
		cfg.Name = "droplet"
	}
	if !cfg.Addr.IsValid() {
		cfg.Addr = DropletAddr
	}
	if cfg.Rootfs == nil {
		l.t.Fatal("lab: a droplet needs a Rootfs")
	}
	d := &Droplet{lab: l, cfg: cfg, machine: l.prefix + cfg.Name}
	seg := l.internet()
	if cfg.LAN != "" {
		seg = l.lan(cfg.LAN)
	}
	d.Host = &Host{Name: cfg.Name, NS: l.newNS(ctx, cfg.Name), Addr: cfg.Addr}
	l.attach(ctx, seg, d.NS, "eth0", cfg.Addr)
	l.mu.Lock()
	l.hosts[cfg.Name] = d.Host
	l.mu.Unlock()

	d.dir = filepath.Join(l.dir, cfg.Name)
	d.Root = filepath.Join(d.dir, "root")
	d.bootLog = filepath.Join(d.dir, "console.log")
	for _, sub := range []string{"upper", "work", "root"} {
		if err := os.MkdirAll(filepath.Join(d.dir, sub), 0o755); err != nil {
			l.t.Fatal(err)
		}
	}
	l.must(ctx, "mount", "-t", "overlay", "overlay", "-o",
		"lowerdir="+cfg.Rootfs.Dir+",upperdir="+filepath.Join(d.dir, "upper")+",workdir="+filepath.Join(d.dir, "work"), d.Root)
	l.recordMount(d.Root)
	l.onClose(func() { l.quiet("umount", d.Root) })
	// The lab has no DNS server. A resolver that answers "refused" at once
	// keeps programs that look names up (fail2ban does) from waiting on
	// timeouts, which a real VPS would not have.
	if err := d.WriteFile("/etc/resolv.conf", []byte("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"), 0o644); err != nil {
		l.t.Fatal(err)
	}
	// systemd names the machine from /etc/hostname at boot (the root file
	// system's says "droplet").
	if err := d.WriteFile("/etc/hostname", []byte(cfg.Name+"\n"), 0o644); err != nil {
		l.t.Fatal(err)
	}
	for _, u := range cfg.Mask {
		p := d.Path("/etc/systemd/system/" + u)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			l.t.Fatal(err)
		}
		if err := os.Symlink("/dev/null", p); err != nil {
			l.t.Fatalf("lab: mask %s: %v", u, err)
		}
	}
	if err := d.makeCgroups(); err != nil {
		l.t.Fatal(err)
	}
	l.onClose(d.removeCgroups)
	l.onClose(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := d.Shutdown(ctx); err != nil {
			l.t.Logf("lab: shut down %s: %v", cfg.Name, err)
		}
	})
	if err := d.Boot(ctx); err != nil {
		l.t.Fatal(err)
	}
	return d
}

// cgroup v1 hierarchies the container is placed in: memory for the limit
// and the peak, name=systemd so the container's systemd has a tree of its
// own (two containers must not share one).
var cgroupHierarchies = []string{"memory", "systemd"}

func (d *Droplet) makeCgroups() error {
	d.cgroups = nil
	for _, h := range cgroupHierarchies {
		dir := filepath.Join("/sys/fs/cgroup", h, d.machine)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("lab: create cgroup %s (the lab needs cgroup v1's %s hierarchy): %w", dir, h, err)
		}
		d.cgroups = append(d.cgroups, dir)
	}
	return d.SetMemoryLimit(d.cfg.MemoryLimit)
}

// SetMemoryLimit sets the container's memory limit (0: none).
func (d *Droplet) SetMemoryLimit(bytes int64) error {
	v := "-1"
	if bytes > 0 {
		v = strconv.FormatInt(bytes, 10)
	}
	return os.WriteFile(filepath.Join(d.cgroups[0], "memory.limit_in_bytes"), []byte(v), 0o644)
}

// Memory is the container's memory accounting.
type Memory struct {
	Usage, Peak, Limit int64
	// Failcnt counts the times the limit was hit; OOMKills the processes
	// the kernel killed for it.
	Failcnt, OOMKills int64
}

// Memory reads the container's memory cgroup.
func (d *Droplet) Memory() (Memory, error) {
	var m Memory
	read := func(name string) (int64, error) {
		b, err := os.ReadFile(filepath.Join(d.cgroups[0], name))
		if err != nil {
			return 0, err
		}
		return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	}
	var err error
	if m.Usage, err = read("memory.usage_in_bytes"); err != nil {
		return m, err
	}
	if m.Peak, err = read("memory.max_usage_in_bytes"); err != nil {
		return m, err
	}
	if m.Limit, err = read("memory.limit_in_bytes"); err != nil {
		return m, err
	}
	if m.Failcnt, err = read("memory.failcnt"); err != nil {
		return m, err
	}
	if b, err := os.ReadFile(filepath.Join(d.cgroups[0], "memory.oom_control")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
				m.OOMKills, _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	return m, nil
}

// removeCgroups removes the container's cgroups.
func (d *Droplet) removeCgroups() {
	for _, dir := range d.cgroups {
		removeCgroupTree(dir)
	}
}

// removeCgroupTree removes a cgroup directory, deepest first (the
// container's systemd made sub-cgroups).
func removeCgroupTree(dir string) {
	var dirs []string
	filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err == nil && e.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		os.Remove(dirs[i])
	}
}

// ownCgroups returns this process's path in each hierarchy.
func ownCgroups() (map[string]string, error) {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[strings.TrimPrefix(c, "name=")] = parts[2]
		}
	}
	return out, nil
}

// startInCgroups starts cmd inside the droplet's cgroups: this process
// joins them for the moment of the fork, so the child is born there (no
// window in which it runs outside the limit), then goes back.
func (d *Droplet) startInCgroups(cmd *exec.Cmd) error {
	l := d.lab
	l.cgroupMu.Lock()
	defer l.cgroupMu.Unlock()
	orig, err := ownCgroups()
	if err != nil {
		return err
	}
	self := []byte(strconv.Itoa(os.Getpid()))
	for i, h := range cgroupHierarchies {
		if err := os.WriteFile(filepath.Join(d.cgroups[i], "cgroup.procs"), self, 0o644); err != nil {
			return fmt.Errorf("lab: join cgroup %s: %w", d.cgroups[i], err)
		}
		defer os.WriteFile(filepath.Join("/sys/fs/cgroup", h, orig[h], "cgroup.procs"), self, 0o644)
	}
	return cmd.Start()
}

// Boot starts the container and waits until systemd has finished booting
// (running or degraded).
func (d *Droplet) Boot(ctx context.Context) error {
	if d.nspawn != nil {
		return errors.New("lab: droplet already running")
	}
	logf, err := os.OpenFile(d.bootLog, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	d.booted++
	fmt.Fprintf(logf, "\n===== boot %d =====\n", d.booted)
	cmd := exec.Command("systemd-nspawn", "-D", d.Root, "-b", "--register=no", "--keep-unit",
		"-M", d.machine, "--hostname="+d.cfg.Name, "--network-namespace-path=/run/netns/"+d.NS,
		"--capability=CAP_NET_ADMIN", "--console=read-only", "--resolv-conf=off")
	cmd.Stdout, cmd.Stderr = logf, logf
	// If the test process dies (a timeout), nspawn shuts the droplet down.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := d.startInCgroups(cmd); err != nil {
		logf.Close()
		return fmt.Errorf("lab: start systemd-nspawn: %w", err)
	}
	d.nspawn = cmd
	d.exited = make(chan error, 1)
	go func() { d.exited <- cmd.Wait(); logf.Close() }()
	deadline := time.Now().Add(30 * time.Second)
	for d.initPID == 0 {
		if pid := childPID(cmd.Process.Pid, "systemd"); pid > 0 {
			d.initPID = pid
			break
		}
		select {
		case err := <-d.exited:
			d.nspawn = nil
			return fmt.Errorf("lab: systemd-nspawn exited: %v (see %s)\n%s", err, d.bootLog, d.consoleTail())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lab: the droplet's systemd did not start (see %s)", d.bootLog)
		}
	}
	state, err := d.WaitBooted(ctx)
	if err != nil {
		return err
	}
	d.lab.Logf("lab: %s booted (%s)", d.cfg.Name, state)
	return nil
}

func (d *Droplet) consoleTail() string {
	b, _ := os.ReadFile(d.bootLog)
	return tail(string(b), 2000)
}

// childPID finds a child of pid whose command is comm.
func childPID(pid int, comm string) int {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, t := range tasks {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(data)) {
			c, err := strconv.Atoi(f)
			if err != nil {
				continue
			}
			if name, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", c)); strings.TrimSpace(string(name)) == comm {
				return c
			}
		}
	}
	return 0
}

// WaitBooted waits until the droplet's systemd reports running or degraded
// and returns that state.
func (d *Droplet) WaitBooted(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var last string
	for {
		out, _ := d.Exec(ctx, "systemctl", "is-system-running")
		last = strings.TrimSpace(string(out))
		if last == "running" || last == "degraded" {
			return last, nil
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("lab: %s did not finish booting (state %q)", d.cfg.Name, last)
		case err := <-d.exited:
			d.nspawn = nil
			return last, fmt.Errorf("lab: the droplet stopped while booting: %v\n%s", err, d.consoleTail())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// SystemState is `systemctl is-system-running`.
func (d *Droplet) SystemState(ctx context.Context) string {
	out, _ := d.Exec(ctx, "systemctl", "is-system-running")
	return strings.TrimSpace(string(out))
}

// Shutdown powers the droplet off (systemd shuts down cleanly) and waits
// for the container to end.
func (d *Droplet) Shutdown(ctx context.Context) error {
	if d.nspawn == nil {
		return nil
	}
	defer func() { d.nspawn, d.initPID = nil, 0 }()
	// nspawn turns SIGTERM into a clean shutdown of the container.
	d.nspawn.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
		return nil
	case <-ctx.Done():
		d.nspawn.Process.Kill()
		<-d.exited
		return fmt.Errorf("lab: %s did not shut down in time; killed", d.cfg.Name)
	}
}

// Reboot shuts the droplet down and boots it again, as a provider's power
// cycle does.
func (d *Droplet) Reboot(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := d.Shutdown(sctx); err != nil {
		return err
	}
	return d.Boot(ctx)
}

// Command builds argv to run in the droplet by entering the namespaces of
// its systemd (nsenter). It is a system.CommandFunc, so the relay's own
// systemd code can drive the droplet. The process keeps the harness's
// capabilities and cgroup; use Run for a process the droplet itself owns.
func (d *Droplet) Command(ctx context.Context, argv []string) *exec.Cmd {
	args := append([]string{"-t", strconv.Itoa(d.initPID), "-a", "--"}, argv...)
	cmd := exec.CommandContext(ctx, "nsenter", args...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Exec runs argv in the droplet with Command and returns its combined
// output.
func (d *Droplet) Exec(ctx context.Context, argv ...string) ([]byte, error) {
	return system.Run(ctx, d.Command, argv...)
}

// Services is the relay's systemd ServiceManager pointed at the droplet.
func (d *Droplet) Services() system.Systemd { return system.Systemd{Command: d.Command} }

// RunOpts say how Cmd runs a command.
type RunOpts struct {
	// User runs the command; "" is root.
	User string
	// Properties are extra unit properties (systemd-run -p), e.g.
	// "SupplementaryGroups=systemd-journal".
	Properties []string
}

// Cmd builds argv to run as a transient service of the droplet's systemd
// (systemd-run --pipe): in the droplet's cgroup, with its capabilities and
// seccomp filter, as a root shell on a real server would run it. Stdin,
// stdout and stderr are the caller's.
func (d *Droplet) Cmd(ctx context.Context, o RunOpts, argv ...string) *exec.Cmd {
	args := []string{"-t", strconv.Itoa(d.initPID), "-a", "--", "systemd-run", "--wait", "--pipe", "--quiet", "--collect", "--service-type=exec"}
	if o.User != "" {
		args = append(args, "--uid="+o.User)
	}
	for _, p := range o.Properties {
		args = append(args, "-p", p)
	}
	args = append(append(args, "--"), argv...)
	cmd := exec.CommandContext(ctx, "nsenter", args...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Run runs argv as root in the droplet (Cmd) and returns its combined
// output; a non-zero exit is an error.
func (d *Droplet) Run(ctx context.Context, argv ...string) ([]byte, error) {
	return d.RunWith(ctx, RunOpts{}, argv...)
}

// RunAs runs argv as user in the droplet (Cmd).
func (d *Droplet) RunAs(ctx context.Context, user string, argv ...string) ([]byte, error) {
	return d.RunWith(ctx, RunOpts{User: user}, argv...)
}

// RunWith runs argv in the droplet with o (Cmd).
func (d *Droplet) RunWith(ctx context.Context, o RunOpts, argv ...string) ([]byte, error) {
	cmd := d.Cmd(ctx, o, argv...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, &system.CommandError{Argv: argv, Output: strings.TrimSpace(string(out)), Err: err}
	}
	return out, nil
}

// Start runs argv in the background as transient unit name (systemd-run
// --unit), for a server the test talks to; StopUnit ends it.
func (d *Droplet) Start(ctx context.Context, unit string, argv ...string) error {
	_, err := d.Exec(ctx, append([]string{"systemd-run", "--quiet", "--collect", "--unit=" + unit, "--"}, argv...)...)
	return err
}

// StopUnit stops a unit of the droplet.
func (d *Droplet) StopUnit(ctx context.Context, unit string) error {
	_, err := d.Exec(ctx, "systemctl", "stop", unit)
	return err
}

// Rootfs is the root file system the droplet boots from (its pristine
// files, before anything ran).
func (d *Droplet) Rootfs() *Rootfs { return d.cfg.Rootfs }

// Path is where path inside the droplet is on the host.
func (d *Droplet) Path(path string) string { return filepath.Join(d.Root, path) }

// CopyIn copies the host file src to dst in the droplet (owned by root).
func (d *Droplet) CopyIn(src, dst string, mode os.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return d.WriteFile(dst, data, mode)
}

// WriteFile writes a file into the droplet (owned by root).
func (d *Droplet) WriteFile(dst string, data []byte, mode os.FileMode) error {
	p := d.Path(dst)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		return err
	}
	return os.Chmod(p, mode)
}

// ReadFile reads a file of the droplet.
func (d *Droplet) ReadFile(path string) ([]byte, error) { return os.ReadFile(d.Path(path)) }

// Listener is a listening socket in the droplet.
type Listener struct {
	Proto     string // tcp, udp
	Addr      netip.AddrPort
	Processes []string
}

// Public reports whether the socket is reachable from outside the machine.
func (l Listener) Public() bool { return !l.Addr.Addr().IsLoopback() }

// Listeners lists the droplet's listening TCP and UDP sockets (ss).
func (d *Droplet) Listeners(ctx context.Context) ([]Listener, error) {
	out, err := d.Exec(ctx, "ss", "-Htulnp")
	if err != nil {
		return nil, err
	}
	return ParseSS(string(out))
}

// ParseSS reads `ss -Htulnp` output.
func ParseSS(out string) ([]Listener, error) {
	var ls []Listener
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		local := f[4]
		host, port, ok := cutLast(local, ":")
		if !ok {
			return nil, fmt.Errorf("ss: bad local address %q", local)
		}
		host = strings.Trim(host, "[]")
		if i := strings.IndexByte(host, '%'); i >= 0 {
			host = host[:i]
		}
		if host == "*" {
			host = "0.0.0.0"
		}
		a, err := netip.ParseAddr(host)
		if err != nil {
			return nil, fmt.Errorf("ss: bad address %q: %v", local, err)
		}
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("ss: bad port %q", local)
		}
		l := Listener{Proto: f[0], Addr: netip.AddrPortFrom(a, uint16(p))}
		for _, field := range f[5:] {
			for _, part := range strings.Split(field, "((\"")[1:] {
				if name, _, ok := strings.Cut(part, "\""); ok {
					l.Processes = append(l.Processes, name)
				}
			}
			for _, part := range strings.Split(field, "),(\"")[1:] {
				if name, _, ok := strings.Cut(part, "\""); ok {
					l.Processes = append(l.Processes, name)
				}
			}
		}
		ls = append(ls, l)
	}
	return ls, nil
}

func cutLast(s, sep string) (string, string, bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}
