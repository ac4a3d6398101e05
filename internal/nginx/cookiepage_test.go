package nginx

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/portlama/portlama/internal/testutil"
)

// cookieJarJS runs the clean-up page's script in node against a model of a
// browser's cookie store (RFC 6265 domain and path matching, deletion by
// name, domain and path) and prints what is left and what the page did.
const cookieJarJS = `
const [href, jarJSON, lastRetry] = process.argv.slice(2);
const loc = new URL(href);
let jar = JSON.parse(jarJSON); // {name, value, domain (null: host-only), path, httpOnly}
const domainMatch = (c) => c.domain === null ? loc.hostname === "app.demo.localhost" :
  loc.hostname === c.domain || loc.hostname.endsWith("." + c.domain);
const pathMatch = (c) => loc.pathname === c.path || loc.pathname.startsWith(c.path.endsWith("/") ? c.path : c.path + "/");
const visible = () => jar.filter((c) => domainMatch(c) && pathMatch(c));
const elements = {};
let reloads = 0;
global.location = { hostname: loc.hostname, pathname: loc.pathname, port: loc.port, href: href, reload: () => { reloads++; } };
global.sessionStorage = { getItem: () => (lastRetry === "now" ? String(Date.now() - 1000) : lastRetry), setItem: () => {} };
global.document = {
  get cookie() { return visible().filter((c) => !c.httpOnly).map((c) => c.name + "=" + c.value).join("; "); },
  set cookie(s) {
    const parts = s.split(";").map((p) => p.trim());
    const name = parts[0].split("=")[0];
    let domain = null, path = "/", expire = false;
    for (const p of parts.slice(1)) {
      const [k, v] = p.split("=");
      if (k.toLowerCase() === "domain") { domain = v.replace(/^\./, ""); }
      if (k.toLowerCase() === "path") { path = v; }
      if (k.toLowerCase() === "max-age" && v === "0") { expire = true; }
    }
    if (domain !== null && !(loc.hostname === domain || loc.hostname.endsWith("." + domain))) { return; }
    if (domain === "localhost") { return; } // a public suffix
    if (expire) {
      jar = jar.filter((c) => !(c.name === name && c.path === path && !c.httpOnly &&
        (c.domain === domain || (c.domain === null && domain === null))));
    }
  },
  getElementById: (id) => (elements[id] = elements[id] || { hidden: true, href: "" }),
};
SCRIPT
console.log(JSON.stringify({ left: jar.map((c) => c.name + "@" + (c.domain || "host") + c.path), reloads,
  portal: elements["portal-link"] && elements["portal-link"].href, retry: elements["retry-link"] && elements["retry-link"].href }));
`

func TestCookieHelpPageRemovesVisibleCookies(t *testing.T) {
	node := testutil.NeedBinary(t, "node")
	script := regexp.MustCompile(`(?s)<script>(.*?)</script>`).FindStringSubmatch(cookieHelpHTML)[1]
	path := filepath.Join(t.TempDir(), "page.js")
	if err := os.WriteFile(path, []byte(regexp.MustCompile(`SCRIPT`).ReplaceAllLiteralString(cookieJarJS, script)), 0o644); err != nil {
		t.Fatal(err)
	}
	type ck struct {
		Name     string  `json:"name"`
		Value    string  `json:"value"`
		Domain   *string `json:"domain"`
		Path     string  `json:"path"`
		HTTPOnly bool    `json:"httpOnly"`
	}
	d := "demo.localhost"
	jar := []ck{
		{"big1", "x", &d, "/", false},
		{"big2", "x", &d, "/a", false},
		{"big3", "x", &d, "/a/b/", false},
		{"own", "x", nil, "/", false},
		{"own2", "x", nil, "/a", false},
		{"portlama_session", "s", &d, "/", true}, // HttpOnly: the portal's to remove
		{"elsewhere", "x", &d, "/z", false},      // not sent here, not this page's concern
	}
	jarJSON, _ := json.Marshal(jar)
	type result struct {
		Left    []string
		Reloads int
		Portal  string
		Retry   string
	}
	runAt := func(href, lastRetry string) (out result) {
		t.Helper()
		b, err := exec.Command(node, path, href, string(jarJSON), lastRetry).CombinedOutput()
		if err != nil {
			t.Fatalf("node: %v\n%s", err, b)
		}
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("node output %q: %v", b, err)
		}
		return out
	}
	run := func(lastRetry string) result { return runAt("https://app.demo.localhost:8443/a/b/c?x=1", lastRetry) }
	out := run("0")
	want := map[string]bool{"portlama_session@demo.localhost/": true, "elsewhere@demo.localhost/z": true}
	if len(out.Left) != len(want) {
		t.Errorf("cookies left: %q, want only %v", out.Left, want)
	}
	for _, c := range out.Left {
		if !want[c] {
			t.Errorf("cookie %s not removed", c)
		}
	}
	if out.Reloads != 1 {
		t.Errorf("%d reloads after removing cookies, want 1", out.Reloads)
	}
	if out.Portal != "https://auth.demo.localhost:8443/?rd=https%3A%2F%2Fapp.demo.localhost%3A8443%2Fa%2Fb%2Fc%3Fx%3D1" {
		t.Errorf("portal link %q", out.Portal)
	}
	// A retry less than a minute ago: no automatic reload (no loop).
	if out := run("now"); out.Reloads != 0 {
		t.Errorf("%d reloads right after a retry, want 0", out.Reloads)
	}
	// The panel by IP address: host-only cookies, no sign-in link.
	if out := runAt("https://203.0.113.5:9292/a/b", "0"); out.Portal != "" {
		t.Errorf("portal link on an IP address: %q", out.Portal)
	}
}
