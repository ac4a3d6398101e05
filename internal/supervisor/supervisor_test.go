package supervisor

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/system"
	"github.com/portlama/portlama/internal/testutil"
)

// The test binary doubles as the supervised service: with SUPERVISOR_HELPER
// set it listens on that address, logs a line per SIGHUP and exits on
// SIGTERM.
func TestMain(m *testing.M) {
	if addr := os.Getenv("SUPERVISOR_HELPER"); addr != "" {
		if os.Getenv("SUPERVISOR_FAIL") != "" {
			fmt.Println("2026-01-01T00:00:00+0000 helper: refusing to start")
			os.Exit(3)
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Println("listen:", err)
			os.Exit(2)
		}
		fmt.Println("2026-01-01T00:00:00+0000 helper: listening")
		sig := make(chan os.Signal, 4)
		signal.Notify(sig, syscall.SIGHUP, syscall.SIGTERM)
		for s := range sig {
			if s == syscall.SIGTERM {
				ln.Close()
				fmt.Println("helper: stopping")
				os.Exit(0)
			}
			fmt.Println("helper: reloaded")
		}
	}
	if os.Getenv("SUPERVISOR_TICK") != "" {
		fmt.Println("tick")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func tcpReady(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
		}
		return err
	}
}

func helperUnit(t *testing.T, name, addr string, env ...string) Unit {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return Unit{
		Name:  name,
		Argv:  []string{self},
		Env:   append([]string{"SUPERVISOR_HELPER=" + addr}, env...),
		Log:   filepath.Join(t.TempDir(), name+".log"),
		Ready: tcpReady(addr),
	}
}

func state(t *testing.T, s *Supervisor, name string) string {
	t.Helper()
	st, err := s.Status(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return st.State
}

func TestLifecycle(t *testing.T) {
	s := New(nil)
	addr := testutil.FreeAddr(t)
	if err := s.Add(helperUnit(t, "portlama-tunnel", addr)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if got := state(t, s, "portlama-tunnel"); got != system.StateInactive {
		t.Fatalf("before start: %s", got)
	}
	if err := s.Enable(ctx, "portlama-tunnel"); err != nil {
		t.Fatal(err)
	}
	st, _ := s.Status(ctx, "portlama-tunnel")
	if st.State != system.StateActive || st.UnitFileState != "enabled" || st.MainPID == 0 || st.Since.IsZero() {
		t.Fatalf("after enable: %+v", st)
	}
	// Starting a running unit changes nothing.
	if err := s.Start(ctx, "portlama-tunnel"); err != nil {
		t.Fatal(err)
	}
	if st2, _ := s.Status(ctx, "portlama-tunnel"); st2.MainPID != st.MainPID {
		t.Fatalf("start of a running unit replaced its process: %d → %d", st.MainPID, st2.MainPID)
	}

	// Reload reaches the process; Follow shows it as a new line.
	lines := make(chan system.LogLine, 16)
	fctx, fcancel := context.WithCancel(ctx)
	defer fcancel()
	go s.Follow(fctx, "portlama-tunnel", 10, func(l system.LogLine) error { lines <- l; return nil })
	first := <-lines
	if first.Timestamp == "" || first.Message != "helper: listening" {
		t.Fatalf("backlog line %+v", first)
	}
	if err := s.Reload(ctx, "portlama-tunnel"); err != nil {
		t.Fatal(err)
	}
	select {
	case l := <-lines:
		if l.Message != "helper: reloaded" {
			t.Fatalf("after reload: %+v", l)
		}
	case <-ctx.Done():
		t.Fatal("no log line after reload")
	}

	if err := s.Restart(ctx, "portlama-tunnel"); err != nil {
		t.Fatal(err)
	}
	if st3, _ := s.Status(ctx, "portlama-tunnel"); st3.MainPID == st.MainPID || st3.State != system.StateActive {
		t.Fatalf("restart: %+v (was pid %d)", st3, st.MainPID)
	}

	// A crash is reported as failed and on Exited.
	exited := s.Exited("portlama-tunnel")
	if err := s.Kill("portlama-tunnel"); err != nil {
		t.Fatal(err)
	}
	<-exited
	if got := state(t, s, "portlama-tunnel"); got != system.StateFailed {
		t.Fatalf("after kill: %s", got)
	}
	if err := s.Start(ctx, "portlama-tunnel"); err != nil {
		t.Fatal(err)
	}
	if err := s.Disable(ctx, "portlama-tunnel"); err != nil {
		t.Fatal(err)
	}
	st, _ = s.Status(ctx, "portlama-tunnel")
	if st.State != system.StateInactive || st.UnitFileState != "disabled" {
		t.Fatalf("after disable: %+v", st)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatal("the stopped unit still listens")
	}
}

func TestStartFailureCarriesTheLog(t *testing.T) {
	s := New(nil)
	if err := s.Add(helperUnit(t, "portlama-auth", testutil.FreeAddr(t), "SUPERVISOR_FAIL=1")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.Start(ctx, "portlama-auth")
	if err == nil || !strings.Contains(err.Error(), "refusing to start") {
		t.Fatalf("start of a failing unit: %v", err)
	}
	if got := state(t, s, "portlama-auth"); got != system.StateFailed {
		t.Fatalf("state %s, want failed", got)
	}
}

func TestTimer(t *testing.T) {
	s := New(nil)
	self, _ := os.Executable()
	log := filepath.Join(t.TempDir(), "timer.log")
	if err := s.Add(Unit{Name: "portlama-renew.timer", Argv: []string{self}, Env: []string{"SUPERVISOR_TICK=1"}, Log: log, Every: 50 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if ts, _ := s.TimerStatus(ctx, "portlama-renew.timer"); ts.Active {
		t.Fatalf("timer active before enable: %+v", ts)
	}
	if err := s.Enable(ctx, "portlama-renew.timer"); err != nil {
		t.Fatal(err)
	}
	ticks := make(chan struct{}, 8)
	go s.Follow(ctx, "portlama-renew.timer", 0, func(l system.LogLine) error {
		if l.Message == "tick" {
			ticks <- struct{}{}
		}
		return nil
	})
	<-ticks
	ts, _ := s.TimerStatus(ctx, "portlama-renew.timer")
	if !ts.Active || ts.LastRun.IsZero() || !ts.NextRun.After(ts.LastRun) {
		t.Fatalf("timer status %+v", ts)
	}
	if err := s.Stop(ctx, "portlama-renew.timer"); err != nil {
		t.Fatal(err)
	}
	if ts, _ := s.TimerStatus(ctx, "portlama-renew.timer"); ts.Active || !ts.NextRun.IsZero() {
		t.Fatalf("after stop %+v", ts)
	}
}

func TestAddRefusesBadUnits(t *testing.T) {
	s := New(nil)
	for name, u := range map[string]Unit{
		"bad name":     {Name: "-rf", Argv: []string{"x"}, Log: "/tmp/x"},
		"no command":   {Name: "a", Log: "/tmp/x"},
		"no log":       {Name: "b", Argv: []string{"x"}},
		"timer w/proc": {Name: "c", Every: time.Second, Process: fakeProc{}},
	} {
		if err := s.Add(u); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := s.Add(Unit{Name: "d", Argv: []string{"x"}, Log: "/tmp/x"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(Unit{Name: "d", Argv: []string{"x"}, Log: "/tmp/x"}); err == nil {
		t.Fatal("duplicate accepted")
	}
	if err := s.Start(context.Background(), "nope"); err == nil {
		t.Fatal("unknown unit started")
	}
}

type fakeProc struct{}

func (fakeProc) Start(context.Context) error  { return nil }
func (fakeProc) Stop(context.Context) error   { return nil }
func (fakeProc) Reload(context.Context) error { return nil }
func (fakeProc) Pid() int                     { return 0 }
