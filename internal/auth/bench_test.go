package auth

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// BenchmarkAuthRequest measures the auth-request endpoint for a valid
// session with 32 concurrent clients over real loopback HTTP, and reports
// the latency percentiles.
func BenchmarkAuthRequest(b *testing.B) {
	e := newEnv(b)
	e.addUser("alice", "family")
	sess := e.login("alice")
	const clients = 32
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}

	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				req, _ := http.NewRequest(http.MethodGet, e.base+"/api/authz/auth-request", nil)
				req.Header.Set("X-Original-URL", testApp)
				req.Header.Set("X-Original-Method", "GET")
				req.Header.Set("Cookie", SessionCookieName+"="+sess)
				start := time.Now()
				resp, err := hc.Do(req)
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
				}
				if err == nil {
					resp.Body.Close()
				}
				lat[i] = time.Since(start)
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d requests failed", n, b.N)
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(float64(len(lat)-1)*p)].Microseconds()) }
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}

// BenchmarkBcrypt measures hashing at the costs a relay might use. Run with
// -benchmem; bcrypt's memory is small and constant, its time doubles per
// cost step.
func BenchmarkBcrypt(b *testing.B) {
	for _, cost := range []int{10, 11, 12} {
		b.Run(fmt.Sprintf("cost%d", cost), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bcrypt.GenerateFromPassword([]byte("correct horse battery"), cost); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
