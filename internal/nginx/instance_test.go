package nginx

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/testutil"
)

func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	// A zombie is dead for our purpose but must not exist either: it would
	// mean nobody reaped it.
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	return err == nil && !strings.Contains(string(b), ") Z ")
}

func TestInstanceLifecycleLeavesNothing(t *testing.T) {
	bin := testutil.NeedBinary(t, "nginx")
	root := tempDir(t)
	l := config.DirLayout(root)
	port := testutil.FreePort(t)
	inst, err := NewInstance(InstanceConfig{Binary: bin, Prefix: filepath.Join(root, "run"), NginxDir: l.NginxDir, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	if err := inst.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer inst.Stop(context.Background())
	if err := inst.Start(ctx); err == nil {
		t.Error("second Start succeeded")
	}
	master := inst.Pid()
	if master == 0 || !alive(master) {
		t.Fatal("master not running")
	}
	// A plain server so there is something to reload.
	site := "server { listen 127.0.0.1:" + strconv.Itoa(port) + "; return 200 \"gen1\"; }\n"
	writeFile(t, filepath.Join(l.NginxSitesEnabled(), "portlama-test"), []byte(site), 0o644)
	if out, err := inst.Test(ctx); err != nil {
		t.Fatal(out)
	}
	var all []int
	waitWorkers := func(n int) []int {
		deadline := time.Now().Add(5 * time.Second)
		for {
			w, _ := childPids(master)
			if len(w) >= n || time.Now().After(deadline) {
				return w
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	w1 := waitWorkers(2)
	all = append(all, w1...)
	t0 := time.Now()
	if err := inst.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("reload took %v", time.Since(t0))
	if body := httpGet(t, port); body != "gen1" {
		t.Errorf("after reload 1: %q", body)
	}
	// Reload makes the new config effective at once.
	site2 := strings.Replace(site, "gen1", "gen2", 1)
	writeFile(t, filepath.Join(l.NginxSitesEnabled(), "portlama-test"), []byte(site2), 0o644)
	if err := inst.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if body := httpGet(t, port); body != "gen2" {
		t.Errorf("after reload 2: %q", body)
	}
	w2, _ := childPids(master)
	all = append(all, w2...)
	for _, p := range w1 {
		for _, q := range w2 {
			if p == q && !strings.Contains(procTitle(p), "shutting down") {
				t.Errorf("old worker %d still active after reload", p)
			}
		}
	}

	// A config the master refuses: Reload reports it, nginx keeps serving.
	writeFile(t, filepath.Join(l.NginxSitesEnabled(), "portlama-test"), []byte("server { bogus_directive; }\n"), 0o644)
	if err := inst.Reload(ctx); err == nil || !strings.Contains(err.Error(), "emerg") {
		t.Errorf("reload of a broken config: %v", err)
	}
	if body := httpGet(t, port); body != "gen2" {
		t.Errorf("after refused reload: %q", body)
	}

	t0 = time.Now()
	if err := inst.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("stop took %v", time.Since(t0))
	if inst.Pid() != 0 {
		t.Error("Pid after Stop")
	}
	all = append(all, master)
	deadline := time.Now().Add(3 * time.Second)
	for _, p := range all {
		for alive(p) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if alive(p) {
			t.Errorf("process %d (%s) survived Stop", p, procTitle(p))
		}
	}
	if err := inst.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if err := inst.Reload(ctx); err == nil {
		t.Error("Reload of a stopped instance succeeded")
	}
}

func TestInstanceStartFailsOnBadConfig(t *testing.T) {
	bin := testutil.NeedBinary(t, "nginx")
	root := tempDir(t)
	l := config.DirLayout(root)
	writeFile(t, filepath.Join(l.NginxSitesEnabled(), "portlama-bad"), []byte("server { nonsense }\n"), 0o644)
	inst, err := NewInstance(InstanceConfig{Binary: bin, Prefix: filepath.Join(root, "run"), NginxDir: l.NginxDir, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	err = inst.Start(ctxT(t))
	if err == nil || !strings.Contains(err.Error(), "portlama-bad") {
		t.Errorf("Start with a broken config: %v", err)
	}
	if inst.Pid() != 0 {
		t.Error("instance running after failed start")
	}
}

func TestNewInstanceRejectsUnsafePaths(t *testing.T) {
	for _, p := range []string{"relative/dir", "/tmp/a b", "/tmp/a;b", "/tmp/../etc", ""} {
		if _, err := NewInstance(InstanceConfig{Binary: "/bin/sh", Prefix: p, NginxDir: "/tmp"}); err == nil {
			t.Errorf("prefix %q accepted", p)
		}
	}
}

func httpGet(t *testing.T, port int) string {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
