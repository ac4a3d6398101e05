package nginx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// InstanceConfig configures a self-run nginx (demo and tests).
type InstanceConfig struct {
	// Binary is the nginx executable; "" looks up "nginx" in PATH, then
	// /usr/sbin/nginx.
	Binary string
	// Prefix is the instance directory: nginx.conf, nginx.pid, error.log,
	// access.log and tmp/. Created when missing.
	Prefix string
	// NginxDir is config.Layout.NginxDir: nginx.conf includes its
	// conf.d/*.conf and sites-enabled/*.
	NginxDir string
	// Workers is worker_processes; 0 means "auto".
	Workers int
	// AccessLog enables <prefix>/access.log.
	AccessLog bool
	// Logger receives lifecycle messages; nil discards them.
	Logger *slog.Logger
}

// Instance is an nginx master process run as a child of this process with
// its own prefix. It implements Controller. Start it with Start, stop it
// with Stop. The process outlives the context given to Start (that context
// bounds only the start-up); it receives SIGTERM if this process dies.
type Instance struct {
	cfg     InstanceConfig
	bin     string
	modules []string
	log     *slog.Logger

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	stderr  *lockedBuffer
	waitErr error
	// reloads counts completed reloads (tests and benchmarks read it to
	// see how many changes shared one).
	reloads atomic.Int64
}

// Reloads returns the number of reloads the instance has completed.
func (i *Instance) Reloads() int64 { return i.reloads.Load() }

// NewInstance checks cfg and returns an Instance that is not yet running.
func NewInstance(cfg InstanceConfig) (*Instance, error) {
	if _, err := safePath("instance prefix", cfg.Prefix); err != nil {
		return nil, err
	}
	if _, err := safePath("nginx dir", cfg.NginxDir); err != nil {
		return nil, err
	}
	bin := cfg.Binary
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("nginx"); err != nil {
			bin = "/usr/sbin/nginx"
		}
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("nginx binary: %w", err)
	}
	mods, err := requiredModules(bin)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Instance{cfg: cfg, bin: bin, modules: mods, log: log}, nil
}

// requiredModules returns the paths of RequiredModules in the modules
// directory bin was built with (nginx -V: --modules-path).
func requiredModules(bin string) ([]string, error) {
	out, _ := exec.Command(bin, "-V").CombinedOutput()
	dir := "/usr/lib/nginx/modules"
	for _, f := range strings.Fields(string(out)) {
		if v, ok := strings.CutPrefix(f, "--modules-path="); ok {
			dir = v
		}
	}
	var paths []string
	for _, m := range RequiredModules {
		p := filepath.Join(dir, m)
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("nginx module %s is missing (%v): install it with `sudo apt-get install libnginx-mod-http-js`", m, err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// ConfPath is the instance's nginx.conf.
func (i *Instance) ConfPath() string { return confPath(i.cfg.Prefix) }

// ErrorLog is the instance's error log.
func (i *Instance) ErrorLog() string { return errorLogPath(i.cfg.Prefix) }

// Prefix is the instance directory.
func (i *Instance) Prefix() string { return i.cfg.Prefix }

// Pid returns the master's pid, or 0 when not running.
func (i *Instance) Pid() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.cmd == nil || i.exited() {
		return 0
	}
	return i.cmd.Process.Pid
}

func (i *Instance) exited() bool {
	select {
	case <-i.done:
		return true
	default:
		return false
	}
}

func (i *Instance) baseArgs() []string {
	return []string{"-c", i.ConfPath(), "-p", i.cfg.Prefix + "/", "-e", i.ErrorLog()}
}

// prepare creates the directories and writes nginx.conf.
func (i *Instance) prepare() error {
	for _, d := range []string{
		filepath.Join(i.cfg.Prefix, "tmp"),
		filepath.Join(i.cfg.NginxDir, "conf.d"),
		filepath.Join(i.cfg.NginxDir, "snippets"),
		filepath.Join(i.cfg.NginxDir, "sites-available"),
		filepath.Join(i.cfg.NginxDir, "sites-enabled"),
	} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	mc := MainConf{Prefix: i.cfg.Prefix, NginxDir: i.cfg.NginxDir, Workers: i.cfg.Workers, AccessLog: i.cfg.AccessLog, Modules: i.modules}
	if os.Geteuid() == 0 {
		// Workers must read the 0600 files and the root-owned temp dirs.
		mc.User = "root"
	}
	conf, err := RenderMainConf(mc)
	if err != nil {
		return err
	}
	if err := os.WriteFile(i.ConfPath(), conf, 0o644); err != nil {
		return fmt.Errorf("write nginx.conf: %w", err)
	}
	return nil
}

// Start writes nginx.conf, tests the configuration and starts the master
// process. It returns once nginx listens (its pid file is written) or
// fails with nginx's output.
func (i *Instance) Start(ctx context.Context) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.cmd != nil && !i.exited() {
		return errors.New("nginx instance already running")
	}
	if err := i.prepare(); err != nil {
		return err
	}
	if out, err := i.test(ctx); err != nil {
		return fmt.Errorf("nginx config test failed: %s", out)
	}
	_ = os.Remove(pidPath(i.cfg.Prefix))
	args := append(i.baseArgs(), "-g", "daemon off;")
	cmd := exec.Command(i.bin, args...)
	cmd.SysProcAttr = procAttr()
	stderr := &lockedBuffer{}
	cmd.Stdout = io.Discard
	cmd.Stderr = stderr
	// Pdeathsig fires when the OS thread that started the child exits, not
	// the process: start and wait on one locked thread so that thread lives
	// exactly as long as nginx.
	done := make(chan struct{})
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		// Not under i.mu: Start and Stop hold it while waiting for done.
		// Readers look at waitErr only after <-done.
		i.waitErr = cmd.Wait()
		close(done)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start nginx: %w", err)
	}
	i.cmd, i.stderr, i.done = cmd, stderr, done

	pid := strconv.Itoa(cmd.Process.Pid)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(15 * time.Second)
	for {
		if b, err := os.ReadFile(pidPath(i.cfg.Prefix)); err == nil && strings.TrimSpace(string(b)) == pid {
			i.log.Info("nginx started", "pid", cmd.Process.Pid, "prefix", i.cfg.Prefix)
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("nginx exited during start-up: %s %s", strings.TrimSpace(stderr.String()), i.logTail(0))
		case <-ctx.Done():
			i.killLocked()
			return fmt.Errorf("start nginx: %w", ctx.Err())
		case <-timeout:
			i.killLocked()
			return errors.New("start nginx: no pid file after 15 s")
		case <-tick.C:
		}
	}
}

// Test runs "nginx -t" against the instance's configuration.
func (i *Instance) Test(ctx context.Context) (string, error) {
	return i.test(ctx)
}

func (i *Instance) test(ctx context.Context) (string, error) {
	args := append([]string{"-t"}, i.baseArgs()...)
	out, err := exec.CommandContext(ctx, i.bin, args...).CombinedOutput()
	text := strings.TrimSpace(string(out))
	if err != nil {
		return text, fmt.Errorf("nginx -t: %w", err)
	}
	return text, nil
}

// Reload sends SIGHUP to the master and waits until the new configuration
// is in effect: new workers run and every old worker has exited or is
// shutting down (so it accepts no new connections). A configuration the
// master refuses yields an error with its log message. Without a deadline
// in ctx it waits at most 15 s.
func (i *Instance) Reload(ctx context.Context) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.cmd == nil || i.exited() {
		return errors.New("reload nginx: instance is not running")
	}
	master := i.cmd.Process.Pid
	old, err := childPids(master)
	if err != nil {
		return fmt.Errorf("reload nginx: %w", err)
	}
	var offset int64
	if st, err := os.Stat(i.ErrorLog()); err == nil {
		offset = st.Size()
	}
	if err := i.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		return fmt.Errorf("reload nginx: %w", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if tail := i.logTail(offset); strings.Contains(tail, "[emerg]") {
			return fmt.Errorf("reload nginx: %s", tail)
		}
		cur, err := childPids(master)
		if err == nil && reloaded(old, cur) {
			i.reloads.Add(1)
			i.log.Info("nginx reloaded", "pid", master)
			return nil
		}
		select {
		case <-i.done:
			return fmt.Errorf("reload nginx: nginx exited: %s", i.logTail(offset))
		case <-ctx.Done():
			return fmt.Errorf("reload nginx: waiting for new workers: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// reloaded reports whether cur has a worker that was not in old and every
// old worker has gone or is shutting down.
func reloaded(old, cur []int) bool {
	oldSet := map[int]bool{}
	for _, p := range old {
		oldSet[p] = true
	}
	fresh := false
	for _, p := range cur {
		if !oldSet[p] {
			fresh = true
			continue
		}
		if !strings.Contains(procTitle(p), "shutting down") {
			return false
		}
	}
	return fresh
}

// Stop terminates nginx (fast shutdown), waits for it and kills any worker
// left behind. Stopping a stopped instance is a no-op.
func (i *Instance) Stop(ctx context.Context) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.cmd == nil || i.exited() {
		return nil
	}
	workers, _ := childPids(i.cmd.Process.Pid)
	_ = i.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-i.done:
	case <-ctx.Done():
		i.killLocked()
	case <-time.After(10 * time.Second):
		i.killLocked()
	}
	for _, p := range workers {
		if strings.HasPrefix(procTitle(p), "nginx:") {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	}
	i.log.Info("nginx stopped", "prefix", i.cfg.Prefix)
	return nil
}

// killLocked SIGKILLs the master and waits for it; i.mu is held.
func (i *Instance) killLocked() {
	workers, _ := childPids(i.cmd.Process.Pid)
	_ = i.cmd.Process.Kill()
	<-i.done
	for _, p := range workers {
		if strings.HasPrefix(procTitle(p), "nginx:") {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	}
}

// logTail returns the error log from offset on (at most the last 4 KiB).
func (i *Instance) logTail(offset int64) string {
	f, err := os.Open(i.ErrorLog())
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() <= offset {
		return ""
	}
	if st.Size()-offset > 4096 {
		offset = st.Size() - 4096
	}
	b := make([]byte, st.Size()-offset)
	n, _ := f.ReadAt(b, offset)
	return strings.TrimSpace(string(b[:n]))
}

// childPids lists the processes whose parent is pid, from /proc.
func childPids(pid int) ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var out []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may contain spaces and ')'.
		j := bytes.LastIndexByte(b, ')')
		if j < 0 {
			continue
		}
		f := strings.Fields(string(b[j+1:]))
		if len(f) < 2 {
			continue
		}
		if pp, err := strconv.Atoi(f[1]); err == nil && pp == pid {
			out = append(out, p)
		}
	}
	return out, nil
}

// procTitle returns the process title (nginx rewrites argv, e.g. "nginx:
// worker process is shutting down"), or "" when the process is gone.
func procTitle(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return ""
	}
	return strings.TrimRight(strings.ReplaceAll(string(b), "\x00", " "), " ")
}

// lockedBuffer collects a child's stderr.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 64<<10 {
		return len(p), nil
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
