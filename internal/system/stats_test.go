package system

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func fakeProc(t *testing.T, stat string) string {
	t.Helper()
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("stat", stat)
	write("meminfo", "MemTotal:       2000 kB\nMemFree:         100 kB\nMemAvailable:    500 kB\n")
	write("uptime", "12345.67 2000.00\n")
	return dir
}

func TestCollectorFakeProc(t *testing.T) {
	dir := fakeProc(t, "cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 50 0 50 400 0 0 0 0 0 0\ncpu1 50 0 50 400 0 0 0 0 0 0\nintr 1\n")
	now := time.Unix(1000, 0)
	c := &Collector{ProcDir: dir, CPUSample: time.Millisecond, Now: func() time.Time { return now }}
	s, err := c.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.CPU.Cores != 2 || s.CPU.Usage != 0 {
		t.Errorf("cpu = %+v, want 2 cores, 0%% (no change between samples)", s.CPU)
	}
	if s.Memory != (Usage{Total: 2000 * 1024, Used: 1500 * 1024, Free: 500 * 1024}) {
		t.Errorf("memory = %+v", s.Memory)
	}
	if s.Uptime != 12345 {
		t.Errorf("uptime = %d", s.Uptime)
	}
	if s.Disk.Total == 0 || s.Disk.Free > s.Disk.Total {
		t.Errorf("disk = %+v", s.Disk)
	}
	// 300 more busy jiffies of 1000 → 30.0 %, but only after the cache expires.
	os.WriteFile(filepath.Join(dir, "stat"), []byte("cpu  250 0 250 1500 0 0 0 0 0 0\ncpu0 1 0 0 0\ncpu1 1 0 0 0\n"), 0o644)
	if s2, _ := c.Stats(context.Background()); s2.CPU.Usage != 0 {
		t.Errorf("cache not used within 2 s: %+v", s2.CPU)
	}
	now = now.Add(2 * time.Second)
	s3, err := c.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s3.CPU.Usage != 30 {
		t.Errorf("usage = %v, want 30", s3.CPU.Usage)
	}
}

func TestCollectorRealProc(t *testing.T) {
	c := &Collector{CPUSample: 20 * time.Millisecond}
	s, err := c.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.CPU.Cores < 1 || s.CPU.Usage < 0 || s.CPU.Usage > 100 || s.Memory.Total == 0 || s.Memory.Used+s.Memory.Free != s.Memory.Total || s.Uptime <= 0 {
		t.Fatalf("implausible stats %+v", s)
	}
}

func TestCollectorErrors(t *testing.T) {
	c := &Collector{ProcDir: t.TempDir()}
	if _, err := c.Stats(context.Background()); err == nil {
		t.Fatal("missing /proc files not reported")
	}
}

func TestCPUUsageRounding(t *testing.T) {
	if got := cpuUsage(cpuTimes{idle: 0, total: 0}, cpuTimes{idle: 2, total: 3}); got != 33.3 {
		t.Fatalf("got %v", got)
	}
}
