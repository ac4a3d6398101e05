package panel

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/portlama/portlama/internal/config"
)

const completed = `{"error":"Onboarding already completed"}`

func incomplete(st string) string {
	return `{"error":"Onboarding not complete","onboardingStatus":"` + st + `"}`
}

func TestGatingTable(t *testing.T) {
	const domainBody = `{"domain":"new.com","email":"ops@new.com"}`
	type cell struct {
		status int
		body   string // "" = don't compare
	}
	cannot := func(st string) cell {
		return cell{409, `{"error":"Cannot change domain in current state","onboardingStatus":"` + st + `"}`}
	}
	notSet := func(st string) cell {
		return cell{409, `{"error":"Domain must be set before DNS verification","onboardingStatus":"` + st + `"}`}
	}
	rows := []struct {
		method, path, body string
		want               map[string]cell
	}{
		{"GET", "/api/health", "", map[string]cell{
			"FRESH": {200, `{"status":"ok","version":"1.2.3"}`}, "DOMAIN_SET": {200, ""}, "DNS_READY": {200, ""}, "PROVISIONING": {200, ""}, "COMPLETED": {200, ""}}},
		{"GET", "/api/onboarding/status", "", map[string]cell{
			"FRESH":        {200, `{"status":"FRESH","domain":null,"ip":"` + testIP + `","httpsPort":443,"panelIpUrl":"https://` + testIP + `:9292"}`},
			"DOMAIN_SET":   {200, `{"status":"DOMAIN_SET","domain":"example.com","ip":"` + testIP + `","httpsPort":443,"panelIpUrl":"https://` + testIP + `:9292"}`},
			"DNS_READY":    {200, `{"status":"DNS_READY","domain":"example.com","ip":"` + testIP + `","httpsPort":443,"panelIpUrl":"https://` + testIP + `:9292"}`},
			"PROVISIONING": {200, `{"status":"PROVISIONING","domain":"example.com","ip":"` + testIP + `","httpsPort":443,"panelIpUrl":"https://` + testIP + `:9292"}`},
			"COMPLETED":    {200, `{"status":"COMPLETED","domain":"example.com","ip":"` + testIP + `","httpsPort":443,"panelIpUrl":"https://` + testIP + `:9292"}`}}},
		{"POST", "/api/onboarding/domain", domainBody, map[string]cell{
			"FRESH":        {200, `{"ok":true,"domain":"new.com","email":"ops@new.com"}`},
			"DOMAIN_SET":   {200, `{"ok":true,"domain":"new.com","email":"ops@new.com"}`},
			"DNS_READY":    cannot("DNS_READY"),
			"PROVISIONING": cannot("PROVISIONING"),
			"COMPLETED":    {410, completed}}},
		{"POST", "/api/onboarding/verify-dns", "", map[string]cell{
			"FRESH":        notSet("FRESH"),
			"DOMAIN_SET":   {200, ""},
			"DNS_READY":    {200, ""},
			"PROVISIONING": notSet("PROVISIONING"),
			"COMPLETED":    {410, completed}}},
		{"GET", "/api/system/stats", "", map[string]cell{
			"FRESH":        {503, incomplete("FRESH")},
			"DOMAIN_SET":   {503, incomplete("DOMAIN_SET")},
			"DNS_READY":    {503, incomplete("DNS_READY")},
			"PROVISIONING": {503, incomplete("PROVISIONING")},
			"COMPLETED":    {200, `{"cpu":{"usage":12.5,"cores":2},"memory":{"total":0,"used":0,"free":0},"disk":{"total":0,"used":0,"free":0},"uptime":42}`}}},
	}
	states := []string{config.StatusFresh, config.StatusDomainSet, config.StatusDNSReady, config.StatusProvisioning, config.StatusCompleted}
	for _, st := range states {
		for _, row := range rows {
			t.Run(st+" "+row.method+" "+row.path, func(t *testing.T) {
				h := newHarness(t, st)
				c := row.want[st]
				h.do(row.method, row.path, row.body, adminHeaders()).expect(t, c.status, c.body)
			})
		}
	}
}

func TestAgentGetsGateBeforeGuardOnManagementRoutes(t *testing.T) {
	h := newHarness(t, config.StatusDomainSet)
	h.addAgent("home", "AB") // no system:read
	h.do("GET", "/api/system/stats", "", agentHeaders("home", "AB")).expect(t, 503, incomplete("DOMAIN_SET"))
	// Identity still comes first.
	h.do("GET", "/api/system/stats", "", nil).expect(t, 403, certRequired)
}

func TestSystemStatsFailure(t *testing.T) {
	h := newHarness(t, config.StatusCompleted, func(c *Config) { c.Stats = stubStats{err: errBoom} })
	h.do("GET", "/api/system/stats", "", adminHeaders()).expect(t, 500, `{"error":"Failed to retrieve system stats","details":"boom"}`)
}

func TestDomainValidation(t *testing.T) {
	h := newHarness(t, config.StatusFresh)
	post := func(body string) result { return h.do("POST", "/api/onboarding/domain", body, adminHeaders()) }
	const email = `"ops@example.com"`
	badDomains := map[string]string{
		"empty":             `""`,
		"single label":      `"localhost"`,
		"numeric tld":       `"example.123"`,
		"one-letter tld":    `"example.c"`,
		"tld with digit":    `"example.c0m"`,
		"tld with hyphen":   `"example.co-m"`,
		"leading hyphen":    `"-example.com"`,
		"trailing hyphen":   `"example-.com"`,
		"underscore":        `"exa_mple.com"`,
		"label too long":    `"` + strings.Repeat("a", 64) + `.com"`,
		"empty label":       `"example..com"`,
		"leading dot":       `".example.com"`,
		"trailing dot":      `"example.com."`,
		"space":             `"exa mple.com"`,
		"scheme":            `"https://example.com"`,
		"port":              `"example.com:443"`,
		"path":              `"example.com/x"`,
		"too long":          `"` + strings.Repeat("a23456789.", 26) + `com"`,
		"unicode":           `"exämple.com"`,
		"nginx injection":   `"example.com;include"`,
		"leading space":     `" example.com"`,
		"number not string": `123`,
		"bool":              `true`,
		"null":              `null`,
		"array":             `["example.com"]`,
		"object":            `{"d":"example.com"}`,
	}
	for name, d := range badDomains {
		t.Run("domain "+name, func(t *testing.T) {
			r := post(`{"domain":` + d + `,"email":` + email + `}`)
			r.expect(t, 400, "")
			if r.body["error"] != "Validation failed" || fmt.Sprint(r.issuePaths()) != `[["domain"]]` {
				t.Fatalf("body %s", r.raw)
			}
		})
	}
	badEmails := map[string]string{
		"empty":          `""`,
		"no at":          `"opsexample.com"`,
		"no local":       `"@example.com"`,
		"no domain":      `"ops@"`,
		"no tld":         `"ops@example"`,
		"two ats":        `"a@b@example.com"`,
		"space":          `"o ps@example.com"`,
		"leading dot":    `".ops@example.com"`,
		"double dot":     `"o..ps@example.com"`,
		"too long":       `"` + strings.Repeat("a", 60) + "@" + strings.Repeat("b", 60) + "." + strings.Repeat("c", 60) + "." + strings.Repeat("d", 60) + "." + strings.Repeat("e", 60) + `.com"`,
		"local too long": `"` + strings.Repeat("a", 65) + `@example.com"`,
		"bad domain":     `"ops@exa_mple.com"`,
		"number":         `42`,
		"null":           `null`,
	}
	for name, e := range badEmails {
		t.Run("email "+name, func(t *testing.T) {
			r := post(`{"domain":"example.com","email":` + e + `}`)
			r.expect(t, 400, "")
			if r.body["error"] != "Validation failed" || fmt.Sprint(r.issuePaths()) != `[["email"]]` {
				t.Fatalf("body %s", r.raw)
			}
		})
	}
	t.Run("both missing", func(t *testing.T) {
		r := post(`{}`)
		r.expect(t, 400, "")
		if fmt.Sprint(r.issuePaths()) != `[["domain"] ["email"]]` {
			t.Fatalf("issues %v", r.issuePaths())
		}
	})
	t.Run("no body", func(t *testing.T) {
		r := h.do("POST", "/api/onboarding/domain", "", adminHeaders())
		r.expect(t, 400, "")
		if r.body["error"] != "Validation failed" {
			t.Fatalf("body %s", r.raw)
		}
	})
	t.Run("body not an object", func(t *testing.T) {
		for _, b := range []string{`[]`, `"example.com"`, `null`, `1`} {
			r := post(b)
			r.expect(t, 400, "")
			if r.body["error"] != "Validation failed" {
				t.Fatalf("%s: body %s", b, r.raw)
			}
		}
	})
	for _, bad := range []string{`{"domain":`, `{domain:"a.com"}`, `{"domain":"a.com",}`, `{"domain":"a.com"} x`, `{"domain":"a.com"}{}`, "\x00"} {
		post(bad).expect(t, 400, `{"error":"Invalid JSON body"}`)
	}
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "garbage"} {
		hdr := adminHeaders()
		hdr.Set("Content-Type", ct)
		h.do("POST", "/api/onboarding/domain", `{"domain":"a.com","email":"a@a.com"}`, hdr).expect(t, 415, `{"error":"Unsupported Media Type"}`)
	}
	hdr := adminHeaders()
	hdr.Set("Content-Type", "application/json; charset=utf-8")
	h.do("POST", "/api/onboarding/domain", `{"domain":"Upper.Example.COM","email":"A@b.co"}`, hdr).
		expect(t, 200, `{"ok":true,"domain":"upper.example.com","email":"A@b.co"}`)

	big := `{"domain":"a.com","email":"a@a.com","pad":"` + strings.Repeat("x", BodyLimit) + `"}`
	post(big).expect(t, 413, `{"error":"Request body is too large"}`)
	// Exactly at the limit still parses.
	atLimit := `{"domain":"a.com","email":"a@a.com","pad":"`
	atLimit += strings.Repeat("x", BodyLimit-len(atLimit)-2) + `"}`
	post(atLimit).expect(t, 200, "")
}

func TestUnknownKeysIgnoredAndNotStored(t *testing.T) {
	h := newHarness(t, config.StatusFresh)
	h.do("POST", "/api/onboarding/domain", `{"domain":"example.com","email":"a@example.com","status":"COMPLETED","onboarding":{"status":"COMPLETED"},"ip":"1.1.1.1","evil":true}`, adminHeaders()).
		expect(t, 200, `{"ok":true,"domain":"example.com","email":"a@example.com"}`)
	data, err := os.ReadFile(h.store.Path())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(data, &m)
	if m["evil"] != nil || m["ip"] != testIP || m["onboarding"].(map[string]any)["status"] != "DOMAIN_SET" {
		t.Fatalf("unknown keys leaked into panel.json: %s", data)
	}
	if m["custom"] != "kept" || m["serverId"] == nil {
		t.Fatalf("panel.json lost its own keys: %s", data)
	}
	if st, _ := os.Stat(h.store.Path()); st.Mode().Perm() != 0o640 {
		t.Fatalf("mode %o", st.Mode().Perm())
	}
}

func TestNoBodyRoutesAcceptEmptyOrObject(t *testing.T) {
	h := newHarness(t, config.StatusDomainSet)
	h.do("POST", "/api/onboarding/verify-dns", "", adminHeaders()).expect(t, 200, "")
	h.do("POST", "/api/onboarding/verify-dns", "{}", adminHeaders()).expect(t, 200, "")
	h.do("POST", "/api/onboarding/verify-dns", `{"x":1}`, adminHeaders()).expect(t, 200, "")
	h.do("POST", "/api/onboarding/verify-dns", `{`, adminHeaders()).expect(t, 400, `{"error":"Invalid JSON body"}`)
	r := h.do("POST", "/api/onboarding/verify-dns", `[1]`, adminHeaders())
	r.expect(t, 400, "")
	if r.body["error"] != "Validation failed" {
		t.Fatal(r.raw)
	}
}

func TestVerifyDNSOverHTTP(t *testing.T) {
	names := []string{"example.com", "panel.example.com", "auth.example.com", "tunnel.example.com"}
	t.Run("ok with wildcard", func(t *testing.T) {
		h := newHarness(t, config.StatusDomainSet)
		for _, n := range names {
			h.dns.SetA(n, testIP)
		}
		h.dns.SetA("test-portlama-check.example.com", testIP)
		r := h.do("POST", "/api/onboarding/verify-dns", "", adminHeaders())
		r.expect(t, 200, "")
		if r.body["ok"] != true || r.body["wildcardOk"] != true || len(r.body["missingNames"].([]any)) != 0 ||
			r.body["expectedIp"] != testIP || r.body["domain"] != "example.com" {
			t.Fatalf("body %s", r.raw)
		}
		if c, _ := h.store.Load(); c.Onboarding.Status != config.StatusDNSReady {
			t.Fatalf("status %s", c.Onboarding.Status)
		}
		// Repeatable in DNS_READY; then domain changes are refused.
		h.do("POST", "/api/onboarding/verify-dns", "", adminHeaders()).expect(t, 200, "")
		h.do("POST", "/api/onboarding/domain", `{"domain":"x.com","email":"a@x.com"}`, adminHeaders()).
			expect(t, 409, `{"error":"Cannot change domain in current state","onboardingStatus":"DNS_READY"}`)
	})
	t.Run("no wildcard", func(t *testing.T) {
		h := newHarness(t, config.StatusDomainSet)
		for _, n := range names {
			h.dns.SetA(n, testIP)
		}
		r := h.do("POST", "/api/onboarding/verify-dns", "", adminHeaders())
		if r.body["ok"] != true || r.body["wildcardOk"] != false || !strings.Contains(r.body["message"].(string), "no wildcard") {
			t.Fatalf("body %s", r.raw)
		}
	})
	t.Run("other ip", func(t *testing.T) {
		h := newHarness(t, config.StatusDomainSet)
		for _, n := range names {
			h.dns.SetA(n, "198.51.100.99")
		}
		r := h.do("POST", "/api/onboarding/verify-dns", "", adminHeaders())
		r.expect(t, 200, "")
		if r.body["ok"] != false || len(r.body["missingNames"].([]any)) != 4 ||
			!strings.Contains(r.body["message"].(string), "point to "+testIP) ||
			fmt.Sprint(r.body["resolvedIps"]) != "[198.51.100.99]" {
			t.Fatalf("body %s", r.raw)
		}
		if c, _ := h.store.Load(); c.Onboarding.Status != config.StatusDomainSet {
			t.Fatalf("failed check changed status to %s", c.Onboarding.Status)
		}
	})
	t.Run("nxdomain", func(t *testing.T) {
		h := newHarness(t, config.StatusDomainSet)
		r := h.do("POST", "/api/onboarding/verify-dns", "", adminHeaders())
		r.expect(t, 200, "")
		if r.body["ok"] != false || !strings.Contains(r.body["message"].(string), "Add A records") ||
			fmt.Sprint(r.body["resolvedIps"]) != "[]" || fmt.Sprint(r.body["wildcardResolvedIps"]) != "[]" {
			t.Fatalf("body %s", r.raw)
		}
		if c, _ := h.store.Load(); c.Onboarding.Status != config.StatusDomainSet {
			t.Fatalf("failed check changed status to %s", c.Onboarding.Status)
		}
	})
	t.Run("servfail", func(t *testing.T) {
		h := newHarness(t, config.StatusDomainSet)
		h.dns.SetRcode("panel.example.com", 2)
		r := h.do("POST", "/api/onboarding/verify-dns", "", adminHeaders())
		r.expect(t, 500, "")
		if r.body["error"] != "Failed to verify DNS" {
			t.Fatalf("body %s", r.raw)
		}
	})
}

func TestConcurrentDomainUpdates(t *testing.T) {
	h := newHarness(t, config.StatusFresh)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			body := fmt.Sprintf(`{"domain":"d%d.example.com","email":"a%d@example.com"}`, i, i)
			req, _ := http.NewRequest("POST", h.http.URL+"/api/onboarding/domain", strings.NewReader(body))
			req.Header = adminHeaders()
			req.Header.Set("Content-Type", "application/json")
			resp, err := h.http.Client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("status %d", resp.StatusCode)
			}
		})
	}
	wg.Wait()
	c, err := h.store.Load()
	if err != nil {
		t.Fatalf("panel.json corrupted: %v", err)
	}
	var n int
	if _, err := fmt.Sscanf(c.DomainOrEmpty(), "d%d.example.com", &n); err != nil || c.EmailOrEmpty() != fmt.Sprintf("a%d@example.com", n) {
		t.Fatalf("domain %q and email %q do not come from the same update", c.DomainOrEmpty(), c.EmailOrEmpty())
	}
	if c.Extra()["custom"] == nil {
		t.Fatal("unknown key lost under concurrency")
	}
}

// The status names the public HTTPS port and the panel's address by IP, so
// the web UI links to https://<name>.<d>:<port> and https://<ip>:<port> on a
// relay (or the demo) that does not use 443 and 9292.
func TestOnboardingStatusNamesHTTPSPort(t *testing.T) {
	h := newHarness(t, config.StatusCompleted, func(c *Config) { c.Addrs.HTTPSPort = 8443; c.Addrs.PanelIPPort = 9443 })
	h.do("GET", "/api/onboarding/status", "", adminHeaders()).
		expect(t, 200, `{"status":"COMPLETED","domain":"example.com","ip":"`+testIP+`","httpsPort":8443,"panelIpUrl":"https://`+testIP+`:9443"}`)
}
