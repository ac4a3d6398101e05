package homeui

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/portlama/portlama/internal/agent"
	"github.com/portlama/portlama/internal/cloud/digitalocean"
	"github.com/portlama/portlama/internal/cloud/digitalocean/dofake"
	"github.com/portlama/portlama/internal/cloud/launch"
	"github.com/portlama/portlama/internal/keychain"
	"github.com/portlama/portlama/internal/servers"
)

// TestCloudRoutes: the token is validated against the API before it is
// kept (in the keychain only), the options preselect the cheapest 512 MB
// size with its price, and bad requests change nothing. The provisioning
// run itself is tested in internal/cloud/launch and the lab.
func TestCloudRoutes(t *testing.T) {
	fake := dofake.New(dofake.Options{
		Token: "dop_v1_good", Addr: "192.0.2.1",
		Regions: []digitalocean.Region{{Slug: "fra1", Name: "Frankfurt 1", Available: true}, {Slug: "old1", Name: "Closed", Available: false}},
		Sizes: []digitalocean.Size{
			{Slug: "s-1vcpu-1gb", Memory: 1024, VCPUs: 1, PriceMonthly: 6, PriceHourly: 0.00893, Regions: []string{"fra1"}, Available: true},
			{Slug: "s-1vcpu-512mb-10gb", Memory: 512, VCPUs: 1, PriceMonthly: 4, PriceHourly: 0.00595, Regions: []string{"fra1"}, Available: true},
		},
	})
	api := httptest.NewServer(fake)
	defer api.Close()
	dir := filepath.Join(t.TempDir(), ".portlama")
	tok, _ := LoadToken(dir)
	h := agent.Home{Dir: dir}
	keys, err := keychain.Open(keychain.Options{Backend: keychain.BackendFile, File: filepath.Join(dir, "secrets.json")})
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "portlama")
	os.WriteFile(bin, []byte("relay"), 0o755)
	reg := servers.New(h, keys)
	cloud := launch.NewService(launch.ServiceConfig{APIBase: api.URL, Keys: keys, Servers: reg, StatePath: filepath.Join(dir, "provision.json"), Binary: bin})
	s, err := Listen("127.0.0.1:0", Config{Home: h, Registry: reg, Token: tok, Cloud: cloud, Assets: fstest.MapFS{"index.html": {Data: []byte("x")}}})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(t.Context())
	base := "http://127.0.0.1:" + strconv.Itoa(s.Port())
	call := caller(t, base, tok)
	if code, body := call("GET", "/api/home/cloud", ""); code != 200 || !strings.Contains(body, `"tokenSaved":false`) || !strings.Contains(body, `"job":null`) {
		t.Fatalf("cloud before a token: %d %s", code, body)
	}
	if code, body := call("GET", "/api/home/cloud/options", ""); code != 409 || !strings.Contains(body, "no DigitalOcean API token") {
		t.Fatalf("options without a token: %d %s", code, body)
	}
	for _, bad := range []string{`{"token":"dop_v1_wrong"}`, `{"token":"two words"}`, `{"token":""}`, `{"token":"x","extra":1}`} {
		if code, body := call("PUT", "/api/home/cloud/token", bad); code != 400 {
			t.Fatalf("token %s: %d %s", bad, code, body)
		}
	}
	if _, err := keys.Get("digitalocean/token"); err == nil {
		t.Fatal("a refused token was kept")
	}
	if code, body := call("PUT", "/api/home/cloud/token", `{"token":"dop_v1_good"}`); code != 200 || !strings.Contains(body, "me@example.com") {
		t.Fatalf("good token: %d %s", code, body)
	}
	if v, err := keys.Get("digitalocean/token"); err != nil || v != "dop_v1_good" {
		t.Fatalf("token in the keychain: %q %v", v, err)
	}
	code, body := call("GET", "/api/home/cloud/options", "")
	if code != 200 || !strings.Contains(body, `"suggested":"s-1vcpu-512mb-10gb"`) || strings.Contains(body, "old1") ||
		strings.Index(body, "s-1vcpu-512mb-10gb") > strings.Index(body, "s-1vcpu-1gb") || !strings.Contains(body, `"priceHourly":0.00595`) {
		t.Fatalf("options: %d %s", code, body)
	}
	for _, bad := range []string{`{"name":"Bad Name","region":"fra1","size":"s-1vcpu-512mb-10gb"}`, `{"name":"r1","region":"nyc3","size":"s-1vcpu-512mb-10gb"}`, `{"name":"r1","region":"fra1","size":"nope"}`} {
		if code, body := call("POST", "/api/home/cloud/provision", bad); code != 400 {
			t.Fatalf("provision %s: %d %s", bad, code, body)
		}
	}
	if k, d := fake.Counts(); k != 0 || d != 0 {
		t.Fatalf("refused requests made %d keys, %d droplets", k, d)
	}
	// A saved job (one that stopped) blocks a new one.
	if err := os.WriteFile(filepath.Join(dir, "provision.json"), []byte(`{"request":{"name":"old","region":"fra1","size":"s-1vcpu-512mb-10gb"},"step":"connect","dropletId":9}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, body := call("POST", "/api/home/cloud/provision", `{"name":"r1","region":"fra1","size":"s-1vcpu-512mb-10gb"}`); code != 409 || !strings.Contains(body, "stopped at step connect") {
		t.Fatalf("provision with a saved job: %d %s", code, body)
	}
	if code, body := call("GET", "/api/home/cloud", ""); code != 200 || !strings.Contains(body, `"dropletId":9`) {
		t.Fatalf("cloud with a saved job: %d %s", code, body)
	}
	os.Remove(filepath.Join(dir, "provision.json"))
	if code, body := call("POST", "/api/home/cloud/resume", ""); code != 409 {
		t.Fatalf("resume without a job: %d %s", code, body)
	}
	if code, body := call("POST", "/api/home/cloud/destroy", ""); code != 409 {
		t.Fatalf("destroy without a job: %d %s", code, body)
	}
}

// TestCloudUnavailable: without a relay binary the routes say so.
func TestCloudUnavailable(t *testing.T) {
	s := startUI(t)
	req, _ := http.NewRequest("GET", "http://127.0.0.1:"+strconv.Itoa(s.Port())+"/api/home/cloud", nil)
	req.Header.Set(TokenHeader, s.cfg.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("cloud without a binary: %d", resp.StatusCode)
	}
}
