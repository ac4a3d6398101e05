package nginx

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// Controller tests and reloads a running nginx.
type Controller interface {
	// Test runs the configuration test and returns nginx's output; a
	// failing test returns a non-nil error and the output explaining it.
	Test(ctx context.Context) (string, error)
	// Reload makes nginx use the configuration on disk.
	Reload(ctx context.Context) error
}

// RunFunc runs argv and returns its combined output. System uses it so the
// panel can route the commands through its privileged helper (sudo with a
// fixed command list).
type RunFunc func(ctx context.Context, argv []string) ([]byte, error)

// System controls the distribution's nginx service (production):
// "nginx -t" and "systemctl reload nginx", as argv, never through a shell.
type System struct {
	Nginx     string  // nginx binary; "" means "nginx"
	Systemctl string  // systemctl binary; "" means "systemctl"
	Run       RunFunc // nil runs the command directly
}

func (s System) run(ctx context.Context, argv []string) ([]byte, error) {
	if s.Run != nil {
		return s.Run(ctx, argv)
	}
	return exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

// Test runs "nginx -t".
func (s System) Test(ctx context.Context) (string, error) {
	out, err := s.run(ctx, []string{orDefault(s.Nginx, "nginx"), "-t"})
	text := strings.TrimSpace(string(out))
	if err != nil {
		return text, fmt.Errorf("nginx -t: %w", err)
	}
	return text, nil
}

// Reload runs "systemctl reload nginx".
func (s System) Reload(ctx context.Context) error {
	out, err := s.run(ctx, []string{orDefault(s.Systemctl, "systemctl"), "reload", "nginx"})
	if err != nil {
		return fmt.Errorf("systemctl reload nginx: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}
