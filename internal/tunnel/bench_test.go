package tunnel

// Throughput of the tunnel against the app reached directly, everything
// in-process on loopback (app, tunnel client, tunnel server, load client
// share the CPUs; no nginx: test/bench has the production path). Run:
//
//	go test -run XXX -bench Tunnel -benchtime 1x ./internal/tunnel/
//
// Each benchmark does one fixed measurement whatever b.N is and reports
// direct, tunnel and tunnel/direct figures with b.ReportMetric.

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/testutil"
)

const (
	benchClients  = 32
	benchDuration = 3 * time.Second
	benchDownload = 100 << 20
)

// benchApp serves "/" (a short body) and "/big" (benchDownload bytes).
func benchApp(b *testing.B) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	chunk := make([]byte, 256<<10)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			w.Header().Set("Content-Length", strconv.Itoa(benchDownload))
			for left := benchDownload; left > 0; left -= len(chunk) {
				n := min(left, len(chunk))
				if _, err := w.Write(chunk[:n]); err != nil {
					return
				}
			}
			return
		}
		_, _ = io.WriteString(w, "hello world\n")
	})}
	go func() { _ = srv.Serve(l) }()
	b.Cleanup(func() { _ = srv.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

// benchTunnel returns the app port and the relay port serving it.
func benchTunnel(b *testing.B) (app, relayPort int) {
	r := newRelay(b)
	app = benchApp(b)
	relayPort = testutil.FreePort(b)
	cred := r.addAgent(b, "bench", relayPort)
	if _, err := connect(b, r, cred, remote(relayPort, app)); err != nil {
		b.Fatal(err)
	}
	mustGet(b, relayPort, "hello world\n")
	return app, relayPort
}

// reqPerSec runs benchClients keep-alive clients against port for d.
func reqPerSec(b *testing.B, port int, d time.Duration) float64 {
	tr := &http.Transport{MaxIdleConnsPerHost: benchClients, MaxConnsPerHost: benchClients}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/"
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var n, fails atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range benchClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				resp, err := client.Get(url)
				if err != nil {
					fails.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if f := fails.Load(); f > 0 {
		b.Logf("%d failed requests on port %d", f, port)
	}
	return float64(n.Load()) / time.Since(start).Seconds()
}

// downloadMBps fetches /big once and returns MB/s.
func downloadMBps(b *testing.B, port int) float64 {
	start := time.Now()
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/big")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || n != benchDownload {
		b.Fatalf("download: %d bytes, %v", n, err)
	}
	return float64(n) / (1 << 20) / time.Since(start).Seconds()
}

func BenchmarkTunnelRequests(b *testing.B) {
	app, relayPort := benchTunnel(b)
	b.ResetTimer()
	direct := reqPerSec(b, app, benchDuration)
	tunnel := reqPerSec(b, relayPort, benchDuration)
	b.StopTimer()
	b.ReportMetric(direct, "direct-req/s")
	b.ReportMetric(tunnel, "tunnel-req/s")
	b.ReportMetric(tunnel/direct, "tunnel/direct")
	b.Logf("32 keep-alive clients: direct %.0f req/s, tunnel %.0f req/s, ratio %.2f", direct, tunnel, tunnel/direct)
}

func BenchmarkTunnelDownload(b *testing.B) {
	app, relayPort := benchTunnel(b)
	b.ResetTimer()
	direct := downloadMBps(b, app)
	tunnel := downloadMBps(b, relayPort)
	b.StopTimer()
	b.ReportMetric(direct, "direct-MB/s")
	b.ReportMetric(tunnel, "tunnel-MB/s")
	b.ReportMetric(tunnel/direct, "tunnel/direct")
	b.Logf("100 MB download: direct %.0f MB/s, tunnel %.0f MB/s, ratio %.2f", direct, tunnel, tunnel/direct)
}
