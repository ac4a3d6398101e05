package system

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Stats is the body of GET /api/system/stats. Sizes are bytes.
type Stats struct {
	CPU    CPU   `json:"cpu"`
	Memory Usage `json:"memory"`
	Disk   Usage `json:"disk"`
	Uptime int64 `json:"uptime"` // seconds since boot
}

// CPU is the processor usage in percent (one decimal) and the core count.
type CPU struct {
	Usage float64 `json:"usage"`
	Cores int     `json:"cores"`
}

// Usage is a total/used/free triple in bytes.
type Usage struct {
	Total uint64 `json:"total"`
	Used  uint64 `json:"used"`
	Free  uint64 `json:"free"`
}

// Collector reads Stats and caches them for CacheTTL. The zero value reads
// /proc and the root filesystem with a 2 s cache.
type Collector struct {
	ProcDir   string        // default /proc
	RootPath  string        // filesystem reported as disk; default /
	CacheTTL  time.Duration // default 2 s
	CPUSample time.Duration // interval of the first CPU measurement; default 200 ms
	Now       func() time.Time

	mu       sync.Mutex
	cached   Stats
	cachedAt time.Time
	hasCache bool
	prevCPU  cpuTimes
	hasPrev  bool
}

type cpuTimes struct{ idle, total uint64 }

func (c *Collector) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Collector) proc(name string) string {
	dir := c.ProcDir
	if dir == "" {
		dir = "/proc"
	}
	return filepath.Join(dir, name)
}

// Stats returns the current statistics, from the cache when they are at
// most CacheTTL old.
func (c *Collector) Stats(ctx context.Context) (Stats, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ttl := c.CacheTTL
	if ttl == 0 {
		ttl = 2 * time.Second
	}
	now := c.now()
	if c.hasCache && now.Sub(c.cachedAt) < ttl && !now.Before(c.cachedAt) {
		return c.cached, nil
	}
	s, err := c.collect(ctx)
	if err != nil {
		return Stats{}, err
	}
	c.cached, c.cachedAt, c.hasCache = s, c.now(), true
	return s, nil
}

func (c *Collector) collect(ctx context.Context) (Stats, error) {
	var s Stats
	cur, cores, err := readCPU(c.proc("stat"))
	if err != nil {
		return s, err
	}
	if !c.hasPrev {
		// First call: measure over a short interval.
		wait := c.CPUSample
		if wait == 0 {
			wait = 200 * time.Millisecond
		}
		c.prevCPU, c.hasPrev = cur, true
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return s, ctx.Err()
		case <-t.C:
		}
		if cur, cores, err = readCPU(c.proc("stat")); err != nil {
			return s, err
		}
	}
	s.CPU = CPU{Usage: cpuUsage(c.prevCPU, cur), Cores: cores}
	c.prevCPU = cur
	if s.Memory, err = readMemory(c.proc("meminfo")); err != nil {
		return s, err
	}
	root := c.RootPath
	if root == "" {
		root = "/"
	}
	if s.Disk, err = diskUsage(root); err != nil {
		return s, err
	}
	if s.Uptime, err = readUptime(c.proc("uptime")); err != nil {
		return s, err
	}
	return s, nil
}

// cpuUsage is the busy share between two samples in percent, one decimal.
func cpuUsage(prev, cur cpuTimes) float64 {
	if cur.total <= prev.total || cur.idle < prev.idle {
		return 0
	}
	dt := float64(cur.total - prev.total)
	di := float64(cur.idle - prev.idle)
	u := (dt - di) / dt * 100
	u = math.Max(0, math.Min(100, u))
	return math.Round(u*10) / 10
}

// readCPU parses the aggregate "cpu" line and counts the "cpuN" lines.
func readCPU(path string) (cpuTimes, int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return cpuTimes{}, 0, fmt.Errorf("read cpu times: %w", err)
	}
	var t cpuTimes
	found, cores := false, 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || !strings.HasPrefix(f[0], "cpu") {
			continue
		}
		if f[0] != "cpu" {
			cores++
			continue
		}
		if len(f) < 5 {
			return t, 0, fmt.Errorf("read cpu times: short cpu line in %s", path)
		}
		for i, v := range f[1:] {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return t, 0, fmt.Errorf("read cpu times: %w", err)
			}
			// guest and guest_nice (fields 9, 10) are already in user/nice.
			if i >= 8 {
				continue
			}
			t.total += n
			if i == 3 || i == 4 { // idle, iowait
				t.idle += n
			}
		}
		found = true
	}
	if !found {
		return t, 0, fmt.Errorf("read cpu times: no cpu line in %s", path)
	}
	if cores == 0 {
		cores = 1
	}
	return t, cores, nil
}

// readMemory reads MemTotal and MemAvailable: used = total − available,
// free = available.
func readMemory(path string) (Usage, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Usage{}, fmt.Errorf("read memory info: %w", err)
	}
	vals := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		n, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			continue
		}
		if len(f) >= 3 && f[2] == "kB" {
			n *= 1024
		}
		vals[strings.TrimSuffix(f[0], ":")] = n
	}
	total, ok1 := vals["MemTotal"]
	avail, ok2 := vals["MemAvailable"]
	if !ok1 || !ok2 {
		return Usage{}, fmt.Errorf("read memory info: MemTotal or MemAvailable missing in %s", path)
	}
	if avail > total {
		avail = total
	}
	return Usage{Total: total, Used: total - avail, Free: avail}, nil
}

func diskUsage(path string) (Usage, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return Usage{}, fmt.Errorf("statfs %s: %w", path, err)
	}
	bs := uint64(st.Bsize)
	total := st.Blocks * bs
	free := st.Bavail * bs
	used := (st.Blocks - st.Bfree) * bs
	return Usage{Total: total, Used: used, Free: free}, nil
}

func readUptime(path string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read uptime: %w", err)
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 0, fmt.Errorf("read uptime: empty %s", path)
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0, fmt.Errorf("read uptime: %w", err)
	}
	return int64(v), nil
}
