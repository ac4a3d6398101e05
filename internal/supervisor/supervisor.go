// Package supervisor is the system.ServiceManager of the demo and the
// tests: it runs the relay's services as child processes of this process
// (the tunnel server and the auth server as `portlama tunnel-server` /
// `auth-server`, nginx through its own Process), a timer unit as a command
// run at an interval, and answers Status and Follow from what it started.
// On a relay the same calls go to systemd (system.Systemd); provisioning
// does not know the difference.
//
// A unit is registered once with Add. Start runs it and waits for its
// readiness probe; Stop sends SIGTERM (SIGKILL after a grace period);
// Reload sends SIGHUP; Enable is Start plus "enabled", Disable is Stop.
// A unit's output goes to its log file, which Follow reads like journalctl.
// Children get SIGTERM when this process dies (Pdeathsig), so nothing
// outlives a killed demo.
package supervisor

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/portlama/portlama/internal/system"
)

// Process is a unit that manages its own process (nginx.Instance is one,
// through an adapter). Running reports its main pid, 0 when it is not.
type Process interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	Reload(ctx context.Context) error
	Pid() int
}

// Unit describes one service. Exactly one of Argv and Process is set.
type Unit struct {
	// Name is the unit name as provisioning uses it ("portlama-tunnel",
	// "nginx", "portlama-renew.timer").
	Name string
	// Argv is the command of a child-process unit; Env is added to this
	// process's environment; Log receives its stdout and stderr.
	Argv []string
	Env  []string
	Log  string
	// Every makes the unit a timer: while it is active, Argv runs every
	// Every (the first run after one interval), like a systemd .timer with
	// OnUnitActiveSec. The timer itself is the unit's state.
	Every time.Duration
	// Process is a unit that runs its own process.
	Process Process
	// Ready is the readiness probe Start waits for (e.g. the port
	// accepts connections); nil means "started".
	Ready func(ctx context.Context) error
	// StopTimeout is the grace period between SIGTERM and SIGKILL;
	// 0 means 5 s.
	StopTimeout time.Duration
}

// ErrUnknownUnit is returned for a unit that was never added.
var ErrUnknownUnit = errors.New("unknown unit")

// Supervisor runs units. The zero value is not usable; use New.
type Supervisor struct {
	log *slog.Logger
	now func() time.Time

	mu    sync.Mutex
	units map[string]*unit
}

// New returns an empty Supervisor. A nil logger discards messages.
func New(log *slog.Logger) *Supervisor {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Supervisor{log: log, now: time.Now, units: map[string]*unit{}}
}

var _ system.ServiceManager = (*Supervisor)(nil)

// Add registers u. Adding a name twice is an error.
func (s *Supervisor) Add(u Unit) error {
	if err := system.ValidUnit(u.Name); err != nil {
		return err
	}
	if (len(u.Argv) == 0) == (u.Process == nil) {
		return fmt.Errorf("unit %s: exactly one of Argv and Process must be set", u.Name)
	}
	if u.Every < 0 || (u.Every > 0 && u.Process != nil) {
		return fmt.Errorf("unit %s: a timer runs a command", u.Name)
	}
	if u.Process == nil && u.Log == "" {
		return fmt.Errorf("unit %s: no log file", u.Name)
	}
	if u.StopTimeout == 0 {
		u.StopTimeout = 5 * time.Second
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.units[u.Name]; dup {
		return fmt.Errorf("unit %s added twice", u.Name)
	}
	s.units[u.Name] = &unit{spec: u, sup: s}
	return nil
}

func (s *Supervisor) unit(name string) (*unit, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.units[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownUnit, name)
	}
	return u, nil
}

// Start starts the unit (a no-op when it runs) and waits for its
// readiness probe; a unit that exits or fails its probe is stopped and the
// error carries the end of its log.
func (s *Supervisor) Start(ctx context.Context, name string) error {
	u, err := s.unit(name)
	if err != nil {
		return err
	}
	return u.start(ctx)
}

// Stop stops the unit (a no-op when it does not run).
func (s *Supervisor) Stop(ctx context.Context, name string) error {
	u, err := s.unit(name)
	if err != nil {
		return err
	}
	return u.stop(ctx)
}

// Restart stops and starts the unit.
func (s *Supervisor) Restart(ctx context.Context, name string) error {
	u, err := s.unit(name)
	if err != nil {
		return err
	}
	if err := u.stop(ctx); err != nil {
		return err
	}
	return u.start(ctx)
}

// Reload sends SIGHUP to a child-process unit, or calls Process.Reload.
func (s *Supervisor) Reload(ctx context.Context, name string) error {
	u, err := s.unit(name)
	if err != nil {
		return err
	}
	return u.reload(ctx)
}

// Enable marks the unit enabled and starts it.
func (s *Supervisor) Enable(ctx context.Context, name string) error {
	u, err := s.unit(name)
	if err != nil {
		return err
	}
	u.mu.Lock()
	u.enabled = true
	u.mu.Unlock()
	return u.start(ctx)
}

// Disable marks the unit disabled and stops it.
func (s *Supervisor) Disable(ctx context.Context, name string) error {
	u, err := s.unit(name)
	if err != nil {
		return err
	}
	u.mu.Lock()
	u.enabled = false
	u.mu.Unlock()
	return u.stop(ctx)
}

// Status reports the unit's state: active while it runs, failed when its
// process exited on its own, inactive otherwise.
func (s *Supervisor) Status(_ context.Context, name string) (system.UnitStatus, error) {
	u, err := s.unit(name)
	if err != nil {
		st := system.UnitStatus{Unit: name, State: system.StateInactive, ActiveState: "inactive", SubState: "dead", LoadState: "not-found"}
		return st, nil
	}
	return u.status(), nil
}

// Kill sends SIGKILL to a child-process unit's process and waits for it
// to exit; the unit counts as failed afterwards (tests of crash recovery).
func (s *Supervisor) Kill(name string) error {
	u, err := s.unit(name)
	if err != nil {
		return err
	}
	u.mu.Lock()
	p := u.proc
	u.mu.Unlock()
	if p == nil {
		return nil
	}
	p.cmd.Process.Kill()
	<-p.done
	return nil
}

// Exited returns a channel closed when the unit's current process exits
// without being stopped through the Supervisor; nil when it does not run.
func (s *Supervisor) Exited(name string) <-chan struct{} {
	u, err := s.unit(name)
	if err != nil {
		return nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.proc == nil {
		return nil
	}
	return u.proc.crashed
}

// LogPath returns the unit's log file ("" for a Process unit).
func (s *Supervisor) LogPath(name string) string {
	u, err := s.unit(name)
	if err != nil {
		return ""
	}
	return u.spec.Log
}

// Tail returns up to the last n bytes of the unit's log.
func (s *Supervisor) Tail(name string, n int64) string {
	return tailFile(s.LogPath(name), n)
}

// TimerStatus reports a timer unit's last and next run (zero when none).
func (s *Supervisor) TimerStatus(_ context.Context, name string) (system.TimerStatus, error) {
	u, err := s.unit(name)
	if err != nil {
		return system.TimerStatus{Unit: name}, nil
	}
	st := u.status()
	u.mu.Lock()
	defer u.mu.Unlock()
	ts := system.TimerStatus{Unit: name, Active: st.State == system.StateActive, LastRun: u.lastRun}
	if ts.Active && u.spec.Every > 0 {
		ts.NextRun = u.nextRun
	}
	return ts, nil
}

// StopAll stops every unit at once, each with its grace period.
func (s *Supervisor) StopAll(ctx context.Context) {
	s.mu.Lock()
	us := make([]*unit, 0, len(s.units))
	for _, u := range s.units {
		us = append(us, u)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, u := range us {
		wg.Go(func() {
			if err := u.stop(ctx); err != nil {
				s.log.Warn("stop unit", "unit", u.spec.Name, "err", err)
			}
		})
	}
	wg.Wait()
}

// Follow passes the last backlog lines of the unit's log to fn, then every
// new line, until ctx ends (nil) or fn fails (its error).
func (s *Supervisor) Follow(ctx context.Context, name string, backlog int, fn func(system.LogLine) error) error {
	path := s.LogPath(name)
	if path == "" {
		return fmt.Errorf("%w: unit %s has no log", system.ErrLogStart, name)
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			return fmt.Errorf("%w: %v", system.ErrLogStart, err)
		}
		f, err = os.Open(path)
	}
	if err != nil {
		return fmt.Errorf("%w: %v", system.ErrLogStart, err)
	}
	defer f.Close()
	lines, err := lastLines(f, backlog)
	if err != nil {
		return err
	}
	for _, l := range lines {
		if err := fn(system.ParseLogLine(l)); err != nil {
			return err
		}
	}
	// Poll for appended lines: the log is a plain file.
	br := bufio.NewReader(f)
	var partial string
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		for {
			chunk, err := br.ReadString('\n')
			if err == nil {
				if err := fn(system.ParseLogLine(partial + chunk[:len(chunk)-1])); err != nil {
					return err
				}
				partial = ""
				continue
			}
			partial += chunk
			break
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// lastLines returns the last n complete lines of f and leaves f positioned
// at its end.
func lastLines(f *os.File, n int) ([]string, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	start := max(st.Size()-256<<10, 0)
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if start > 0 && len(lines) > 0 {
		lines = lines[1:] // the first line may be cut
	}
	if n >= 0 && len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines, nil
}

// unit is a registered unit and its current process.
type unit struct {
	spec Unit
	sup  *Supervisor

	op      sync.Mutex // serialises start/stop/reload
	mu      sync.Mutex // guards the fields below
	enabled bool
	proc    *proc
	since   time.Time
	failed  bool
	// timer state
	timerStop chan struct{}
	timerDone chan struct{}
	lastRun   time.Time
	nextRun   time.Time
}

// proc is one run of a child-process unit.
type proc struct {
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process exited
	crashed chan struct{} // closed when it exited without Stop
	stopped bool
}

func (u *unit) running() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case u.spec.Process != nil:
		return u.spec.Process.Pid() != 0
	case u.spec.Every > 0:
		return u.timerStop != nil
	default:
		return u.proc != nil
	}
}

func (u *unit) start(ctx context.Context) error {
	u.op.Lock()
	defer u.op.Unlock()
	if u.running() {
		return nil
	}
	name := u.spec.Name
	switch {
	case u.spec.Process != nil:
		if err := u.spec.Process.Start(ctx); err != nil {
			u.setFailed()
			return fmt.Errorf("start %s: %w", name, err)
		}
	case u.spec.Every > 0:
		u.startTimer()
	default:
		if err := u.spawn(); err != nil {
			u.setFailed()
			return fmt.Errorf("start %s: %w", name, err)
		}
	}
	u.mu.Lock()
	u.since, u.failed = u.sup.now(), false
	u.mu.Unlock()
	if u.spec.Ready == nil {
		return nil
	}
	if err := u.waitReady(ctx); err != nil {
		u.stopLocked(context.WithoutCancel(ctx))
		u.setFailed()
		return fmt.Errorf("%s did not become ready: %w\n%s", name, err, tailFile(u.spec.Log, 2048))
	}
	return nil
}

func (u *unit) setFailed() {
	u.mu.Lock()
	u.failed = true
	u.mu.Unlock()
}

// waitReady runs the readiness probe until it passes, the process exits
// or ctx ends.
func (u *unit) waitReady(ctx context.Context) error {
	var exited <-chan struct{}
	u.mu.Lock()
	if u.proc != nil {
		exited = u.proc.done
	}
	u.mu.Unlock()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := u.spec.Ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%v (last probe: %v)", ctx.Err(), err)
		case <-exited:
			return errors.New("the process exited")
		case <-tick.C:
		}
	}
}

// spawn starts the child process of a command unit.
func (u *unit) spawn() error {
	f, err := os.OpenFile(u.spec.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	cmd := exec.Command(u.spec.Argv[0], u.spec.Argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), u.spec.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
	p := &proc{cmd: cmd, done: make(chan struct{}), crashed: make(chan struct{})}
	started := make(chan error, 1)
	// Pdeathsig fires when the thread that started the child exits: start
	// and wait on one locked thread that lives as long as the child.
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			f.Close()
			started <- err
			return
		}
		started <- nil
		err := cmd.Wait()
		f.Close()
		u.mu.Lock()
		if u.proc == p {
			u.proc = nil
			if !p.stopped {
				u.failed = true
				u.sup.log.Warn("unit exited", "unit", u.spec.Name, "err", err)
			}
		}
		stopped := p.stopped
		u.mu.Unlock()
		if !stopped {
			close(p.crashed)
		}
		close(p.done)
	}()
	if err := <-started; err != nil {
		return err
	}
	u.mu.Lock()
	u.proc = p
	u.mu.Unlock()
	return nil
}

func (u *unit) stop(ctx context.Context) error {
	u.op.Lock()
	defer u.op.Unlock()
	return u.stopLocked(ctx)
}

func (u *unit) stopLocked(ctx context.Context) error {
	switch {
	case u.spec.Process != nil:
		if u.spec.Process.Pid() == 0 {
			return nil
		}
		return u.spec.Process.Stop(ctx)
	case u.spec.Every > 0:
		u.stopTimer()
		return nil
	}
	u.mu.Lock()
	p := u.proc
	if p != nil {
		p.stopped = true
	}
	u.mu.Unlock()
	if p == nil {
		return nil
	}
	// The whole process group: a unit's own children go with it.
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(u.spec.StopTimeout):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	return nil
}

func (u *unit) reload(ctx context.Context) error {
	u.op.Lock()
	defer u.op.Unlock()
	switch {
	case u.spec.Process != nil:
		return u.spec.Process.Reload(ctx)
	case u.spec.Every > 0:
		return nil
	}
	u.mu.Lock()
	p := u.proc
	u.mu.Unlock()
	if p == nil {
		return fmt.Errorf("reload %s: not running", u.spec.Name)
	}
	return p.cmd.Process.Signal(syscall.SIGHUP)
}

func (u *unit) status() system.UnitStatus {
	st := system.UnitStatus{Unit: u.spec.Name, LoadState: "loaded"}
	running := u.running()
	u.mu.Lock()
	defer u.mu.Unlock()
	st.UnitFileState = "disabled"
	if u.enabled {
		st.UnitFileState = "enabled"
	}
	switch {
	case running:
		st.State, st.ActiveState, st.SubState, st.Since = system.StateActive, "active", "running", u.since
		if u.proc != nil {
			st.MainPID = u.proc.cmd.Process.Pid
		} else if u.spec.Process != nil {
			st.MainPID = u.spec.Process.Pid()
		}
		if u.spec.Every > 0 {
			st.SubState = "waiting"
		}
	case u.failed:
		st.State, st.ActiveState, st.SubState = system.StateFailed, "failed", "failed"
	default:
		st.State, st.ActiveState, st.SubState = system.StateInactive, "inactive", "dead"
	}
	return st
}

// startTimer runs the timer's command every interval until stopTimer.
func (u *unit) startTimer() {
	stop, done := make(chan struct{}), make(chan struct{})
	u.mu.Lock()
	u.timerStop, u.timerDone = stop, done
	u.nextRun = u.sup.now().Add(u.spec.Every)
	u.mu.Unlock()
	go func() {
		defer close(done)
		t := time.NewTicker(u.spec.Every)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			u.runOnce(stop)
		}
	}()
}

// runOnce runs the timer's command to its end (or until the timer stops).
func (u *unit) runOnce(stop <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	u.mu.Lock()
	u.lastRun = u.sup.now()
	u.nextRun = u.lastRun.Add(u.spec.Every)
	u.mu.Unlock()
	f, err := os.OpenFile(u.spec.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		u.sup.log.Warn("timer log", "unit", u.spec.Name, "err", err)
		return
	}
	defer f.Close()
	cmd := exec.CommandContext(ctx, u.spec.Argv[0], u.spec.Argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), u.spec.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Run(); err != nil {
		u.sup.log.Warn("timer run failed", "unit", u.spec.Name, "err", err)
	}
}

func (u *unit) stopTimer() {
	u.mu.Lock()
	stop, done := u.timerStop, u.timerDone
	u.timerStop, u.timerDone = nil, nil
	u.nextRun = time.Time{}
	u.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
}

// tailFile returns up to the last n bytes of the file at path.
func tailFile(path string, n int64) string {
	if path == "" {
		return ""
	}
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > n {
		f.Seek(st.Size()-n, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}
