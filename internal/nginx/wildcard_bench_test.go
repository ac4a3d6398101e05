package nginx

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkAppModes compares the request rate of a public app in a server
// block of its own with one served by the shared wildcard server among
// 1,000 wildcard apps (host map, dispatch, upstream lookup), 32 keep-alive
// clients, interleaved rounds in one run:
//
//	go test -run '^$' -bench AppModes -benchtime 1x ./internal/nginx/
func BenchmarkAppModes(b *testing.B) {
	rl := startRelay(b, nil)
	app := startEcho(b, "app")
	own, err := rl.r.App(AppParams{Domain: testDomain, Subdomain: "own", RelayPort: app.port, Public: true, TLS: rl.tls()})
	if err != nil {
		b.Fatal(err)
	}
	vs := []Vhost{own}
	for i := range 1000 {
		sub, port := "wild-"+strconv.Itoa(i), 1+i
		if i == 500 {
			sub, port = "wild", app.port
		}
		shared, v, err := rl.r.WildcardApp(AppParams{Domain: testDomain, Subdomain: sub, RelayPort: port, Public: true, TLS: rl.tls()})
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			vs = append(vs, shared)
		}
		vs = append(vs, v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := rl.mgr.Apply(ctx, vs...); err != nil {
		b.Fatal(err)
	}
	rate := map[string][]float64{}
	b.ResetTimer()
	for range 3 {
		for _, sub := range []string{"own", "wild"} {
			rate[sub] = append(rate[sub], rl.requestRate(b, sub, 32, 3*time.Second))
		}
	}
	b.StopTimer()
	med := func(xs []float64) float64 {
		s := slices.Clone(xs)
		slices.Sort(s)
		return s[len(s)/2]
	}
	o, w := med(rate["own"]), med(rate["wild"])
	b.Logf("req/s (median of 3): own server block %.0f, shared wildcard server (1,000 apps) %.0f: %.2f×", o, w, w/o)
	b.ReportMetric(w/o, "wildcard/own")
}

// requestRate runs n keep-alive clients against sub for d and returns
// requests per second.
func (rl *relay) requestRate(b *testing.B, sub string, n int, d time.Duration) float64 {
	url := rl.appURL(sub, "/")
	var total atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	for range n {
		c := rl.client(rl.addrs.HTTPSPort, nil)
		wg.Go(func() {
			for time.Now().Before(deadline) {
				resp, err := c.Get(url)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Error(fmt.Errorf("%s: %d", sub, resp.StatusCode))
					return
				}
				total.Add(1)
			}
		})
	}
	wg.Wait()
	return float64(total.Load()) / d.Seconds()
}
