package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// xpText matches an element whose visible text is exactly text.
func xpText(tag, text string) string {
	return fmt.Sprintf(`//%s[normalize-space(.)=%s]`, tag, xpQuote(text))
}

func xpQuote(s string) string {
	if !strings.Contains(s, `"`) {
		return `"` + s + `"`
	}
	return `concat("` + strings.ReplaceAll(s, `"`, `", '"', "`) + `")`
}

// Click clicks the first enabled button, link or label with this exact
// text or aria-label; while a dialog is open, only inside it.
func Click(label string) Action {
	q := xpQuote(label)
	cond := fmt.Sprintf(`(normalize-space(.)=%[1]s or @aria-label=%[1]s) and not(@disabled)`, q)
	sel := chromedp.Search(fmt.Sprintf(`(//dialog[@open]//button[%[1]s] | //dialog[@open]//a[%[1]s] | //dialog[@open]//label[%[1]s]`+
		` | //button[%[1]s][not(//dialog[@open])] | //a[%[1]s][not(//dialog[@open])] | //label[%[1]s][not(//dialog[@open])])[1]`, cond))
	return chromedp.Steps(chromedp.WaitVisible(sel), chromedp.Click(sel))
}

// Fill types v into the input named name, replacing its value (emptied
// the way React sees it: the native setter plus an input event).
func Fill(name, v string) Action {
	css := fmt.Sprintf(`input[name=%q]`, name)
	sel := chromedp.CSS(css)
	clear := fmt.Sprintf(`(() => { const el = [...document.querySelectorAll(%[1]s)].pop(); Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value").set.call(el, ""); el.dispatchEvent(new Event("input", {bubbles: true})); return true })()`, jsString(css))
	return chromedp.Steps(chromedp.WaitVisible(sel), Until(clear), chromedp.SendKeys(sel, v))
}

// Until waits until the JavaScript expression is true.
func Until(expr string) Action {
	p := chromedp.Poll[bool](expr, chromedp.WithPollingInterval(100*time.Millisecond))
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := p(ctx, t)
		return chromedp.Void{}, err
	}
}

// WaitText waits until the page shows text.
func WaitText(text string) Action {
	return Until(fmt.Sprintf(`!!document.body && document.body.innerText.includes(%s)`, jsString(text)))
}

// Visible waits for a CSS selector to be visible.
func Visible(css string) Action { return chromedp.WaitVisible(chromedp.CSS(css)) }

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// WaitHeading waits for the page's h1.
func WaitHeading(title string) Action {
	return chromedp.WaitVisible(chromedp.Search(xpText("h1", title)))
}

// Screenshot saves a full-page PNG as <name>.png in $PORTLAMA_SCREENSHOTS
// (make screenshots: docs/screenshots); without it the shot is taken and
// dropped.
func (b *Browser) Screenshot(name string) {
	b.t.Helper()
	// Let transitions settle (a visual artefact only, nothing asserted).
	b.Must("settle", chromedp.Sleep(300*time.Millisecond))
	buf := Get(b, "screenshot "+name, chromedp.FullScreenshot(100))
	if dir := os.Getenv("PORTLAMA_SCREENSHOTS"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
}

// Dark switches prefers-color-scheme.
func Dark(on bool) Action {
	v := "light"
	if on {
		v = "dark"
	}
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: v}}})
		return err
	})
}

// Phone emulates a phone-sized viewport (or back to the desktop size).
func Phone(on bool) Action {
	if on {
		return chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile)
	}
	return chromedp.EmulateViewport(1280, 860)
}

var axeSource = sync.OnceValues(func() (string, error) {
	p := filepath.Join("..", "..", "web", "node_modules", "axe-core", "axe.min.js")
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("read %s (run `make ui`, which installs the UI's node modules): %w", p, err)
	}
	return string(b), nil
})

type axeViolation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target []any  `json:"target"`
		HTML   string `json:"html"`
	} `json:"nodes"`
}

// Axe runs axe-core (from web/node_modules, injected into the page: nothing
// is fetched) and fails on serious or critical violations.
func (b *Browser) Axe(page string) {
	b.t.Helper()
	src, err := axeSource()
	if err != nil {
		b.t.Fatal(err)
	}
	Get(b, "inject axe-core", chromedp.Evaluate[int](src+";0"))
	out := Get(b, "axe on "+page, chromedp.Evaluate[[]axeViolation](`axe.run(document, {resultTypes: ["violations"], runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]}}).then(r => r.violations)`, chromedp.EvalAwaitPromise))
	var bad, minor []string
	for _, v := range out {
		if v.Impact != "serious" && v.Impact != "critical" {
			minor = append(minor, v.ID+" ("+v.Impact+")")
		}
		if v.Impact == "serious" || v.Impact == "critical" {
			var nodes []string
			for i, n := range v.Nodes {
				if i == 3 {
					break
				}
				nodes = append(nodes, fmt.Sprint(n.Target)+" "+n.HTML)
			}
			bad = append(bad, fmt.Sprintf("%s (%s): %s\n    %s", v.ID, v.Impact, v.Help, strings.Join(nodes, "\n    ")))
		}
	}
	b.t.Logf("axe-core on %s: %d violations, none serious or critical%s", page, len(out), strings.TrimSuffix(" ("+strings.Join(minor, ", ")+")", " ()"))
	if len(bad) > 0 {
		b.t.Errorf("accessibility (axe-core) on %s: %d serious/critical violations:\n%s", page, len(bad), strings.Join(bad, "\n"))
	}
}

// NoProblems fails on CSP violations or uncaught exceptions so far.
func (b *Browser) NoProblems(t *testing.T, where string) {
	t.Helper()
	for _, p := range b.Problems() {
		t.Errorf("%s: %s", where, p)
	}
}
