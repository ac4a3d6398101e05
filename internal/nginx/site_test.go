package nginx

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/portlama/portlama/internal/auth"
	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/validate"
)

const testSiteID = "1b4e28ba-2fa1-4d2e-883f-0016d3cca427"

// writeSite installs the site vhost for <sub>.<d> and the given files
// below its root.
func (rl *relay) writeSite(t *testing.T, sub string, spa, protected bool, files map[string][]byte) string {
	t.Helper()
	root := SiteRoot(rl.layout, testSiteID)
	for name, data := range files {
		writeFile(t, filepath.Join(root, filepath.FromSlash(name)), data, 0o644)
	}
	v, err := rl.r.Site(SiteParams{ID: testSiteID, FQDN: sub + "." + testDomain, SPA: spa, Protected: protected, TLS: rl.tls()})
	if err != nil {
		t.Fatal(err)
	}
	if err := rl.mgr.Apply(ctxT(t), v); err != nil {
		t.Fatal(err)
	}
	return root
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// The security headers every site answer carries (docs/security.md).
var siteHeaders = map[string]string{
	"Strict-Transport-Security": "max-age=31536000",
	"X-Content-Type-Options":    "nosniff",
	"X-Frame-Options":           "SAMEORIGIN",
	"Content-Security-Policy":   "frame-ancestors 'self'; object-src 'none'; base-uri 'self'",
	"Referrer-Policy":           "strict-origin-when-cross-origin",
}

func TestSiteServesFilesWithTypesAndCaching(t *testing.T) {
	rl := startRelay(t, nil)
	logo := randomBytes(t, 5000)
	css := []byte(strings.Repeat("body { color: #123456; }\n", 100))
	files := map[string][]byte{
		"index.html":                []byte("<h1>home</h1>"),
		"docs/index.html":           []byte("<h1>docs</h1>"),
		"empty/.keep.txt":           []byte("hidden"),
		"img/logo.png":              logo,
		"style.css":                 css,
		"assets/app.3f9a2b1c.js":    []byte("console.log(1)"),
		"assets/index-d41d8cd9.css": []byte("a{}"),
		".env":                      []byte("SECRET=1"),
		".git/config":               []byte("[core]"),
	}
	// One file of every allowed extension, to check its Content-Type.
	for _, ext := range validate.SiteFileExtensions() {
		files["types/f."+ext] = []byte("x")
	}
	rl.writeSite(t, "blog", false, false, files)
	c := rl.client(rl.addrs.HTTPSPort, nil)
	url := func(p string) string { return rl.appURL("blog", p) }

	for _, ext := range validate.SiteFileExtensions() {
		want, _ := validate.SiteFileType(ext)
		resp, _ := get(t, c, url("/types/f."+ext), nil)
		got := resp.Header.Get("Content-Type")
		if resp.StatusCode != 200 || (got != want && got != want+"; charset=utf-8") {
			t.Errorf(".%s: %d %q, want %q", ext, resp.StatusCode, got, want)
		}
	}

	for _, tc := range []struct {
		path, status, body, typ, cache string
	}{
		{"/", "200", "<h1>home</h1>", "text/html; charset=utf-8", "no-cache"},
		{"/index.html", "200", "<h1>home</h1>", "text/html; charset=utf-8", "no-cache"},
		{"/docs/", "200", "<h1>docs</h1>", "text/html; charset=utf-8", "no-cache"},
		{"/style.css", "200", string(css), "text/css", "no-cache"},
		{"/assets/app.3f9a2b1c.js", "200", "console.log(1)", "application/javascript; charset=utf-8", "public, max-age=31536000, immutable"},
		{"/assets/index-d41d8cd9.css", "200", "a{}", "text/css", "public, max-age=31536000, immutable"},
		{"/img/logo.png", "200", string(logo), "image/png", "no-cache"},
		{"/missing", "404", "", "", ""},
		{"/missing.js", "404", "", "", ""},
		{"/empty/", "404", "", "", ""}, // no listing
		{"/img/", "404", "", "", ""},
		{"/.env", "404", "", "", ""},
		{"/.git/config", "404", "", "", ""},
		{"/empty/.keep.txt", "404", "", "", ""},
		{"/%2e%2e/%2e%2e/etc/passwd", "400", "", "", ""},
	} {
		resp, body := get(t, c, url(tc.path), nil)
		if strconv.Itoa(resp.StatusCode) != tc.status {
			t.Errorf("%s: %d, want %s", tc.path, resp.StatusCode, tc.status)
			continue
		}
		if tc.status != "200" {
			if strings.Contains(body, "SECRET") || strings.Contains(body, "hidden") || strings.Contains(body, "Index of") {
				t.Errorf("%s leaked %q", tc.path, body)
			}
			continue
		}
		if body != tc.body || resp.Header.Get("Content-Type") != tc.typ || resp.Header.Get("Cache-Control") != tc.cache {
			t.Errorf("%s: %q %q cache %q", tc.path, body[:min(len(body), 40)], resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"))
		}
		for k, v := range siteHeaders {
			if resp.Header.Get(k) != v {
				t.Errorf("%s: %s = %q, want %q", tc.path, k, resp.Header.Get(k), v)
			}
		}
		if resp.Header.Get("Set-Cookie") != "" {
			t.Errorf("%s sets a cookie", tc.path)
		}
	}
	// A directory without its slash is redirected to it.
	resp, _ := get(t, c, url("/docs"), nil)
	if resp.StatusCode != 301 || !strings.HasSuffix(resp.Header.Get("Location"), "/docs/") {
		t.Errorf("/docs: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Revalidation and compression.
	resp, _ = get(t, c, url("/style.css"), nil)
	etag := resp.Header.Get("ETag")
	resp, _ = get(t, c, url("/style.css"), map[string]string{"If-None-Match": etag})
	if etag == "" || resp.StatusCode != 304 {
		t.Errorf("revalidation with ETag %q: %d", etag, resp.StatusCode)
	}
	tr := &http.Transport{DisableCompression: true, TLSClientConfig: rl.tlsConfig(nil), DialContext: c.Transport.(*http.Transport).DialContext}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("GET", url("/style.css"), nil)
	req.Header.Set("Accept-Encoding", "gzip")
	gz, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(gz.Body)
	if err != nil || gz.Header.Get("Content-Encoding") != "gzip" || gz.Header.Get("Vary") != "Accept-Encoding" {
		t.Fatalf("gzip: %v %v", err, gz.Header)
	}
	plain, _ := io.ReadAll(zr)
	gz.Body.Close()
	if !bytes.Equal(plain, css) {
		t.Errorf("gzip body differs")
	}
	// Nothing but reading.
	resp, _ = do(t, c, request(t, "POST", url("/index.html"), ""))
	if resp.StatusCode != 405 {
		t.Errorf("POST: %d", resp.StatusCode)
	}
}

func TestSiteSPAMode(t *testing.T) {
	rl := startRelay(t, nil)
	rl.writeSite(t, "app", true, false, map[string][]byte{
		"index.html":      []byte("<div id=app></div>"),
		"assets/a.js":     []byte("1"),
		"docs/index.html": []byte("docs"),
	})
	c := rl.client(rl.addrs.HTTPSPort, nil)
	for _, tc := range []struct{ path, status, body string }{
		{"/", "200", "<div id=app></div>"},
		{"/users/42/edit", "200", "<div id=app></div>"},
		{"/users/john.doe", "200", "<div id=app></div>"}, // not an extension sites have
		{"/empty/", "200", "<div id=app></div>"},
		{"/docs/", "200", "docs"},
		{"/assets/a.js", "200", "1"},
		{"/assets/missing.js", "404", ""},
		{"/missing.png", "404", ""},
		{"/missing.html", "404", ""},
		{"/.env", "404", ""},
	} {
		resp, body := get(t, c, rl.appURL("app", tc.path), nil)
		if strconv.Itoa(resp.StatusCode) != tc.status || (tc.status == "200" && body != tc.body) {
			t.Errorf("%s: %d %q, want %s %q", tc.path, resp.StatusCode, body, tc.status, tc.body)
		}
		if tc.status == "200" && resp.Header.Get("Cache-Control") != "no-cache" && tc.path != "/assets/a.js" {
			t.Errorf("%s: Cache-Control %q", tc.path, resp.Header.Get("Cache-Control"))
		}
	}
}

// A protected site uses the apps' forward authentication with the real
// auth server; its content never sees or sets the login session, and the
// cookie clean-up page of every public server answers on it.
func TestProtectedSite(t *testing.T) {
	a := startAuthStack(t, relayOpts{})
	a.addUser(t, "alice")
	a.addUser(t, "bob")
	a.hosts = append(a.hosts, "docs."+testDomain)
	if err := auth.WriteAccessRules(a.dir, auth.AccessRules{Hosts: a.hosts, Rules: []auth.AccessRule{{Host: "docs." + testDomain, Users: []string{"alice"}}}}); err != nil {
		t.Fatal(err)
	}
	if err := a.manage.Reload(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	a.writeSite(t, "docs", false, true, map[string][]byte{"index.html": []byte("private docs"), "a/b.css": []byte("x{}")})
	c := a.client(a.addrs.HTTPSPort, nil)

	resp, body := do(t, c, request(t, "GET", a.appURL("docs", "/a/b.css?x=1"), ""))
	loc := resp.Header.Get("Location")
	if resp.StatusCode != 302 || !strings.HasPrefix(loc, a.portal+"/?rd=") || !strings.Contains(loc, "docs."+testDomain) || strings.Contains(body, "x{}") {
		t.Fatalf("no session: %d %q %q", resp.StatusCode, loc, body)
	}
	alice := auth.SessionCookieName + "=" + a.login(t, "alice")
	resp, body = do(t, c, request(t, "GET", a.appURL("docs", "/"), alice))
	if resp.StatusCode != 200 || body != "private docs" || resp.Header.Get("Cache-Control") != "private, no-cache" {
		t.Fatalf("alice: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	resp, _ = do(t, c, request(t, "GET", a.appURL("docs", "/a/b.css"), alice))
	if resp.StatusCode != 200 || resp.Header.Get("Set-Cookie") != "" {
		t.Fatalf("alice, file: %d %v", resp.StatusCode, resp.Header)
	}
	bob := auth.SessionCookieName + "=" + a.login(t, "bob")
	resp, body = do(t, c, request(t, "GET", a.appURL("docs", "/"), bob))
	if resp.StatusCode != 403 || strings.Contains(body, "private docs") {
		t.Fatalf("bob: %d %q", resp.StatusCode, body)
	}
	// Too many cookies (which script on any site can set on <d>): the
	// clean-up page, as on every public server.
	var big []string
	for i := 0; i < 6; i++ {
		big = append(big, fmt.Sprintf("big%d=%s", i, strings.Repeat("x", 4000)))
	}
	resp, body = do(t, c, request(t, "GET", a.appURL("docs", "/"), strings.Join(big, "; ")+"; "+alice))
	if resp.StatusCode != 431 || !strings.Contains(body, "document.cookie") {
		t.Fatalf("oversized cookies: %d %.100q", resp.StatusCode, body)
	}
}

// Only validated values reach the site vhost.
func TestSiteRenderRefusesBadParams(t *testing.T) {
	r, err := NewRenderer(config.DirLayout("/srv/portlama"), config.DefaultAddrs())
	if err != nil {
		t.Fatal(err)
	}
	tls := TLSFiles{Cert: "/srv/portlama/certs/x/fullchain.pem", Key: "/srv/portlama/certs/x/privkey.pem"}
	for _, p := range []SiteParams{
		{ID: "../../etc", FQDN: "blog.example.com", TLS: tls},
		{ID: strings.ToUpper(testSiteID), FQDN: "blog.example.com", TLS: tls},
		{ID: testSiteID, FQDN: "blog.example.com; include /etc/shadow", TLS: tls},
		{ID: testSiteID, FQDN: "Blog.example.com", TLS: tls},
		{ID: testSiteID, FQDN: "blog.example.com", TLS: TLSFiles{Cert: "relative.pem", Key: tls.Key}},
	} {
		if _, err := r.Site(p); err == nil {
			t.Errorf("Site(%+v) rendered", p)
		}
	}
	v, err := r.Site(SiteParams{ID: testSiteID, FQDN: "blog.example.com", TLS: tls})
	if err != nil || v.Name != "portlama-site-"+testSiteID || !strings.Contains(string(v.Content), "root /srv/portlama/www/"+testSiteID+";") {
		t.Fatalf("%v %s", err, v.Content)
	}
}
