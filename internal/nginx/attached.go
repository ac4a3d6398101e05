package nginx

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Attached is the Controller of a self-run nginx (an Instance) used from
// another process: `portlama certs renew` and `reset-admin` against the
// demo's relay test its configuration with the instance's files and reload
// it by SIGHUP to the master named in its pid file, waiting like
// Instance.Reload until the new workers serve.
type Attached struct {
	Binary string // "" finds nginx like NewInstance
	Prefix string // the instance directory (InstanceConfig.Prefix)
}

func (a Attached) bin() string {
	if a.Binary != "" {
		return a.Binary
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	return "/usr/sbin/nginx"
}

// Test runs nginx -t with the instance's configuration.
func (a Attached) Test(ctx context.Context) (string, error) {
	args := []string{"-t", "-c", confPath(a.Prefix), "-p", a.Prefix + "/", "-e", errorLogPath(a.Prefix)}
	out, err := exec.CommandContext(ctx, a.bin(), args...).CombinedOutput()
	text := strings.TrimSpace(string(out))
	if err != nil {
		return text, fmt.Errorf("nginx -t: %w", err)
	}
	return text, nil
}

// Reload signals the running master and waits for the new configuration
// to be in effect.
func (a Attached) Reload(ctx context.Context) error {
	b, err := os.ReadFile(pidPath(a.Prefix))
	if err != nil {
		return fmt.Errorf("reload nginx: is it running? %w", err)
	}
	master, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || master <= 0 {
		return fmt.Errorf("reload nginx: bad pid file %s", pidPath(a.Prefix))
	}
	old, err := childPids(master)
	if err != nil {
		return fmt.Errorf("reload nginx: %w", err)
	}
	if err := syscall.Kill(master, syscall.SIGHUP); err != nil {
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
		cur, err := childPids(master)
		if err == nil && reloaded(old, cur) {
			return nil
		}
		if syscall.Kill(master, 0) != nil {
			return errors.New("reload nginx: the master exited")
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("reload nginx: waiting for new workers: %w", ctx.Err())
		case <-tick.C:
		}
	}
}
