package browser

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/portlama/portlama/internal/cloud/digitalocean"
	"github.com/portlama/portlama/internal/cloud/digitalocean/dofake"
	"github.com/portlama/portlama/internal/cloud/launch"
)

// TestHomeCloudPage drives the New relay page of the real
// `portlama-agent ui` against the fake DigitalOcean API: a refused token,
// the accepted one, region and size with the price, and a job that
// stopped after its droplet was made (what it costs, resume, destroy).
// The provisioning run itself is the lab's (TestProvisionLab).
func TestHomeCloudPage(t *testing.T) {
	needHomeUI(t)
	fake := dofake.New(dofake.Options{
		Token: "dop_v1_browser", Addr: "192.0.2.10",
		Regions: []digitalocean.Region{{Slug: "fra1", Name: "Frankfurt 1", Available: true}, {Slug: "ams3", Name: "Amsterdam 3", Available: true}},
		Sizes: []digitalocean.Size{
			{Slug: "s-1vcpu-512mb-10gb", Memory: 512, VCPUs: 1, Disk: 10, PriceMonthly: 4, PriceHourly: 0.00595, Regions: []string{"fra1", "ams3"}, Available: true},
			{Slug: "s-1vcpu-1gb", Memory: 1024, VCPUs: 1, Disk: 25, PriceMonthly: 6, PriceHourly: 0.00893, Regions: []string{"fra1", "ams3"}, Available: true},
		},
	})
	api := httptest.NewServer(fake)
	defer api.Close()
	bin := filepath.Join(t.TempDir(), "portlama")
	if err := os.WriteFile(bin, []byte("relay"), 0o755); err != nil {
		t.Fatal(err)
	}
	link, home := startAgentUI(t, []string{"PORTLAMA_DIGITALOCEAN_API=" + api.URL}, "--relay-binary", bin)
	base := link[:strings.Index(link, "/login")]
	b := NewBrowser(t, ClientCert{})

	b.Must("the token form", chromedp.Navigate(link), WaitHeading("Apps on this machine"), chromedp.Navigate(base+"/cloud"),
		WaitHeading("New relay on DigitalOcean"), WaitText("DigitalOcean API token"))
	b.Must("a refused token", Fill("token", "dop_v1_wrong"), Click("Check and save"), WaitText("DigitalOcean refused the API token"))
	b.Screenshot("home-cloud-token")
	b.Axe("home cloud token")
	b.Must("the accepted token", Fill("token", "dop_v1_browser"), Click("Check and save"), WaitText("Token accepted for me@example.com"),
		WaitText("Costs $4.00 a month ($0.00595 an hour)"))
	b.Screenshot("home-cloud-choose")
	b.Axe("home cloud choose")

	// A job that stopped during the install, its droplet made.
	st := launch.State{
		Request: launch.Request{Name: "home-relay", Region: "fra1", Size: "s-1vcpu-512mb-10gb", Image: "debian-12-x64"},
		Step:    launch.StepInstall, Error: "portlama install did not finish: the SSH connection to the droplet was lost",
		PriceHourly: 0.00595, PriceMonthly: 4, DropletID: 4242, IP: "192.0.2.10",
	}
	data, _ := json.Marshal(st)
	if err := os.WriteFile(filepath.Join(home, "provision.json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	b.Must("the stopped job", chromedp.Reload(), WaitText("Provisioning stopped"),
		WaitText("The droplet home-relay exists and costs $0.00595 an hour ($4.00 a month)"))
	b.Screenshot("home-cloud-failed")
	b.Axe("home cloud failed")
	b.Must("destroy it", Click("Destroy the droplet…"), WaitText("stops costing money"), Click("Destroy"), WaitText("Droplet destroyed"),
		WaitText("Region and size"))
	if _, err := os.Stat(filepath.Join(home, "provision.json")); !os.IsNotExist(err) {
		t.Fatalf("the destroyed job is still saved: %v", err)
	}
	b.NoProblems(t, "home cloud page")
}
