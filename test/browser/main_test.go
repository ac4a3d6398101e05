// Package browser drives the panel's web UI in real headless Chromium
// (chromedp, Debian's /usr/bin/chromium) against the whole relay behind
// real nginx (internal/demo), with the admin client certificate in the
// browser's NSS database. It saves a screenshot of every page when
// $PORTLAMA_SCREENSHOTS is set (make screenshots) and checks every page
// with axe-core.
package browser

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/demo"
	"github.com/portlama/portlama/internal/testutil"
	"github.com/portlama/portlama/internal/webui"
)

var binDir string

func TestMain(m *testing.M) {
	if etc := os.Getenv(wrapEnv); etc != "" {
		execChromium(etc) // this process is Chromium's wrapper
	}
	if !webui.New().Built() {
		if os.Getenv("CI") == "true" {
			fmt.Fprintln(os.Stderr, "the web UI is not built: run `make ui` before the browser tests")
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "skipping browser tests: the web UI is not built (make ui)")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "portlama-browser-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, b := range []string{"portlama", "portlama-agent"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b), "github.com/portlama/portlama/cmd/"+b)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", b, err, out)
			os.Exit(1)
		}
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func startStack(t *testing.T, relayPortMin int) *demo.Stack {
	t.Helper()
	testutil.NeedBinary(t, "nginx")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := demo.Start(ctx, demo.Options{
		Dir:          t.TempDir(),
		RelayBinary:  filepath.Join(binDir, "portlama"),
		AgentBinary:  filepath.Join(binDir, "portlama-agent"),
		HTTPSPort:    -1,
		PanelPort:    -1,
		HTTPPort:     -1,
		RelayPortMin: relayPortMin,
		RelayPortMax: relayPortMin + 99,
		Sample:       true,
	})
	if err != nil {
		t.Fatalf("start demo stack: %v", err)
	}
	t.Cleanup(st.Stop)
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		// The relay's logs explain most browser-side failures.
		logs, _ := filepath.Glob(filepath.Join(st.Info.Dir, "*", "*.log"))
		more, _ := filepath.Glob(filepath.Join(st.Info.Dir, "*.log"))
		for _, f := range append(logs, more...) {
			data, _ := os.ReadFile(f)
			if len(data) > 4000 {
				data = data[len(data)-4000:]
			}
			t.Logf("--- %s (tail)\n%s", f, data)
		}
	})
	return st
}

func adminCert(st *demo.Stack) ClientCert {
	return ClientCert{P12: st.Info.AdminP12, Password: st.Info.AdminP12Password, Trust: []string{st.Info.CACert, st.Info.IPCert}}
}
