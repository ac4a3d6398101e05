package relaytest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	binOnce  sync.Once
	binDir   string
	binErr   error
	relayBin string
	agentBin string
)

// Binaries builds portlama and portlama-agent once per test process (the
// relay's daemons and the agent run as those binaries) and returns their
// paths. Cleanup removes them; a TestMain calls it after m.Run.
func Binaries(t testing.TB) (relay, agent string) {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "portlama-relaytest-bin-")
		if binErr != nil {
			return
		}
		for _, b := range []string{"portlama", "portlama-agent"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, b), "github.com/portlama/portlama/cmd/"+b)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				binErr = fmt.Errorf("build %s: %v\n%s", b, err, out)
				return
			}
		}
		relayBin, agentBin = filepath.Join(binDir, "portlama"), filepath.Join(binDir, "portlama-agent")
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return relayBin, agentBin
}

// Cleanup removes the built binaries.
func Cleanup() {
	if binDir != "" {
		os.RemoveAll(binDir)
	}
}
