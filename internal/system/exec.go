package system

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// CommandFunc builds the command for argv. Exec is the default; the lab
// passes one that runs argv inside a container, and tests can wrap it.
type CommandFunc func(ctx context.Context, argv []string) *exec.Cmd

// Exec runs argv on this machine: exec.CommandContext, never a shell. The
// child is killed when ctx ends, and Wait gives up on its output pipes
// shortly after, so a grandchild holding them cannot block the caller.
func Exec(ctx context.Context, argv []string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// CommandError is a command that could not run or exited non-zero. Output
// is its combined output, trimmed; it names what failed for the user.
type CommandError struct {
	Argv   []string
	Output string
	Err    error
}

func (e *CommandError) Error() string {
	msg := fmt.Sprintf("%s: %v", strings.Join(e.Argv, " "), e.Err)
	if e.Output != "" {
		msg += ": " + e.Output
	}
	return msg
}

func (e *CommandError) Unwrap() error { return e.Err }

// ExitCode returns the exit status of a command that ran and failed, or -1.
func ExitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// Run runs argv with cmd (nil: Exec) and returns its combined output. A
// failure is a *CommandError carrying the output.
func Run(ctx context.Context, cmd CommandFunc, argv ...string) ([]byte, error) {
	if len(argv) == 0 {
		return nil, errors.New("run: empty command")
	}
	if cmd == nil {
		cmd = Exec
	}
	c := cmd(ctx, argv)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	if err := c.Run(); err != nil {
		return out.Bytes(), &CommandError{Argv: argv, Output: strings.TrimSpace(out.String()), Err: err}
	}
	return out.Bytes(), nil
}
