package nginx

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func get(t *testing.T, c *http.Client, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func decodeEcho(t *testing.T, body string) echoReply {
	t.Helper()
	var e echoReply
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("backend reply %q: %v", body, err)
	}
	return e
}

func TestEveryTemplatePassesNginxTest(t *testing.T) {
	rl := startRelay(t, nil)
	ctx := ctxT(t)
	var vhosts []Vhost
	add := func(v Vhost, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		vhosts = append(vhosts, v)
	}
	add(rl.r.PanelDomain(testDomain, rl.tls()))
	add(rl.r.Auth(testDomain, rl.tls()))
	add(rl.r.Tunnel(testDomain, rl.tls()))
	add(rl.r.App(AppParams{Domain: testDomain, Subdomain: "pub-app", RelayPort: 20001, Public: true, TLS: rl.tls()}))
	add(rl.r.App(AppParams{Domain: testDomain, Subdomain: "private", RelayPort: 20002, TLS: rl.tls()}))
	add(rl.r.AgentPanel(AppParams{Domain: testDomain, Subdomain: "agent-home", RelayPort: 20003, Owner: "home", TLS: rl.tls()}))
	add(rl.r.Site(SiteParams{ID: "1b4e28ba-2fa1-4d2e-883f-0016d3cca427", FQDN: "site." + testDomain, SPA: true, Protected: true, TLS: rl.tls()}))
	add(rl.r.Site(SiteParams{ID: "00000000-0000-4000-8000-000000000000", FQDN: "www.example.org", TLS: rl.tls()}))
	if err := rl.mgr.Apply(ctx, vhosts...); err != nil {
		t.Fatal(err)
	}
	out, err := rl.inst.Test(ctx)
	if err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	for _, v := range vhosts {
		if en, err := rl.mgr.VhostEnabled(v.Name); err != nil || !en {
			t.Errorf("%s not enabled: %v", v.Name, err)
		}
	}
	st, err := os.Stat(rl.layout.NginxSnippets() + "/portlama-proxy-secret.conf")
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("proxy secret snippet mode: %v %v", st, err)
	}
	st, err = os.Stat(rl.layout.NginxSitesAvailable() + "/portlama-app-private")
	if err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("vhost mode: %v %v", st, err)
	}
	// The panel-ip vhost serves on its port: /api/health needs a cert too.
	resp, _ := get(t, rl.client(rl.addrs.PanelIPPort, &rl.pki.client), "https://127.0.0.1/api/health", nil)
	if resp.StatusCode != 200 {
		t.Errorf("panel-ip with certificate: %d", resp.StatusCode)
	}
}

func TestPanelIPVhostHeadersAndCertificates(t *testing.T) {
	rl := startRelay(t, nil)
	base := "https://127.0.0.1:" + strconv.Itoa(rl.addrs.PanelIPPort)
	forged := map[string]string{
		"Remote-User":             "mallory",
		"Remote-Groups":           "admins",
		"Remote-Email":            "m@example.com",
		"X-SSL-Client-Verify":     "SUCCESS",
		"X-SSL-Client-DN":         "CN=admin,O=Portlama",
		"X-SSL-Client-Serial":     "01",
		"X-Portlama-Proxy-Secret": "forged",
	}

	t.Run("valid certificate", func(t *testing.T) {
		resp, body := get(t, rl.client(rl.addrs.PanelIPPort, &rl.pki.client), base+"/api/tunnels", forged)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		e := decodeEcho(t, body)
		h := e.Headers
		if h.Get("X-SSL-Client-Verify") != "SUCCESS" {
			t.Errorf("X-SSL-Client-Verify = %q", h.Get("X-SSL-Client-Verify"))
		}
		if dn := h.Get("X-SSL-Client-DN"); dn != "CN=admin,O=Portlama" {
			t.Errorf("X-SSL-Client-DN = %q", dn)
		}
		wantSerial := strings.ToUpper(rl.pki.clientCert.SerialNumber.Text(16))
		if s := h.Get("X-SSL-Client-Serial"); strings.TrimLeft(s, "0") != wantSerial {
			t.Errorf("X-SSL-Client-Serial = %q, want %q", s, wantSerial)
		}
		for _, k := range []string{"Remote-User", "Remote-Groups", "Remote-Email"} {
			if v, ok := h[k]; ok {
				t.Errorf("%s passed through: %q", k, v)
			}
		}
		if got := h.Values("X-Portlama-Proxy-Secret"); len(got) != 1 || got[0] != testSecret {
			t.Errorf("proxy secret = %q", got)
		}
		if h.Get("X-Real-Ip") != "127.0.0.1" || h.Get("X-Forwarded-Proto") != "https" {
			t.Errorf("standard headers: %v", h)
		}
	})

	t.Run("no certificate: the help page for browsers, JSON for API clients", func(t *testing.T) {
		_, before := rl.panel.connections()
		for _, c := range []struct {
			path, accept string
			json         bool
		}{
			{"/", "text/html", false},
			{"/settings?x=1", "", false},
			{"/api/tunnels", "", true},
			{"/api", "text/html", true},
			{"/api/invitations", "*/*", true},
			{"/", "application/json", true},
		} {
			resp, body := get(t, rl.client(rl.addrs.PanelIPPort, nil), base+c.path, withHeader(forged, "Accept", c.accept))
			if c.json {
				expectNoCertJSON(t, c.path, resp, body)
			} else if resp.StatusCode != 403 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, "Client certificate required") {
				t.Errorf("%s without certificate: %d %s %.80q", c.path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
		}
		if _, after := rl.panel.connections(); after != before {
			t.Errorf("panel reached %d times without a certificate", after-before)
		}
	})

	t.Run("foreign certificate refused", func(t *testing.T) {
		resp, body := get(t, rl.client(rl.addrs.PanelIPPort, &rl.pki.foreign), base+"/api/tunnels", nil)
		expectNoCertJSON(t, "foreign certificate", resp, body)
	})

	t.Run("public routes blank certificate headers", func(t *testing.T) {
		for _, c := range []struct {
			path string
			cert bool
		}{{"/api/enroll", false}, {"/api/enroll", true}, {"/api/invite/" + testSecret, false}} {
			cl := rl.client(rl.addrs.PanelIPPort, nil)
			if c.cert {
				cl = rl.client(rl.addrs.PanelIPPort, &rl.pki.client)
			}
			resp, body := get(t, cl, base+c.path, forged)
			if resp.StatusCode != 200 {
				t.Fatalf("%s: %d %s", c.path, resp.StatusCode, body)
			}
			h := decodeEcho(t, body).Headers
			for _, k := range []string{"X-Ssl-Client-Verify", "X-Ssl-Client-Dn", "X-Ssl-Client-Serial", "Remote-User", "Remote-Groups"} {
				if v, ok := h[k]; ok {
					t.Errorf("%s: %s passed: %q", c.path, k, v)
				}
			}
			if h.Get("X-Portlama-Proxy-Secret") != testSecret {
				t.Errorf("%s: secret missing", c.path)
			}
		}
	})

	t.Run("enroll is rate limited", func(t *testing.T) {
		cl := rl.client(rl.addrs.PanelIPPort, nil)
		limited := false
		for i := 0; i < 10; i++ {
			resp, _ := get(t, cl, base+"/api/enroll", nil)
			if resp.StatusCode == 429 {
				limited = true
				break
			}
		}
		if !limited {
			t.Error("10 enrollments in a row were not rate limited")
		}
	})
}

// expectNoCertJSON checks nginx's answer to an API call without a valid
// client certificate: the panel's own 403 envelope.
func expectNoCertJSON(t *testing.T, what string, resp *http.Response, body string) {
	t.Helper()
	var e struct {
		Error   string `json:"error"`
		Details struct {
			Hint string `json:"hint"`
		} `json:"details"`
	}
	if resp.StatusCode != 403 || resp.Header.Get("Content-Type") != "application/json" ||
		json.Unmarshal([]byte(body), &e) != nil || e.Error != "mTLS certificate required" || e.Details.Hint == "" {
		t.Errorf("%s: %d %s %.120q, want 403 {\"error\":\"mTLS certificate required\"}", what, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}

// withHeader returns a copy of h with k: v added (nothing for an empty v).
func withHeader(h map[string]string, k, v string) map[string]string {
	out := map[string]string{}
	for a, b := range h {
		out[a] = b
	}
	if v != "" {
		out[k] = v
	}
	return out
}

func TestSystemController(t *testing.T) {
	var calls [][]string
	fail := false
	s := System{Nginx: "/usr/sbin/nginx", Run: func(ctx context.Context, argv []string) ([]byte, error) {
		calls = append(calls, argv)
		if fail {
			return []byte("nginx: [emerg] broken"), errors.New("exit status 1")
		}
		return []byte("syntax is ok"), nil
	}}
	ctx := context.Background()
	if out, err := s.Test(ctx); err != nil || out != "syntax is ok" {
		t.Fatal(out, err)
	}
	if err := s.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	want := "[[/usr/sbin/nginx -t] [systemctl reload nginx]]"
	if got := strings.Join(strings.Fields(strings.Trim(strings.ReplaceAll(fmtArgs(calls), "\n", " "), " ")), " "); got != want {
		t.Errorf("calls = %s, want %s", got, want)
	}
	fail = true
	if out, err := s.Test(ctx); err == nil || !strings.Contains(out, "broken") {
		t.Errorf("failing test: %q %v", out, err)
	}
	if err := s.Reload(ctx); err == nil || !strings.Contains(err.Error(), "broken") {
		t.Errorf("failing reload: %v", err)
	}
}

func fmtArgs(calls [][]string) string {
	var parts []string
	for _, c := range calls {
		parts = append(parts, "["+strings.Join(c, " ")+"]")
	}
	return "[" + strings.Join(parts, " ") + "]"
}
