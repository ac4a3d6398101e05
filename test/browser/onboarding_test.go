package browser

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestOnboardingWizard walks a fresh relay through the wizard to COMPLETED:
// domain (client-side checks first), DNS from "missing" to ready,
// provisioning with the six tasks' live status from the WebSocket, and the
// completion page with the admin login shown once.
func TestOnboardingWizard(t *testing.T) {
	r := startFreshRelay(t)
	b := NewBrowser(t, r.Client)
	const domain = "relay.example.net"

	b.Must("step 1", chromedp.Navigate(r.PanelURL+"/"), WaitHeading("Set up your relay"), WaitText("Your domain"))
	b.Screenshot("onboarding-domain")
	b.Axe("onboarding: domain")
	b.Must("client-side checks", Fill("domain", "https://"+domain), Click("Save & Continue"), WaitText("Only the domain, without https://."), WaitText("Enter an e-mail address."))
	b.Must("save the domain", Fill("domain", domain), Fill("email", "ops@example.net"), Click("Save & Continue"), WaitText("Point your domain at this server"))
	b.Screenshot("onboarding-dns")
	b.Axe("onboarding: DNS")

	// No records yet: the check explains what is missing.
	b.Must("verify without records", Click("Verify DNS"), WaitText("Not there yet"))
	b.Screenshot("onboarding-dns-missing")
	for _, n := range []string{domain, "panel." + domain, "auth." + domain, "tunnel." + domain, "test-portlama-check." + domain} {
		r.DNS.SetA(n, "127.0.0.1")
	}
	b.Must("verify with records", Click("Verify DNS"), WaitText("DNS is ready"), Visible(`li svg`))
	b.Axe("onboarding: DNS verified")

	// Watch the task list as the stream updates it, from before it
	// appears: every status each task shows, in order.
	b.Must("watch the tasks", Until(`(() => {
		window.__seen = [[], [], [], [], [], []];
		const note = () => document.querySelectorAll('[data-testid="provision-tasks"] li[data-status]').forEach((li, i) => {
			const s = window.__seen[i]; if (s && s[s.length - 1] !== li.dataset.status) s.push(li.dataset.status);
		});
		new MutationObserver(note).observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ["data-status"]});
		return true;
	})()`))
	b.Must("continue", Click("Continue"), WaitText("Provisioning"),
		Until(`document.querySelectorAll('[data-testid="provision-tasks"] li[data-status]').length === 6 || document.body.innerText.includes("Your relay is ready")`))
	b.Screenshot("onboarding-provisioning")
	b.Axe("onboarding: provisioning")
	if err := b.Run(4*time.Minute, WaitText("Your relay is ready")); err != nil {
		b.fail("provisioning did not complete", err)
	}
	seen := Get(b, "task statuses seen", chromedp.Evaluate[[][]string](`window.__seen`))
	t.Logf("task statuses as the page showed them: %v", seen)
	live := false
	for i, s := range seen {
		if len(s) == 0 || s[len(s)-1] != "done" {
			t.Errorf("task %d: statuses %v, want it to end done", i+1, s)
		}
		live = live || len(s) > 1
	}
	if !live {
		t.Errorf("no task changed status while the page was watching (%v): the list did not follow the stream", seen)
	}
	// The completion page: the login, shown once, and the addresses.
	b.Must("the login", Visible(`code[aria-label="admin username"]`), WaitText("Shown only once"), WaitText("https://panel."+domain))
	if u := Get(b, "read the username", chromedp.Text(chromedp.CSS(`code[aria-label="admin username"]`))); u != "admin" {
		t.Errorf("admin username %q", u)
	}
	// The address by IP is the one this browser uses (the test relay's
	// port, not 9292).
	if u := Get(b, "read the panel's address by IP", chromedp.Text(chromedp.CSS(`code[aria-label="panel by IP"]`))); u != r.PanelURL {
		t.Errorf("panel by IP %q, want %q", u, r.PanelURL)
	}
	b.Must("the one-time password", Click("Show admin password"), Visible(`code[aria-label="admin password"][data-secret]`))
	pw := Get(b, "read the password", chromedp.AttributeValue(chromedp.CSS(`code[aria-label="admin password"]`), "data-secret")).Value
	if len(pw) < 16 {
		t.Fatalf("admin password %q", pw)
	}
	b.Screenshot("onboarding-complete")
	b.Axe("onboarding: complete")
	b.Must("to the dashboard", Click("Go to Dashboard"), WaitHeading("Dashboard"))
	// Shown once: a reload lands on the dashboard, and the password is
	// nowhere in the page.
	b.Must("reload", chromedp.Reload(), WaitHeading("Dashboard"), WaitText("Uptime"))
	if text := Get(b, "page text", chromedp.Evaluate[string](`document.documentElement.outerHTML`)); strings.Contains(text, pw) {
		t.Error("the admin password is still in the page after a reload")
	}
	b.NoProblems(t, "onboarding")
}
