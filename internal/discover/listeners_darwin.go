package discover

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
)

// systemListeners runs lsof (shipped with macOS; it lists the current
// user's sockets without root).
func systemListeners(ctx context.Context) ([]Listener, error) {
	out, err := exec.CommandContext(ctx, "/usr/sbin/lsof", "-nP", "-iTCP", "-sTCP:LISTEN").Output()
	// lsof exits 1 when nothing matches.
	if err != nil && len(out) == 0 {
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 1 {
			return nil, nil
		}
		return nil, fmt.Errorf("list listening sockets with lsof: %w", err)
	}
	return parseLsof(bytes.NewReader(out)), nil
}
