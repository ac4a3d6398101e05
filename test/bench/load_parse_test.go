package bench

import (
	"testing"
	"time"
)

const wrkSample = `Running 3s test @ https://127.0.0.1:40123/
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.10ms    1.05ms  38.03ms   93.70%
    Req/Sec    15.41k     1.13k   17.52k    71.67%
  Latency Distribution
     50%  880.00us
     75%    1.24ms
     90%    1.77ms
     99%    4.68ms
  92086 requests in 3.00s, 34.57MB read
  Non-2xx or 3xx responses: 12
Requests/sec:  30694.91
Transfer/sec:     11.52MB
`

func TestParseWrk(t *testing.T) {
	r, err := parseWrk(wrkSample)
	if err != nil {
		t.Fatal(err)
	}
	want := wrkResult{RPS: 30694.91, Requests: 92086, P50: 880 * time.Microsecond, P99: 4680 * time.Microsecond, Non2xx: 12}
	if r != want {
		t.Errorf("parseWrk = %+v, want %+v", r, want)
	}
	if _, err := parseWrk("unable to connect to 127.0.0.1:1 Connection refused\n"); err == nil {
		t.Error("output without Requests/sec accepted")
	}
	if _, err := parseWrk("     50%  12.5xs\nRequests/sec: 1\n"); err == nil {
		t.Error("unknown latency unit accepted")
	}
}

func FuzzParseWrk(f *testing.F) {
	f.Add(wrkSample)
	f.Add("Requests/sec: x\n")
	f.Add("     99%  1.5m\nRequests/sec: 10\n")
	f.Fuzz(func(t *testing.T, out string) {
		r, err := parseWrk(out)
		if err == nil && r.RPS != r.RPS { // NaN is not a rate
			t.Fatalf("NaN requests/sec from %q", out)
		}
	})
}
