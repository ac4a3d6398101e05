package auth

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// burst sends n copies of a login API request at once while every
// credential check is held until all n requests are either being checked or
// answered, so none of them can see another's recorded failure. It returns
// the status codes and how many credential checks were made.
func burst(t *testing.T, e *env, n int, path, cookie string, body any, hdr ...string) ([]int, int64) {
	t.Helper()
	data, _ := json.Marshal(body)
	release := make(chan struct{})
	var entered, answered atomic.Int64
	hook := func() { entered.Add(1); <-release }
	e.srv.attemptHook.Store(&hook)
	defer e.srv.attemptHook.Store(nil)
	before := e.srv.attempts.Load()

	codes := make([]int, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer answered.Add(1)
			req, _ := http.NewRequest(http.MethodPost, e.base+path, strings.NewReader(string(data)))
			req.Header.Set("Content-Type", "application/json")
			if cookie != "" {
				req.Header.Set("Cookie", SessionCookieName+"="+cookie)
			}
			for j := 0; j+1 < len(hdr); j += 2 {
				req.Header.Set(hdr[j], hdr[j+1])
			}
			resp, err := e.hc.Do(req)
			if err != nil {
				errs[i] = err
				return
			}
			resp.Body.Close()
			codes[i] = resp.StatusCode
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for entered.Load()+answered.Load() < int64(n) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	return codes, e.srv.attempts.Load() - before
}

func TestParallelWrongPasswordsCannotBypassBan(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	e.clock.Add(30 * time.Second)
	ip := []string{"X-Real-IP", "198.51.100.7"}

	const n = 40
	codes, checked := burst(t, e, n, "/api/firstfactor", "",
		map[string]any{"username": "alice", "password": "wrong password"}, ip...)
	if checked < 1 || checked > RegulationMaxRetries {
		t.Fatalf("%d of %d parallel wrong passwords were checked, want at most %d", checked, n, RegulationMaxRetries)
	}
	for i, c := range codes {
		if c != http.StatusUnauthorized && c != http.StatusTooManyRequests {
			t.Fatalf("request %d: %d, want 401 or 429", i, c)
		}
	}
	// The right password right after is refused: the user is banned.
	if r := e.firstFactor("alice", testPass, ip...); r.code != http.StatusTooManyRequests || r.cookie != nil {
		t.Fatalf("right password after the burst: %d %s, want 429 (banned)", r.code, r.raw)
	}
	// Also from another address (the user key is banned).
	if r := e.firstFactor("alice", testPass, "X-Real-IP", "198.51.100.8"); r.code != http.StatusTooManyRequests {
		t.Fatalf("right password from another address: %d, want 429", r.code)
	}
	// The ban lifts after the ban time.
	e.clock.Add(RegulationBanTime)
	if r := e.firstFactor("alice", testPass, ip...); r.code != http.StatusOK || r.cookie == nil {
		t.Fatalf("after the ban: %d %s, want 200", r.code, r.raw)
	}
}

func TestParallelWrongCodesCannotBypassBan(t *testing.T) {
	e := newEnv(t)
	e.addUser("bob")
	e.clock.Add(30 * time.Second)
	ip := []string{"X-Real-IP", "198.51.100.9"}
	ff := e.firstFactor("bob", testPass, ip...)
	if ff.code != http.StatusOK || ff.cookie == nil {
		t.Fatalf("first factor: %d %s", ff.code, ff.raw)
	}
	good := e.code("bob")
	wrong := "000000"
	if good == wrong {
		wrong = "111111"
	}
	const n = 40
	codes, checked := burst(t, e, n, "/api/secondfactor/totp", ff.cookie.Value, map[string]string{"token": wrong}, ip...)
	if checked < 1 || checked > RegulationMaxRetries {
		t.Fatalf("%d of %d parallel wrong codes were checked, want at most %d", checked, n, RegulationMaxRetries)
	}
	for i, c := range codes {
		if c != http.StatusUnauthorized && c != http.StatusTooManyRequests {
			t.Fatalf("request %d: %d, want 401 or 429", i, c)
		}
	}
	if r := e.post("/api/secondfactor/totp", ff.cookie.Value, map[string]string{"token": good}, ip...); r.code != http.StatusTooManyRequests {
		t.Fatalf("right code after the burst: %d %s, want 429 (banned)", r.code, r.raw)
	}
}

func TestRegulatorInFlight(t *testing.T) {
	now := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	r := newRegulator()
	for i := 0; i < RegulationMaxRetries; i++ {
		if ok, _ := r.begin(now, "u:a", "ip:1"); !ok {
			t.Fatalf("attempt %d refused", i)
		}
	}
	if ok, wait := r.begin(now, "u:a", "ip:2"); ok || wait != 0 {
		t.Fatal("sixth parallel attempt admitted")
	}
	if ok, _ := r.begin(now, "u:b", "ip:2"); !ok {
		t.Fatal("other user and address refused")
	}
	r.end(now, false, "u:b", "ip:2")
	// Successes free their places without counting as failures.
	for i := 0; i < RegulationMaxRetries; i++ {
		r.end(now, false, "u:a", "ip:1")
	}
	if r.banned(now, "u:a") != 0 || r.InFlight() != 0 {
		t.Fatalf("banned %v in flight %v after successes", r.banned(now, "u:a"), r.InFlight())
	}
	// Four failures leave room for exactly one more attempt at a time.
	for i := 0; i < RegulationMaxRetries-1; i++ {
		r.begin(now, "u:a")
		r.end(now, true, "u:a")
	}
	if ok, _ := r.begin(now, "u:a"); !ok {
		t.Fatal("fifth attempt refused")
	}
	if ok, _ := r.begin(now, "u:a"); ok {
		t.Fatal("attempt beyond failures+in-flight admitted")
	}
	r.end(now, true, "u:a")
	if d := r.banned(now, "u:a"); d != RegulationBanTime {
		t.Fatalf("banned for %v after five failures, want %v", d, RegulationBanTime)
	}
	if ok, wait := r.begin(now.Add(RegulationBanTime-time.Second), "u:a"); ok || wait != time.Second {
		t.Fatalf("during the ban: admitted %v, wait %v", ok, wait)
	}
	if ok, _ := r.begin(now.Add(RegulationBanTime), "u:a"); !ok {
		t.Fatal("refused after the ban")
	}
}
