package browser

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestOnboardingWizard walks a fresh relay through the wizard. Steps 1 and
// 2 (domain, DNS) run against today's panel. Steps 3 and 4 need
// POST /api/onboarding/provision and its WebSocket (issue 9): while the
// panel answers 404 there, the test ends after checking that the wizard
// says so; once the route exists it walks provisioning to COMPLETED.
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

	b.Must("continue", Click("Continue"), WaitText("Provisioning"))
	// Either the panel has no provisioning route yet, or it provisions.
	b.Must("provisioning starts or is missing", Until(`document.body.innerText.includes("cannot provision yet") || document.querySelector('[data-testid="provision-tasks"] [data-status="running"], [data-testid="provision-tasks"] [data-status="done"]') !== null || document.body.innerText.includes("Your relay is ready")`))
	text := Get(b, "page text", chromedp.Evaluate[string](`document.body.innerText`))
	if strings.Contains(text, "cannot provision yet") {
		b.Screenshot("onboarding-provisioning-missing")
		t.Skip("POST /api/onboarding/provision is not served yet (issue 9): steps 3 and 4 wait for it")
	}
	b.Screenshot("onboarding-provisioning")
	b.Axe("onboarding: provisioning")
	if err := b.Run(4*time.Minute, WaitText("Your relay is ready")); err != nil {
		b.fail("provisioning did not complete", err)
	}
	b.Must("the one-time password", Click("Show admin password"))
	pw := Get(b, "read the password", chromedp.AttributeValue(chromedp.CSS(`code[aria-label="admin password"]`), "data-secret")).Value
	if len(pw) < 16 {
		t.Fatalf("admin password %q", pw)
	}
	b.Screenshot("onboarding-complete")
	b.Axe("onboarding: complete")
	b.Must("to the dashboard", Click("Go to Dashboard"), WaitHeading("Dashboard"))
	b.NoProblems(t, "onboarding")
}
