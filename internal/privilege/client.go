package privilege

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/portlama/portlama/internal/nginx"
	"github.com/portlama/portlama/internal/system"
)

// Client asks the root helper.
type Client struct {
	// Socket is the helper's socket; "" means DefaultSocket.
	Socket string
	// Timeout bounds one request; default 40 s (the helper's own 30 s
	// plus the time to start it).
	Timeout time.Duration
}

// HelperError is a request the helper refused or could not carry out.
type HelperError struct {
	Request Request
	Message string
	Output  string
}

func (e *HelperError) Error() string {
	what := e.Request.Verb
	if e.Request.Action != "" {
		what += " " + e.Request.Action
	}
	if e.Request.Unit != "" {
		what += " " + e.Request.Unit
	}
	return fmt.Sprintf("root helper (%s): %s", what, e.Message)
}

// Do sends r and returns the helper's output. A refusal or failure is a
// *HelperError; Output then holds the command's output, if any.
func (c Client) Do(ctx context.Context, r Request) (string, error) {
	sock := c.Socket
	if sock == "" {
		sock = DefaultSocket
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 40 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return "", fmt.Errorf("reach the root helper at %s (is portlama-helper.socket active? systemctl status portlama-helper.socket): %w", sock, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if err := json.NewEncoder(conn).Encode(r); err != nil {
		return "", fmt.Errorf("send request to the root helper: %w", err)
	}
	var resp Response
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		return "", fmt.Errorf("read the root helper's answer: %w", err)
	}
	if !resp.OK {
		msg := resp.Error
		if msg == "" {
			msg = "failed"
		}
		return resp.Output, &HelperError{Request: r, Message: msg, Output: resp.Output}
	}
	return resp.Output, nil
}

// Nginx is an nginx.Controller that tests and reloads through the helper.
type Nginx struct{ Client Client }

var _ nginx.Controller = Nginx{}

// Test lints the vhosts and runs nginx -t as root.
func (n Nginx) Test(ctx context.Context) (string, error) {
	out, err := n.Client.Do(ctx, Request{Verb: VerbNginxTest})
	var he *HelperError
	if errors.As(err, &he) && out == "" {
		out = he.Message
	}
	return out, err
}

// Reload lints the vhosts and reloads nginx.
func (n Nginx) Reload(ctx context.Context) error {
	_, err := n.Client.Do(ctx, Request{Verb: VerbNginxReload})
	return err
}

// Services is the panel's ServiceManager on a relay: actions through the
// helper, Status and Follow directly (systemctl show and journalctl need no
// privilege beyond the systemd-journal group).
type Services struct {
	Client  Client
	Systemd system.Systemd
}

var _ system.ServiceManager = Services{}

func (s Services) action(ctx context.Context, unit string, a system.Action) error {
	_, err := s.Client.Do(ctx, Request{Verb: VerbService, Action: string(a), Unit: unit})
	return err
}

func (s Services) Start(ctx context.Context, unit string) error {
	return s.action(ctx, unit, system.ActionStart)
}
func (s Services) Stop(ctx context.Context, unit string) error {
	return s.action(ctx, unit, system.ActionStop)
}
func (s Services) Restart(ctx context.Context, unit string) error {
	return s.action(ctx, unit, system.ActionRestart)
}
func (s Services) Reload(ctx context.Context, unit string) error {
	return s.action(ctx, unit, system.ActionReload)
}

// Enable enables and starts portlama-tunnel or portlama-auth.
func (s Services) Enable(ctx context.Context, unit string) error {
	_, err := s.Client.Do(ctx, Request{Verb: VerbEnable, Unit: unit})
	return err
}

// Disable is not on the helper's list.
func (s Services) Disable(_ context.Context, unit string) error {
	return &HelperError{Request: Request{Verb: "disable", Unit: unit}, Message: ErrRefused.Error() + ": disabling units is not on the helper's list"}
}

func (s Services) Status(ctx context.Context, unit string) (system.UnitStatus, error) {
	return s.Systemd.Status(ctx, unit)
}

func (s Services) Follow(ctx context.Context, unit string, backlog int, fn func(system.LogLine) error) error {
	return s.Systemd.Follow(ctx, unit, backlog, fn)
}
