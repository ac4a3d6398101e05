package bench

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// wrkResult is what wrk printed for one run.
type wrkResult struct {
	RPS      float64
	Requests int64
	P50, P99 time.Duration
	Non2xx   int64 // "Non-2xx or 3xx responses"
	SockErrs string
}

// runWrk runs wrk with conns keep-alive connections for d against url,
// with extra headers ("Name: value"), and parses its output.
func runWrk(b *testing.B, wrkBin string, conns int, d time.Duration, url string, headers ...string) wrkResult {
	b.Helper()
	args := []string{"-t2", "-c" + strconv.Itoa(conns), "-d" + strconv.Itoa(int(d.Seconds())) + "s", "--latency", "--timeout", "10s"}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	args = append(args, url)
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, wrkBin, args...).CombinedOutput()
	if err != nil {
		b.Fatalf("wrk %v: %v\n%s", args, err, out)
	}
	res, err := parseWrk(string(out))
	if err != nil {
		b.Fatalf("wrk %v: %v\n%s", args, err, out)
	}
	return res
}

// parseWrk reads wrk 4 output (with --latency).
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	gotRPS := false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "Requests/sec:":
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				return r, fmt.Errorf("requests/sec %q is not a rate", f[1])
			}
			r.RPS, gotRPS = v, true
		case len(f) >= 3 && f[1] == "requests" && f[2] == "in":
			r.Requests, _ = strconv.ParseInt(f[0], 10, 64)
		case len(f) == 2 && (f[0] == "50%" || f[0] == "99%"):
			d, err := parseWrkDuration(f[1])
			if err != nil {
				return r, err
			}
			if f[0] == "50%" {
				r.P50 = d
			} else {
				r.P99 = d
			}
		case len(f) == 5 && f[0] == "Non-2xx":
			r.Non2xx, _ = strconv.ParseInt(f[4], 10, 64)
		case len(f) > 2 && f[0] == "Socket" && f[1] == "errors:":
			r.SockErrs = strings.Join(f[2:], " ")
		}
	}
	if !gotRPS {
		return r, fmt.Errorf("no Requests/sec line")
	}
	return r, nil
}

// parseWrkDuration reads wrk's "812.00us", "1.23ms", "2.00s", "1.50m".
func parseWrkDuration(s string) (time.Duration, error) {
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e6 {
				return 0, fmt.Errorf("wrk duration %q is not a duration", s)
			}
			return time.Duration(f * float64(u.unit)), nil
		}
	}
	return 0, fmt.Errorf("wrk duration %q: unknown unit", s)
}

// download fetches size bytes from /bytes of sub with curl (a separate
// process, like wrk) and returns MiB/s.
func (r *relay) download(b *testing.B, curlBin, sub string, size int64) float64 {
	b.Helper()
	port := strconv.Itoa(r.addrs.HTTPSPort)
	url := r.url(sub, "/bytes?size="+strconv.FormatInt(size, 10))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, curlBin, "-sS", "--http1.1", "-o", os.DevNull,
		"--resolve", fqdn(sub)+":"+port+":127.0.0.1", "--cacert", r.caFile,
		"-w", "%{http_code} %{size_download} %{time_total}", url).CombinedOutput()
	if err != nil {
		b.Fatalf("curl %s: %v: %s", url, err, out)
	}
	f := strings.Fields(string(out))
	if len(f) != 3 || f[0] != "200" || f[1] != strconv.FormatInt(size, 10) {
		b.Fatalf("curl %s: want 200 and %d bytes, got %q", url, size, out)
	}
	secs, err := strconv.ParseFloat(f[2], 64)
	if err != nil || secs <= 0 {
		b.Fatalf("curl %s: time %q", url, f[2])
	}
	return float64(size) / (1 << 20) / secs
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times (100 on
// every Linux this runs on).
const clockTicks = 100

// procCPU is the CPU time (user + system) of pid and, with children, of
// its direct children (nginx's workers).
func procCPU(pid int, children bool) time.Duration {
	if pid == 0 {
		return 0
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var ticks int64
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil || (!children && p != pid) {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... utime(14) stime(15); comm may hold spaces.
		i := strings.LastIndexByte(string(data), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(data[i+1:]))
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		if p != pid && ppid != pid {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += ut + st
	}
	return time.Duration(ticks) * time.Second / clockTicks
}
