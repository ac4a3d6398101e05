package system

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestFormatUptime(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{-time.Second, "0s"},
		{45 * time.Second, "45s"},
		{59*time.Second + 999*time.Millisecond, "59s"},
		{time.Minute, "1m"},
		{12*time.Minute + 30*time.Second, "12m"},
		{5*time.Hour + 30*time.Minute, "5h 30m"},
		{5 * time.Hour, "5h 0m"},
		{2*24*time.Hour + 5*time.Hour + 30*time.Minute, "2d 5h 30m"},
		{3 * 24 * time.Hour, "3d 0h 0m"},
	} {
		if got := FormatUptime(c.d); got != c.want {
			t.Errorf("FormatUptime(%v) = %q, want %q", c.d, got, c.want)
		}
	}
}

func TestParseShow(t *testing.T) {
	out := "LoadState=loaded\nActiveState=active\nSubState=running\nUnitFileState=enabled\nMainPID=1234\nActiveEnterTimestamp=@1764752179\n"
	st, err := ParseShow("portlama-panel", []byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if st.State != StateActive || st.MainPID != 1234 || st.UnitFileState != "enabled" || st.Since.Unix() != 1764752179 {
		t.Fatalf("parsed %+v", st)
	}
	if up := st.Uptime(time.Unix(1764752179+90, 0)); up != 90*time.Second {
		t.Fatalf("uptime %v", up)
	}

	st, err = ParseShow("x", []byte("LoadState=loaded\nActiveState=activating\nSubState=start\nMainPID=0\nActiveEnterTimestamp=\n"))
	if err != nil || st.State != StateUnknown || st.MainPID != 0 || !st.Since.IsZero() {
		t.Fatalf("activating: %+v %v", st, err)
	}
	if st.Uptime(time.Now()) != 0 {
		t.Fatal("a unit that is not active has no uptime")
	}
	st, err = ParseShow("x", []byte("LoadState=not-found\nActiveState=inactive\nSubState=dead\nActiveEnterTimestamp=@1764752179\n"))
	if err != nil || st.State != StateInactive || st.LoadState != "not-found" || !st.Since.IsZero() {
		t.Fatalf("inactive: %+v %v", st, err)
	}
	st, err = ParseShow("x", []byte("ActiveState=failed\nActiveEnterTimestamp=Wed 2026-12-03 08:56:19 UTC\n"))
	if err != nil || st.State != StateFailed {
		t.Fatalf("failed: %+v %v", st, err)
	}
	if _, err := ParseShow("x", []byte("Failed to connect to bus\n")); err == nil {
		t.Fatal("output without a state must be an error")
	}
}

func TestParseLogLine(t *testing.T) {
	for _, c := range []struct {
		in   string
		want LogLine
	}{
		{"2026-12-03T08:56:19+0000 vm portlama[31]: panel listening", LogLine{"2026-12-03T08:56:19+0000", "vm portlama[31]: panel listening"}},
		{"2026-12-03T08:56:19+00:00 vm sshd[2]: x", LogLine{"2026-12-03T08:56:19+00:00", "vm sshd[2]: x"}},
		{"2026-12-03T08:56:19.123456+0000 h p: m", LogLine{"2026-12-03T08:56:19.123456+0000", "h p: m"}},
		{"-- Boot 1234 --", LogLine{Message: "-- Boot 1234 --"}},
		{"2026-12-03 not iso", LogLine{Message: "2026-12-03 not iso"}},
		{"", LogLine{}},
		{"2026-12-03T08:56:19Z", LogLine{Timestamp: "2026-12-03T08:56:19Z"}},
	} {
		if got := ParseLogLine(c.in); got != c.want {
			t.Errorf("ParseLogLine(%q) = %+v, want %+v", c.in, got, c.want)
		}
	}
}

func FuzzParseLogLine(f *testing.F) {
	for _, s := range []string{"2026-12-03T08:56:19+0000 vm x[1]: y", "-- No entries --", "", " ", "2026-12-03T08:56:19+00:00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l := ParseLogLine(s)
		if l.Timestamp == "" && l.Message != s {
			t.Fatalf("a line without timestamp must be kept whole: %q → %+v", s, l)
		}
		if l.Timestamp != "" && !strings.HasPrefix(s, l.Timestamp) {
			t.Fatalf("timestamp %q is not the prefix of %q", l.Timestamp, s)
		}
		if l.Timestamp != "" && l.Message != "" && l.Timestamp+" "+l.Message != s {
			t.Fatalf("split loses text: %q → %+v", s, l)
		}
	})
}

func FuzzParseShow(f *testing.F) {
	f.Add("LoadState=loaded\nActiveState=active\nMainPID=12\nActiveEnterTimestamp=@1\n")
	f.Add("ActiveState=\n")
	f.Add("garbage")
	f.Fuzz(func(t *testing.T, s string) {
		st, err := ParseShow("u", []byte(s))
		if err != nil {
			return
		}
		switch st.State {
		case StateActive, StateInactive, StateFailed, StateUnknown:
		default:
			t.Fatalf("state %q is not one of the contract's", st.State)
		}
		if st.State != StateActive && !st.Since.IsZero() {
			t.Fatal("only an active unit has a start time")
		}
		if st.MainPID < 0 {
			t.Fatal("negative pid")
		}
	})
}

func TestValidUnit(t *testing.T) {
	for _, ok := range []string{"nginx", "portlama-panel", "portlama-helper.socket", "portlama-renew.timer", "ssh.service"} {
		if err := ValidUnit(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-x", "--now", "Nginx", "a b", "nginx;reboot", "x.mount", "../x", strings.Repeat("a", 70)} {
		if ValidUnit(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	// Invalid names never reach systemctl.
	var ran bool
	s := Systemd{Command: func(ctx context.Context, argv []string) *exec.Cmd { ran = true; return Exec(ctx, []string{"true"}) }}
	if err := s.Restart(context.Background(), "--all"); err == nil || ran {
		t.Fatalf("an option as unit name: err %v, ran %v", err, ran)
	}
}

// The tests below run this test binary as a stand-in journalctl: it prints
// the lines in PORTLAMA_FAKE_JOURNAL and exits with
// PORTLAMA_FAKE_JOURNAL_EXIT.
func TestMain(m *testing.M) {
	if lines, ok := os.LookupEnv("PORTLAMA_FAKE_JOURNAL"); ok {
		if lines != "" {
			for _, l := range strings.Split(lines, "|") {
				fmt.Println(l)
			}
		}
		code, _ := strconv.Atoi(os.Getenv("PORTLAMA_FAKE_JOURNAL_EXIT"))
		os.Exit(code)
	}
	os.Exit(m.Run())
}

func fakeRun(ctx context.Context, lines string, exit int) *exec.Cmd {
	cmd := Exec(ctx, []string{os.Args[0], "-test.run=^$"})
	cmd.Env = append(os.Environ(), "PORTLAMA_FAKE_JOURNAL="+lines, "PORTLAMA_FAKE_JOURNAL_EXIT="+strconv.Itoa(exit))
	return cmd
}

func TestFollowPollsAfterTheCursor(t *testing.T) {
	// Each journalctl run prints its entries and the cursor after them.
	runs := []string{
		"2026-12-03T08:56:19+0000 h a[1]: one|two|-- cursor: c1",
		"three|-- cursor: c2",
		"",
	}
	var argvs []string
	var mu sync.Mutex
	s := Systemd{FollowInterval: time.Millisecond, Command: func(ctx context.Context, argv []string) *exec.Cmd {
		mu.Lock()
		i := min(len(argvs), len(runs)-1)
		argvs = append(argvs, strings.Join(argv, " "))
		mu.Unlock()
		return fakeRun(ctx, runs[i], 0)
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got []LogLine
	err := s.Follow(ctx, "portlama-panel", 100, func(l LogLine) error {
		got = append(got, l)
		if len(got) == 3 {
			cancel()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0] != (LogLine{Timestamp: "2026-12-03T08:56:19+0000", Message: "h a[1]: one"}) || got[1] != (LogLine{Message: "two"}) || got[2].Message != "three" {
		t.Fatalf("lines %+v (the cursor lines must not be passed on)", got)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{
		"journalctl -u portlama-panel --output=short-iso --no-pager --quiet --show-cursor -n 100",
		"journalctl -u portlama-panel --output=short-iso --no-pager --quiet --show-cursor --after-cursor=c1",
	}
	for i, w := range want {
		if i >= len(argvs) || argvs[i] != w {
			t.Fatalf("run %d: %q, want %q (all: %q)", i, argvs, w, argvs)
		}
	}
}

func TestFollowEmptyBacklogReadsFromTheStart(t *testing.T) {
	var argvs []string
	s := Systemd{FollowInterval: time.Millisecond, Command: func(ctx context.Context, argv []string) *exec.Cmd {
		argvs = append(argvs, strings.Join(argv, " "))
		if len(argvs) == 1 {
			return fakeRun(ctx, "", 0)
		}
		return fakeRun(ctx, "late|-- cursor: c9", 0)
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := s.Follow(ctx, "nginx", 5, func(l LogLine) error { cancel(); return nil })
	if err != nil || len(argvs) != 2 || !strings.Contains(argvs[1], "--since=@") {
		t.Fatalf("err %v, runs %q: the second run must ask from the first run's time on", err, argvs)
	}
}

func TestFollowEndsAndCallbackError(t *testing.T) {
	// A later run that fails ends the stream.
	n := 0
	s := Systemd{FollowInterval: time.Millisecond, Command: func(ctx context.Context, argv []string) *exec.Cmd {
		n++
		if n == 1 {
			return fakeRun(ctx, "a|-- cursor: c1", 0)
		}
		return fakeRun(ctx, "", 1)
	}}
	if err := s.Follow(context.Background(), "nginx", 10, func(LogLine) error { return nil }); !errors.Is(err, ErrLogEnded) {
		t.Fatalf("err %v, want ErrLogEnded", err)
	}
	// A first run that fails could not open the log.
	n = 1
	if err := s.Follow(context.Background(), "nginx", 10, func(LogLine) error { return nil }); !errors.Is(err, ErrLogStart) {
		t.Fatalf("err %v, want ErrLogStart", err)
	}
	boom := errors.New("socket gone")
	n = 0
	if err := s.Follow(context.Background(), "nginx", 10, func(LogLine) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("callback error: %v", err)
	}
}

func TestFollowStartFailure(t *testing.T) {
	s := Systemd{Journalctl: "/nonexistent/journalctl"}
	err := s.Follow(context.Background(), "nginx", 1, func(LogLine) error { return nil })
	if !errors.Is(err, ErrLogStart) {
		t.Fatalf("err %v, want ErrLogStart", err)
	}
}

func TestRunError(t *testing.T) {
	_, err := Run(context.Background(), nil, "sh", "-c", "echo oops >&2; exit 3")
	var ce *CommandError
	if !errors.As(err, &ce) || ce.Output != "oops" || ExitCode(err) != 3 {
		t.Fatalf("err %v", err)
	}
}
