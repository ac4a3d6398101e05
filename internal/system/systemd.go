package system

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Systemd is the ServiceManager of a relay: systemctl and journalctl, as
// argv, never through a shell. Actions need root (or a caller systemd's
// policy admits); the panel, which runs unprivileged, sends them through
// the root helper (package privilege) and uses Systemd for Status and
// Follow, which any member of systemd-journal may use.
type Systemd struct {
	// Command builds each command; nil runs it on this machine.
	Command CommandFunc
	// Systemctl and Journalctl are the binaries; "" means the name.
	Systemctl  string
	Journalctl string
	// FollowInterval is how often Follow polls the journal; 0 means
	// DefaultFollowInterval.
	FollowInterval time.Duration
}

var _ ServiceManager = Systemd{}

func (s Systemd) systemctl(ctx context.Context, args ...string) ([]byte, error) {
	argv := append([]string{orDefault(s.Systemctl, "systemctl")}, args...)
	return Run(ctx, s.Command, argv...)
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

func (s Systemd) act(ctx context.Context, verb, unit string, extra ...string) error {
	if err := ValidUnit(unit); err != nil {
		return err
	}
	args := append([]string{"--no-ask-password", verb}, extra...)
	_, err := s.systemctl(ctx, append(args, unit)...)
	return err
}

func (s Systemd) Start(ctx context.Context, unit string) error   { return s.act(ctx, "start", unit) }
func (s Systemd) Stop(ctx context.Context, unit string) error    { return s.act(ctx, "stop", unit) }
func (s Systemd) Restart(ctx context.Context, unit string) error { return s.act(ctx, "restart", unit) }
func (s Systemd) Reload(ctx context.Context, unit string) error  { return s.act(ctx, "reload", unit) }

// Enable runs "systemctl enable --now".
func (s Systemd) Enable(ctx context.Context, unit string) error {
	return s.act(ctx, "enable", unit, "--now")
}

// Disable runs "systemctl disable --now".
func (s Systemd) Disable(ctx context.Context, unit string) error {
	return s.act(ctx, "disable", unit, "--now")
}

// DaemonReload makes systemd re-read unit files.
func (s Systemd) DaemonReload(ctx context.Context) error {
	_, err := s.systemctl(ctx, "--no-ask-password", "daemon-reload")
	return err
}

// SystemState runs "systemctl is-system-running": running, degraded,
// starting… It returns the state even when systemctl exits non-zero (it
// does for every state but running).
func (s Systemd) SystemState(ctx context.Context) (string, error) {
	out, err := s.systemctl(ctx, "is-system-running")
	state := strings.TrimSpace(string(out))
	if state != "" && !strings.Contains(state, "\n") {
		return state, nil
	}
	return state, err
}

// statusProperties are the properties Status reads.
var statusProperties = "LoadState,ActiveState,SubState,UnitFileState,MainPID,ActiveEnterTimestamp"

// Status runs "systemctl show" for the unit.
func (s Systemd) Status(ctx context.Context, unit string) (UnitStatus, error) {
	if err := ValidUnit(unit); err != nil {
		return UnitStatus{}, err
	}
	out, err := s.systemctl(ctx, "show", "--property="+statusProperties, "--timestamp=unix", unit)
	if err != nil {
		return UnitStatus{}, fmt.Errorf("status of %s: %w", unit, err)
	}
	st, err := ParseShow(unit, out)
	if err != nil {
		return UnitStatus{}, fmt.Errorf("status of %s: %w", unit, err)
	}
	return st, nil
}

// ParseShow reads the output of "systemctl show --timestamp=unix" with the
// properties Status asks for.
func ParseShow(unit string, out []byte) (UnitStatus, error) {
	st := UnitStatus{Unit: unit}
	seen := false
	for _, line := range strings.Split(string(out), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		switch k {
		case "LoadState":
			st.LoadState, seen = v, true
		case "ActiveState":
			st.ActiveState, seen = v, true
		case "SubState":
			st.SubState = v
		case "UnitFileState":
			st.UnitFileState = v
		case "MainPID":
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				st.MainPID = n
			}
		case "ActiveEnterTimestamp":
			st.Since = parseShowTime(v)
		}
	}
	if !seen {
		return st, errors.New("systemctl show printed no unit state")
	}
	switch st.ActiveState {
	case StateActive, StateInactive, StateFailed:
		st.State = st.ActiveState
	default:
		st.State = StateUnknown
	}
	if st.State != StateActive {
		st.Since = time.Time{}
	}
	return st, nil
}

// parseShowTime reads "@<unix seconds>" (--timestamp=unix), or systemd's
// default "Mon 2006-01-02 15:04:05 MST"; anything else is the zero time.
func parseShowTime(v string) time.Time {
	if rest, ok := strings.CutPrefix(v, "@"); ok {
		if n, err := strconv.ParseInt(rest, 10, 64); err == nil && n > 0 {
			return time.Unix(n, 0)
		}
		return time.Time{}
	}
	if t, err := time.Parse("Mon 2006-01-02 15:04:05 MST", v); err == nil {
		return t
	}
	return time.Time{}
}

// maxLogLine bounds one log line; longer lines are cut.
const maxLogLine = 16 << 10

// DefaultFollowInterval is how often Follow asks the journal for new lines.
const DefaultFollowInterval = time.Second

// cursorPrefix starts the line --show-cursor adds after the entries.
const cursorPrefix = "-- cursor: "

// Follow reads the unit's journal: "journalctl -u <unit> -n <backlog>
// --output=short-iso --show-cursor", then every FollowInterval the lines
// after the last cursor. It polls rather than running "journalctl -f":
// inside the panel's hardened unit (ProtectKernelTunables,
// ProtectControlGroups, ProtectProc=invisible) "journalctl -f" prints
// nothing at all, not even the backlog (measured in the lab), while a
// plain read works.
func (s Systemd) Follow(ctx context.Context, unit string, backlog int, fn func(LogLine) error) error {
	if err := ValidUnit(unit); err != nil {
		return err
	}
	if backlog < 0 {
		backlog = 0
	}
	interval := s.FollowInterval
	if interval <= 0 {
		interval = DefaultFollowInterval
	}
	cursor := ""
	// Entries from this second on are new when the backlog was empty.
	since := "--since=@" + strconv.FormatInt(time.Now().Unix(), 10)
	for first := true; ; first = false {
		args := []string{"-u", unit, "--output=short-iso", "--no-pager", "--quiet", "--show-cursor"}
		if first {
			args = append(args, "-n", strconv.Itoa(backlog))
		} else {
			if cursor == "" {
				args = append(args, since)
			} else {
				args = append(args, "--after-cursor="+cursor)
			}
		}
		next, err := s.readJournal(ctx, args, fn)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil && first && errors.Is(err, ErrLogStart):
			return err
		case err != nil && errors.Is(err, ErrLogStart):
			return fmt.Errorf("%w: %v", ErrLogEnded, err)
		case err != nil:
			return err
		}
		if next != "" {
			cursor = next
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}

// readJournal runs journalctl with args, passes each entry line to fn and
// returns the cursor it printed ("" when there was no entry). A command
// that cannot start or fails wraps ErrLogStart; fn's error is returned as
// it is.
func (s Systemd) readJournal(ctx context.Context, args []string, fn func(LogLine) error) (string, error) {
	argv := append([]string{orDefault(s.Journalctl, "journalctl")}, args...)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmdf := s.Command
	if cmdf == nil {
		cmdf = Exec
	}
	cmd := cmdf(ctx, argv)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrLogStart, err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &limitedBuffer{buf: &stderr, max: 4 << 10}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("%w: %v", ErrLogStart, err)
	}
	cursor := ""
	readErr := readLines(stdout, func(l LogLine) error {
		if c, ok := strings.CutPrefix(l.Message, cursorPrefix); ok && l.Timestamp == "" {
			cursor = c
			return nil
		}
		return fn(l)
	})
	if readErr != nil && !errors.Is(readErr, io.EOF) {
		cancel()
		cmd.Wait()
		return "", readErr // fn failed
	}
	if err := cmd.Wait(); err != nil && ctx.Err() == nil {
		return "", fmt.Errorf("%w: journalctl: %v: %s", ErrLogStart, err, strings.TrimSpace(stderr.String()))
	}
	return cursor, nil
}

// readLines passes each line of r to fn until r ends (io.EOF, whatever the
// read error: the process exited or was killed) or fn fails (its error).
func readLines(r io.Reader, fn func(LogLine) error) error {
	br := bufio.NewReaderSize(r, 4096)
	for {
		line, err := readLine(br)
		if len(line) > 0 || err == nil {
			if ferr := fn(ParseLogLine(line)); ferr != nil {
				return ferr
			}
		}
		if err != nil {
			return io.EOF
		}
	}
}

// readLine reads one line without its newline, at most maxLogLine bytes of
// it (the rest of a longer line is dropped).
func readLine(br *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		frag, err := br.ReadSlice('\n')
		if b.Len() < maxLogLine {
			room := maxLogLine - b.Len()
			if len(frag) > room {
				frag = frag[:room]
			}
			b.Write(frag)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		s := strings.TrimRight(b.String(), "\r\n")
		return s, err
	}
}

// ParseLogLine splits a short-iso journal line into its ISO timestamp and
// the rest (host, process and message). A line without a leading timestamp
// has an empty Timestamp and is the Message as a whole.
func ParseLogLine(line string) LogLine {
	ts, rest, ok := strings.Cut(line, " ")
	if ok && isISOTimestamp(ts) {
		return LogLine{Timestamp: ts, Message: rest}
	}
	if !ok && isISOTimestamp(ts) {
		return LogLine{Timestamp: ts}
	}
	return LogLine{Message: line}
}

// isISOTimestamp accepts journalctl's short-iso stamps:
// 2026-12-03T08:56:19+0000 (systemd < 255) and 2026-12-03T08:56:19+00:00,
// with optional fractional seconds and Z.
func isISOTimestamp(s string) bool {
	const date = "2006-01-02T15:04:05"
	if len(s) < len(date) {
		return false
	}
	for _, layout := range []string{"2006-01-02T15:04:05Z0700", "2006-01-02T15:04:05Z07:00", "2006-01-02T15:04:05.999999999Z0700", "2006-01-02T15:04:05.999999999Z07:00"} {
		if _, err := time.Parse(layout, s); err == nil {
			return true
		}
	}
	return false
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	buf *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.buf.Len(); room > 0 {
		if len(p) > room {
			l.buf.Write(p[:room])
		} else {
			l.buf.Write(p)
		}
	}
	return len(p), nil
}
