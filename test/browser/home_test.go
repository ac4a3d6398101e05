package browser

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/demo"
	"github.com/portlama/portlama/internal/homeui"
)

// TestHomeUI drives the home control UI (the real `portlama-agent ui`)
// in Chromium against the demo relay: enroll with a token, discover an app
// this test starts on a random port, tunnel it with one click, fetch it
// through nginx, toggle and delete it, and remove the relay (its agent
// certificate is revoked).
func TestHomeUI(t *testing.T) {
	needHomeUI(t)
	st := startStack(t, 24300)
	b := NewBrowser(t, adminCert(st))
	// The catalog recognises Home Assistant by its title.
	app := servePage(t, "Home Assistant", "Welcome home from the browser test")

	caps := []api.Capability{api.CapTunnelsRead, api.CapTunnelsWrite}
	tok, err := adminAPI(t, st).CreateEnrollmentToken(context.Background(), api.NewAgentRequest{Label: "laptop", Capabilities: &caps})
	if err != nil {
		t.Fatal(err)
	}
	link, _ := startAgentUI(t, st.AgentEnv())
	base := link[:strings.Index(link, "/login")]
	fqdn := "home." + demo.Domain

	b.Must("log in with the one-time link", chromedp.Navigate(link), WaitHeading("Apps on this machine"), WaitText("Add a relay first"))
	b.Screenshot("home-first-run")
	b.Axe("home first run")
	b.Must("add the relay", chromedp.Navigate(base+"/servers"), WaitHeading("Servers"),
		Fill("token", tok.Token), Fill("panelUrl", st.Info.PanelURL), Fill("panelFingerprint", tok.PanelFingerprint),
		Click("Add relay"), WaitText("Added laptop"), WaitText("This machine"))
	b.Screenshot("home-servers")
	b.Axe("home servers")

	b.Must("discover the app", chromedp.Navigate(base+"/"), WaitHeading("Apps on this machine"),
		WaitText(fmt.Sprintf("localhost:%d", app)), WaitText("Home Assistant"))
	b.Screenshot("home-apps")
	b.Axe("home apps")
	b.Must("the tunnel options", Click("Options… for Home Assistant"), WaitText("Who can open it"))
	b.Screenshot("home-tunnel-options")
	b.Axe("home tunnel options")
	b.Must("close the options", Click("Cancel"))
	b.Must("tunnel it with one click", Click("Tunnel as home: Home Assistant"), WaitText("Tunnel created: https://"+fqdn), WaitText("Tunnelled"))

	// One click: the suggested subdomain, the login-protected access (an
	// agent's suggestion), this machine's agent, the discovered port.
	oneClick := false
	if list, err := adminAPI(t, st).ListTunnels(context.Background()); err == nil {
		for _, tu := range list {
			oneClick = oneClick || (tu.FQDN == fqdn && tu.AgentLabel == "laptop" && tu.Port == app && tu.AccessMode == api.AccessAuthenticated)
		}
	}
	if !oneClick {
		t.Fatal("the relay has no tunnel as the one click should have made it")
	}
	b.Must("the tunnel connects", chromedp.Navigate(base+"/tunnels"), WaitHeading("Tunnels"), WaitText(fqdn), WaitText("Connected"))
	b.Screenshot("home-tunnels")
	b.Axe("home tunnels")
	b.Must("dark mode", Dark(true))
	b.Screenshot("home-tunnels-dark")
	b.Axe("home tunnels (dark)")
	b.Must("phone", Dark(false), Phone(true), chromedp.Reload(), WaitHeading("Tunnels"), WaitText("Connected"))
	// Nothing widens the page beyond the phone's screen (the table scrolls
	// inside its card).
	if w := Get(b, "page width", chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); w > 390 {
		t.Errorf("the tunnels page is %d px wide on a 390 px phone", w)
	}
	b.Screenshot("home-tunnels-phone")
	b.Axe("home tunnels (phone)")
	b.Must("desktop", Phone(false))

	// Access and allow-list, as far as an agent may: restricted to alice.
	b.Must("restrict it", Click("Access… for "+fqdn), WaitText("Who can open "+fqdn),
		Until(`(() => { const el = document.querySelector("dialog[open] select[name=accessMode]"); Object.getOwnPropertyDescriptor(HTMLSelectElement.prototype, "value").set.call(el, "restricted"); el.dispatchEvent(new Event("change", {bubbles: true})); return true })()`),
		Fill("allowedUsers", "alice"), Click("Save access"), WaitText("Access of "+fqdn+" saved"), WaitText("alice"))
	b.Screenshot("home-tunnels-restricted")
	restricted := false
	if list, err := adminAPI(t, st).ListTunnels(context.Background()); err == nil {
		for _, tu := range list {
			restricted = restricted || (tu.FQDN == fqdn && tu.AccessMode == api.AccessRestricted && tu.AllowedUsers != nil && strings.Join(*tu.AllowedUsers, ",") == "alice")
		}
	}
	if !restricted {
		t.Fatal("the relay does not have the access the UI saved")
	}

	// Through nginx: the relay's HTTPS vhost serves the app on this
	// machine. Agents make login-protected tunnels; the admin opens this
	// one to the public so the browser gets the app without the portal.
	list, err := adminAPI(t, st).ListTunnels(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	public := api.AccessPublic
	for _, tu := range list {
		if tu.FQDN == fqdn {
			if tu.AgentLabel != "laptop" || tu.Port != app {
				t.Fatalf("the tunnel the UI made: %+v", tu)
			}
			if _, err := adminAPI(t, st).UpdateTunnel(context.Background(), tu.ID, api.UpdateTunnelRequest{AccessMode: &public}); err != nil {
				t.Fatal(err)
			}
		}
	}
	url := st.Relay.Addrs.HostURL("home", demo.Domain) + "/"
	b.Must("fetch it through the relay", chromedp.Navigate(url), WaitText("Welcome home from the browser test"))

	b.Must("disable it", chromedp.Navigate(base+"/tunnels"), WaitText(fqdn), Click("Enable "+fqdn),
		Visible(`button[aria-label="Enable `+fqdn+`"][aria-checked="false"]`), WaitText("Disabled"))
	b.Must("enable it again", Click("Enable "+fqdn), Visible(`button[aria-label="Enable `+fqdn+`"][aria-checked="true"]`), WaitText("Connected"))
	b.Must("delete it", Click("Delete "+fqdn), WaitText("Delete "+fqdn+"?"), Click("Delete tunnel"),
		Until(`!document.body.innerText.includes(`+jsString(fqdn)+`)`))

	b.Must("the log", chromedp.Navigate(base+"/log"), WaitHeading("Log"), WaitText("tunnel deleted"))
	b.Screenshot("home-log")
	b.Axe("home log")

	b.Must("remove the relay", chromedp.Navigate(base+"/servers"), WaitText("laptop"), Click("Remove laptop"), Click("Remove"),
		WaitText("its certificate was revoked on the relay"), WaitText("No relay yet"))
	agents, err := adminAPI(t, st).ListAgents(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range agents {
		if a.Label == "laptop" && !a.Revoked {
			t.Fatal("the relay did not revoke laptop")
		}
	}
	b.NoProblems(t, "home UI")
}

// needHomeUI skips (fails under CI) when the home UI is not built.
func needHomeUI(t *testing.T) {
	t.Helper()
	if !homeui.Built() {
		if os.Getenv("CI") == "true" {
			t.Fatal("the home UI is not built: run `make ui`")
		}
		t.Skip("the home UI is not built (make ui)")
	}
}

// startAgentUI runs `portlama-agent ui` with env and args added and
// returns its one-time link and its home directory.
func startAgentUI(t *testing.T, env []string, args ...string) (string, string) {
	t.Helper()
	home := filepath.Join(t.TempDir(), ".portlama")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "portlama-agent"), append([]string{"--home", home, "ui", "--no-browser",
		"--listen", "127.0.0.1:0", "--poll-interval", "1s"}, args...)...)
	cmd.Env = append(append(os.Environ(), env...), "PORTLAMA_KEYCHAIN=file")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(t.TempDir(), "ui.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			data, _ := os.ReadFile(logf.Name())
			t.Logf("--- portlama-agent ui log\n%s", data)
		}
	})
	// The link is printed once the UI listens.
	got := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if l, ok := strings.CutPrefix(sc.Text(), "Control UI: "); ok {
				got <- l
			}
		}
	}()
	select {
	case l := <-got:
		return l, home
	case <-time.After(30 * time.Second):
		t.Fatal("portlama-agent ui printed no link within 30 s")
		return "", ""
	}
}
