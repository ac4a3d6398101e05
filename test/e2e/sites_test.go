package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/auth"
	"github.com/portlama/portlama/internal/nginx"
	"github.com/portlama/portlama/internal/panelclient"
	"github.com/portlama/portlama/internal/sites/deploy"
)

var bg = context.Background()

func createSite(t *testing.T, pc *panelclient.Client, r api.CreateSiteRequest) api.Site {
	t.Helper()
	res, err := pc.CreateSite(bg, r)
	if err != nil {
		t.Fatalf("create site %+v: %v", r, err)
	}
	return res.Site
}

// fileOf is an upload of content at p.
func fileOf(p string, content []byte) panelclient.UploadFile {
	return panelclient.UploadFile{Path: p, Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(content)), nil }}
}

func wantAPIError(t *testing.T, err error, status int, msg string) {
	t.Helper()
	if !errors.Is(err, &api.Error{Status: status, Message: msg}) {
		t.Fatalf("error %v, want %d %q", err, status, msg)
	}
}

func random(t *testing.T, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func (st *siteStack) vhostFile(id string) string {
	return filepath.Join(st.relay.Layout.NginxSitesAvailable(), nginx.SiteVhostName(id))
}

func (st *siteStack) rules() auth.AccessRules {
	st.t.Helper()
	data, err := os.ReadFile(auth.RulesFilePath(st.relay.Layout.AuthDir()))
	if err != nil {
		st.t.Fatal(err)
	}
	r, err := auth.ParseAccessRules(data)
	if err != nil {
		st.t.Fatal(err)
	}
	return r
}

// A managed site: upload, fetch through nginx byte-exact with the right
// Content-Type, SPA mode on (the vhost is rewritten), then DELETE removes
// vhost, root and host.
func TestManagedSiteThroughNginx(t *testing.T) {
	st := startSites(t, false)
	site := createSite(t, st.admin, api.CreateSiteRequest{Name: "blog", Type: api.SiteManaged})
	if site.FQDN != "blog."+siteDomain || !site.CertIssued || site.Type != api.SiteManaged {
		t.Fatalf("site %+v", site)
	}
	v := st.client(nil)
	resp, body := get(t, v, st.siteURL(site.FQDN, "/"))
	if resp.StatusCode != 200 || !strings.Contains(body, "<title>blog</title>") {
		t.Fatalf("generated index: %d %q", resp.StatusCode, body)
	}
	png, wasm := random(t, 70000), random(t, 3000)
	files := map[string]struct {
		data []byte
		typ  string
	}{
		"index.html":             {[]byte("<h1>Hello</h1>"), "text/html; charset=utf-8"},
		"assets/app.5f3e9a1b.js": {[]byte("export const x = 1;"), "application/javascript; charset=utf-8"},
		"assets/css/site.css":    {[]byte("body{margin:0}"), "text/css"},
		"assets/img/photo.png":   {png, "image/png"},
		"lib/module.wasm":        {wasm, "application/wasm"},
		"docs/guide/index.html":  {[]byte("<h1>Guide</h1>"), "text/html; charset=utf-8"},
		"site.webmanifest":       {[]byte(`{"name":"blog"}`), "application/manifest+json"},
	}
	var up []panelclient.UploadFile
	for p, f := range files {
		up = append(up, fileOf(p, f.data))
	}
	res, err := st.admin.UploadSiteFiles(bg, site.ID, ".", up, nil)
	if err != nil || len(res.Files) != len(files) {
		t.Fatalf("upload %+v %v", res, err)
	}
	for p, f := range files {
		resp, body := get(t, v, st.siteURL(site.FQDN, "/"+p))
		if resp.StatusCode != 200 || body != string(f.data) || resp.Header.Get("Content-Type") != f.typ {
			t.Errorf("/%s: %d, %d bytes (want %d), %q (want %q)", p, resp.StatusCode, len(body), len(f.data), resp.Header.Get("Content-Type"), f.typ)
		}
	}
	list, err := st.admin.SiteFiles(bg, site.ID, "assets", false)
	if err != nil || len(list.Files) != 3 || list.Files[0].Name != "css" || list.Files[2].Name != "app.5f3e9a1b.js" {
		t.Fatalf("files %+v %v", list, err)
	}
	if got, _ := st.admin.ListSites(bg); len(got) != 1 || got[0].TotalSize < int64(len(png)+len(wasm)) {
		t.Fatalf("totalSize %+v", got)
	}

	// Without SPA mode an unknown path is 404; with it, index.html.
	if resp, _ := get(t, v, st.siteURL(site.FQDN, "/app/route")); resp.StatusCode != 404 {
		t.Fatalf("unknown path without SPA mode: %d", resp.StatusCode)
	}
	before, _ := os.ReadFile(st.vhostFile(site.ID))
	on := true
	if r, err := st.admin.UpdateSite(bg, site.ID, api.UpdateSiteRequest{SPAMode: &on}); err != nil || !r.Site.SPAMode || r.Message != "" {
		t.Fatalf("SPA on: %+v %v", r, err)
	}
	after, _ := os.ReadFile(st.vhostFile(site.ID))
	if bytes.Equal(before, after) || !bytes.Contains(after, []byte("try_files $uri $uri/ /index.html;")) {
		t.Fatalf("the vhost was not rewritten for SPA mode:\n%s", after)
	}
	resp, body = get(t, v, st.siteURL(site.FQDN, "/app/route/42"))
	if resp.StatusCode != 200 || body != "<h1>Hello</h1>" {
		t.Fatalf("SPA route: %d %q", resp.StatusCode, body)
	}
	if resp, _ := get(t, v, st.siteURL(site.FQDN, "/assets/missing.js")); resp.StatusCode != 404 {
		t.Fatalf("missing asset in SPA mode: %d", resp.StatusCode)
	}
	if r, err := st.admin.UpdateSite(bg, site.ID, api.UpdateSiteRequest{SPAMode: &on}); err != nil || r.Message != "No changes" {
		t.Fatalf("unchanged PATCH: %+v %v", r, err)
	}
	if !slices.Contains(st.rules().Hosts, site.FQDN) {
		t.Fatalf("the site is no post-login redirect target: %+v", st.rules())
	}

	// DELETE: vhost, root, host.
	if _, err := st.admin.DeleteSite(bg, site.ID); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{st.vhostFile(site.ID), filepath.Join(st.relay.Layout.NginxSitesEnabled(), nginx.SiteVhostName(site.ID)), site.RootPath} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still exists after DELETE: %v", p, err)
		}
	}
	if slices.Contains(st.rules().Hosts, site.FQDN) {
		t.Errorf("host still a redirect target: %+v", st.rules())
	}
	if _, err := v.Get(st.siteURL(site.FQDN, "/")); err == nil {
		t.Errorf("the deleted site still answers")
	}
	_, err = st.admin.DeleteSite(bg, site.ID)
	wantAPIError(t, err, 404, "Site not found")
}

// rawUpload posts a multipart body whose part has the given
// Content-Disposition (any file name, unlike mime/multipart's writer).
func (st *siteStack) rawUpload(t *testing.T, id, dir, cd string, content []byte) (int, string) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	pw, _ := w.CreatePart(map[string][]string{"Content-Disposition": {cd}})
	pw.Write(content)
	w.Close()
	u := st.panelURL() + "/api/sites/" + id + "/files"
	if dir != "" {
		u += "?path=" + urlQuery(dir)
	}
	req, _ := http.NewRequest("POST", u, &b)
	req.Header.Set("Content-Type", w.FormDataContentType())
	resp, err := st.client(&st.adminCert).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

func urlQuery(s string) string {
	r := strings.NewReplacer("%", "%25", "&", "%26", "#", "%23", "+", "%2B", " ", "%20", "\x00", "%00", "?", "%3F")
	return r.Replace(s)
}

// Every file rule answers 400 through the API, and nothing is written
// outside the site root (the disk is checked).
func TestSiteFileRulesThroughTheAPI(t *testing.T) {
	st := startSites(t, false)
	site := createSite(t, st.admin, api.CreateSiteRequest{Name: "blog", Type: api.SiteManaged})
	marker := []byte("PWNED-by-a-refused-upload")
	fn := func(name string) string { return `form-data; name="file"; filename="` + name + `"` }
	for _, tc := range []struct {
		dir, cd, msg string
	}{
		{"", fn("../../../evil.html"), "Upload failed: Path traversal is not allowed"},
		{"", fn(`..\\..\\evil.html`), "Upload failed: Path traversal is not allowed"},
		{"", `form-data; name="file"; filename*=UTF-8''%2e%2e%2f%2e%2e%2fevil.html`, "Upload failed: Path traversal is not allowed"},
		{"", fn("/tmp/evil.html"), "Upload failed: Absolute paths are not allowed"},
		{"", `form-data; name="file"; filename*=UTF-8''evil%00.html`, "Upload failed: Path contains null bytes"},
		{"", fn(".evil.html"), "Upload failed: Hidden files/directories are not allowed"},
		{"", fn("a/.git/evil.txt"), "Upload failed: Hidden files/directories are not allowed"},
		{"", fn("evil.php"), "Upload failed: File 'evil.php' has disallowed extension '.php'"},
		{"", fn("Makefile"), "Upload failed: File 'Makefile' has no extension and is not allowed"},
		{"../..", fn("evil.html"), "Path traversal is not allowed"},
		{"/tmp", fn("evil.html"), "Absolute paths are not allowed"},
		{"a\x00b", fn("evil.html"), "Path contains null bytes"},
		{".hidden", fn("evil.html"), "Hidden files/directories are not allowed"},
	} {
		code, body := st.rawUpload(t, site.ID, tc.dir, tc.cd, marker)
		var e api.Error
		json.Unmarshal([]byte(body), &e)
		if code != 400 || e.Message != tc.msg {
			t.Errorf("dir %q part %q: %d %s, want 400 %q", tc.dir, tc.cd, code, body, tc.msg)
		}
	}
	// Listing and deleting apply the same rules.
	for _, p := range []string{"../", "/etc", ".git", "a\x00"} {
		_, err := st.admin.SiteFiles(bg, site.ID, p, false)
		if !errors.Is(err, &api.Error{Status: 400}) {
			t.Errorf("list %q: %v", p, err)
		}
	}
	for p, msg := range map[string]string{".": "Path traversal detected", "..": "Path traversal is not allowed", "/etc/passwd": "Absolute paths are not allowed", ".env": "Hidden files/directories are not allowed"} {
		wantAPIError(t, st.admin.DeleteSiteFile(bg, site.ID, p), 400, msg)
	}
	if _, err := os.Stat(filepath.Join(site.RootPath, "index.html")); err != nil {
		t.Fatal("a refused delete removed index.html")
	}
	// The disk: the marker is nowhere below the relay's directory, nothing
	// new beside it, and the root holds only its index.html.
	filepath.WalkDir(st.dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if strings.HasPrefix(d.Name(), "evil") {
				t.Errorf("refused upload created %s", p)
			}
			if data, err := os.ReadFile(p); err == nil && bytes.Contains(data, marker) {
				t.Errorf("refused upload wrote %s", p)
			}
		}
		return nil
	})
	beside, _ := os.ReadDir(filepath.Dir(st.dir))
	for _, e := range beside {
		if strings.HasPrefix(e.Name(), "evil") {
			t.Errorf("refused upload created %s beside the relay", e.Name())
		}
	}
	entries, _ := os.ReadDir(site.RootPath)
	if len(entries) != 1 || entries[0].Name() != "index.html" {
		t.Fatalf("site root holds %v", entries)
	}
}

// Login protection through the auth server's access rules, in force when
// the API answers.
func TestProtectedSiteLogin(t *testing.T) {
	st := startSites(t, false)
	alice, bob, carol := st.addUser("alice"), st.addUser("bob"), st.addUser("carol", "admins")
	site := createSite(t, st.admin, api.CreateSiteRequest{Name: "docs", Type: api.SiteManaged, AutheliaProtected: true})
	if _, err := st.admin.UploadSiteFiles(bg, site.ID, ".", []panelclient.UploadFile{fileOf("index.html", []byte("private docs"))}, nil); err != nil {
		t.Fatal(err)
	}
	v := st.client(nil)
	u := st.siteURL(site.FQDN, "/index.html")
	resp, body := getWith(t, v, u, nil, nil)
	if loc := resp.Header.Get("Location"); resp.StatusCode != 302 || !strings.HasPrefix(loc, st.relay.Addrs.HostURL("auth", siteDomain)+"/?rd=") || strings.Contains(body, "private") {
		t.Fatalf("no session: %d %q", resp.StatusCode, loc)
	}
	for name, ck := range map[string]*http.Cookie{"alice": alice, "bob": bob} {
		if resp, body := getWith(t, v, u, ck, nil); resp.StatusCode != 200 || body != "private docs" {
			t.Fatalf("%s, no allowedUsers: %d %q", name, resp.StatusCode, body)
		}
	}
	users := []string{"alice"}
	r, err := st.admin.UpdateSite(bg, site.ID, api.UpdateSiteRequest{AllowedUsers: &users})
	if err != nil || r.Warning != "" || !slices.Equal(r.Site.AllowedUsers, users) {
		t.Fatalf("allowedUsers: %+v %v", r, err)
	}
	// No waiting: the auth server confirmed the rules before the answer.
	if resp, body := getWith(t, v, u, bob, nil); resp.StatusCode != 403 || strings.Contains(body, "private") {
		t.Fatalf("bob, not allowed: %d %q", resp.StatusCode, body)
	}
	for name, ck := range map[string]*http.Cookie{"alice": alice, "carol (admins)": carol} {
		if resp, body := getWith(t, v, u, ck, nil); resp.StatusCode != 200 || body != "private docs" {
			t.Fatalf("%s: %d %q", name, resp.StatusCode, body)
		}
	}
	rules := st.rules()
	if len(rules.Rules) != 1 || rules.Rules[0].Host != site.FQDN || !slices.Equal(rules.Rules[0].Users, users) || !slices.Equal(rules.Rules[0].Groups, []string{"admins"}) {
		t.Fatalf("access rules %+v", rules)
	}
	// Protection off: anyone.
	on, off := true, false
	if _, err := st.admin.UpdateSite(bg, site.ID, api.UpdateSiteRequest{AutheliaProtected: &off}); err != nil {
		t.Fatal(err)
	}
	if resp, body := getWith(t, v, u, nil, nil); resp.StatusCode != 200 || body != "private docs" {
		t.Fatalf("unprotected: %d %q", resp.StatusCode, body)
	}
	if rules := st.rules(); len(rules.Rules) != 0 {
		t.Fatalf("rule kept for an unprotected site: %+v", rules)
	}
	// DELETE removes the access rule and the host.
	if _, err := st.admin.UpdateSite(bg, site.ID, api.UpdateSiteRequest{AutheliaProtected: &on}); err != nil {
		t.Fatal(err)
	}
	if rules := st.rules(); len(rules.Rules) != 1 {
		t.Fatalf("no rule for the protected site: %+v", rules)
	}
	if _, err := st.admin.DeleteSite(bg, site.ID); err != nil {
		t.Fatal(err)
	}
	if rules := st.rules(); len(rules.Rules) != 0 || slices.Contains(rules.Hosts, site.FQDN) {
		t.Fatalf("rules after DELETE: %+v", rules)
	}
	// Without the auth server the change is saved, and the answer says it
	// is not confirmed.
	st.stopAuth()
	other := createSite(t, st.admin, api.CreateSiteRequest{Name: "notes", Type: api.SiteManaged, AutheliaProtected: true})
	r, err = st.admin.UpdateSite(bg, other.ID, api.UpdateSiteRequest{AllowedUsers: &users})
	if err != nil || r.Warning == "" || !strings.Contains(r.Warning, "not confirmed") {
		t.Fatalf("unconfirmed change: %+v %v", r, err)
	}
	if rules := st.rules(); len(rules.Rules) != 1 || rules.Rules[0].Host != other.FQDN {
		t.Fatalf("unconfirmed rules not saved: %+v", rules)
	}
}

// Agents reach only the sites in their allowedSites; one that may deploys
// with the CLI, and a second deploy uploads nothing.
func TestSiteAgentsAndDeploy(t *testing.T) {
	st := startSites(t, false)
	blog := createSite(t, st.admin, api.CreateSiteRequest{Name: "blog", Type: api.SiteManaged, SPAMode: true})
	shop := createSite(t, st.admin, api.CreateSiteRequest{Name: "shop", Type: api.SiteManaged})

	outsider := st.panelClient(ptr(st.agentCert("outsider", []string{api.CapTunnelsRead, api.CapSitesRead, api.CapSitesWrite}, []string{"shop"})))
	if list, err := outsider.ListSites(bg); err != nil || len(list) != 1 || list[0].ID != shop.ID {
		t.Fatalf("outsider sees %+v %v", list, err)
	}
	_, err := outsider.SiteFiles(bg, blog.ID, "", false)
	wantAPIError(t, err, 403, "You do not have access to this site")
	_, err = outsider.UploadSiteFiles(bg, blog.ID, ".", []panelclient.UploadFile{fileOf("index.html", []byte("defaced"))}, nil)
	wantAPIError(t, err, 403, "You do not have access to this site")
	wantAPIError(t, outsider.DeleteSiteFile(bg, blog.ID, "index.html"), 403, "You do not have access to this site")
	_, err = outsider.CreateSite(bg, api.CreateSiteRequest{Name: "mine", Type: api.SiteManaged})
	wantAPIError(t, err, 403, "Insufficient certificate scope")
	reader := st.panelClient(ptr(st.agentCert("reader", []string{api.CapTunnelsRead, api.CapSitesRead}, []string{"blog"})))
	_, err = reader.UploadSiteFiles(bg, blog.ID, ".", []panelclient.UploadFile{fileOf("index.html", []byte("defaced"))}, nil)
	wantAPIError(t, err, 403, "Insufficient certificate capability")
	if resp, body := get(t, st.client(nil), st.siteURL(blog.FQDN, "/")); resp.StatusCode != 200 || strings.Contains(body, "defaced") {
		t.Fatalf("refused agents changed the site: %q", body)
	}

	home := st.enrollAgent("builder", []string{api.CapTunnelsRead, api.CapSitesRead, api.CapSitesWrite}, []string{"blog"})
	out, err := st.agentCLI(home, "sites", "list")
	if err != nil || !strings.Contains(out, "blog") || strings.Contains(out, "shop") {
		t.Fatalf("sites list: %v\n%s", err, out)
	}
	build := t.TempDir()
	site := map[string][]byte{
		"index.html":             []byte("<div id=app></div>"),
		"assets/app.1a2b3c4d.js": random(t, 200000),
		"assets/app.css":         []byte("#app{}"),
		"img/logo.svg":           []byte("<svg xmlns='http://www.w3.org/2000/svg'/>"),
		"old/page.html":          []byte("old"),
		".DS_Store":              []byte("junk"),
		"notes/TODO":             []byte("no extension"),
	}
	for p, data := range site {
		writeTestFile(t, filepath.Join(build, filepath.FromSlash(p)), data, 0o644)
	}
	evs := st.deploy(home, "blog", build)
	plan, done := eventOf(evs, "plan"), evs[len(evs)-1]
	if plan.Kind != "plan" || plan.Upload != 5 || done.Kind != "done" || done.Upload != 5 || done.Skipped != 2 {
		t.Fatalf("first deploy: plan %+v done %+v", plan, done)
	}
	for p, data := range site {
		resp, body := get(t, st.client(nil), st.siteURL(blog.FQDN, "/"+p))
		if p == ".DS_Store" || p == "notes/TODO" {
			if resp.StatusCode == 200 && body == string(data) {
				t.Errorf("%s was uploaded", p)
			}
			continue
		}
		if resp.StatusCode != 200 || body != string(data) {
			t.Errorf("/%s after deploy: %d, %d bytes", p, resp.StatusCode, len(body))
		}
	}
	before, _ := os.Stat(filepath.Join(blog.RootPath, "assets/app.1a2b3c4d.js"))
	evs = st.deploy(home, "blog", build)
	if done := evs[len(evs)-1]; done.Upload != 0 || done.Unchanged != 5 || slices.ContainsFunc(evs, func(e deploy.Event) bool { return e.Kind == "upload" }) {
		t.Fatalf("second deploy uploaded: %+v", evs)
	}
	if after, _ := os.Stat(filepath.Join(blog.RootPath, "assets/app.1a2b3c4d.js")); !after.ModTime().Equal(before.ModTime()) {
		t.Fatal("the second deploy rewrote an unchanged file")
	}
	// A change and a removal: one upload, --delete removes the directory.
	writeTestFile(t, filepath.Join(build, "assets/app.css"), []byte("#app{color:red}"), 0o644)
	os.RemoveAll(filepath.Join(build, "old"))
	evs = st.deploy(home, "blog", build, "--delete")
	if done := evs[len(evs)-1]; done.Upload != 1 || done.Delete != 1 || done.Unchanged != 3 {
		t.Fatalf("third deploy: %+v", evs)
	}
	if _, err := os.Stat(filepath.Join(blog.RootPath, "old")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("old/ not deleted: %v", err)
	}
	if _, body := get(t, st.client(nil), st.siteURL(blog.FQDN, "/assets/app.css")); body != "#app{color:red}" {
		t.Fatalf("changed file: %q", body)
	}
	out, err = st.agentCLI(home, "sites", "files", "blog", "assets")
	if err != nil || !strings.Contains(out, "assets/app.css") || !strings.Contains(out, "assets/app.1a2b3c4d.js") {
		t.Fatalf("sites files: %v\n%s", err, out)
	}
	// The deploy of a site outside allowedSites fails before uploading.
	out, err = st.agentCLI(home, "sites", "deploy", "shop", build)
	if err == nil || !strings.Contains(out, `no site "shop"`) {
		t.Fatalf("deploy to shop: %v\n%s", err, out)
	}
}

func ptr[T any](v T) *T { return &v }

func eventOf(evs []deploy.Event, kind string) deploy.Event {
	for _, e := range evs {
		if e.Kind == kind {
			return e
		}
	}
	return deploy.Event{}
}

// deploy runs `portlama-agent sites deploy --json` and returns its events.
func (st *siteStack) deploy(home, site, dir string, flags ...string) []deploy.Event {
	st.t.Helper()
	out, err := st.agentCLI(home, append([]string{"sites", "deploy", site, dir, "--json"}, flags...)...)
	if err != nil {
		st.t.Fatalf("sites deploy: %v\n%s", err, out)
	}
	var evs []deploy.Event
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var e deploy.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			st.t.Fatalf("not a JSON event: %q", sc.Text())
		}
		evs = append(evs, e)
	}
	if len(evs) < 2 {
		st.t.Fatalf("deploy events: %q", out)
	}
	return evs
}

// Tunnels and sites share one name space, both ways.
func TestSiteAndTunnelNamesClash(t *testing.T) {
	st := startSites(t, false)
	st.agentCert("home", []string{api.CapTunnelsRead, api.CapTunnelsWrite}, nil)
	if _, err := st.admin.CreateTunnel(bg, api.CreateTunnelRequest{Subdomain: "app", Port: 8080}); err != nil {
		t.Fatal(err)
	}
	_, err := st.admin.CreateSite(bg, api.CreateSiteRequest{Name: "app", Type: api.SiteManaged})
	wantAPIError(t, err, 400, "Name 'app' is already in use by a tunnel")
	_, err = st.admin.CreateSite(bg, api.CreateSiteRequest{Name: "other", Type: api.SiteCustom, CustomDomain: "app." + siteDomain})
	wantAPIError(t, err, 400, "Domain 'app.sites.localhost' is already in use by a tunnel")
	createSite(t, st.admin, api.CreateSiteRequest{Name: "blog", Type: api.SiteManaged})
	_, err = st.admin.CreateTunnel(bg, api.CreateTunnelRequest{Subdomain: "blog", Port: 8081})
	wantAPIError(t, err, 400, "Subdomain 'blog' is already in use")
	createSite(t, st.admin, api.CreateSiteRequest{Name: "shop", Type: api.SiteCustom, CustomDomain: "store." + siteDomain})
	_, err = st.admin.CreateTunnel(bg, api.CreateTunnelRequest{Subdomain: "store", Port: 8082})
	wantAPIError(t, err, 400, "Subdomain 'store' is already in use")
	_, err = st.admin.CreateSite(bg, api.CreateSiteRequest{Name: "auth", Type: api.SiteManaged})
	wantAPIError(t, err, 400, "Name 'auth' is reserved")
}

// A custom domain goes live after verify-dns against the DNS server, with
// its own certificate, which DELETE removes.
func TestCustomDomainSite(t *testing.T) {
	st := startSites(t, false)
	const domain = "www.example.test"
	res, err := st.admin.CreateSite(bg, api.CreateSiteRequest{Name: "shop", Type: api.SiteCustom, CustomDomain: domain})
	if err != nil || res.Message != "Site created. Add an A record for your domain, then verify DNS." || res.Site.DNSVerified || res.Site.CertIssued || res.Site.FQDN != domain {
		t.Fatalf("create: %+v %v", res, err)
	}
	site := res.Site
	if _, err := os.Stat(st.vhostFile(site.ID)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a custom site has a vhost before verify-dns: %v", err)
	}
	on := true
	_, err = st.admin.UpdateSite(bg, site.ID, api.UpdateSiteRequest{AutheliaProtected: &on})
	wantAPIError(t, err, 400, "Login protection is only available for sites under "+siteDomain)

	check, err := st.admin.VerifySiteDNS(bg, site.ID)
	if err != nil || check.OK || check.FQDN != domain || check.ExpectedIP != "127.0.0.1" || check.ResolvedIPs == nil || len(*check.ResolvedIPs) != 0 {
		t.Fatalf("no record: %+v %v", check, err)
	}
	st.dns.SetA(domain, "198.51.100.9")
	check, err = st.admin.VerifySiteDNS(bg, site.ID)
	if err != nil || check.OK || !slices.Equal(*check.ResolvedIPs, []string{"198.51.100.9"}) {
		t.Fatalf("elsewhere: %+v %v", check, err)
	}
	st.dns.SetA(domain, "127.0.0.1")
	check, err = st.admin.VerifySiteDNS(bg, site.ID)
	if err != nil || !check.OK || check.Message != "DNS verified, certificate issued, and site is now live." {
		t.Fatalf("verify: %+v %v", check, err)
	}
	if check, _ := st.admin.VerifySiteDNS(bg, site.ID); check.Message != "DNS already verified and certificate issued" {
		t.Fatalf("again: %+v", check)
	}
	cert := filepath.Join(st.relay.Layout.CertsDir, domain)
	if _, err := os.Stat(filepath.Join(cert, "fullchain.pem")); err != nil {
		t.Fatalf("no certificate of its own: %v", err)
	}
	if _, err := st.admin.UploadSiteFiles(bg, site.ID, ".", []panelclient.UploadFile{fileOf("index.html", []byte("shop front"))}, nil); err != nil {
		t.Fatal(err)
	}
	if resp, body := get(t, st.client(nil), st.siteURL(domain, "/")); resp.StatusCode != 200 || body != "shop front" {
		t.Fatalf("custom domain: %d %q", resp.StatusCode, body)
	}
	_, err = st.admin.VerifySiteDNS(bg, createSite(t, st.admin, api.CreateSiteRequest{Name: "blog", Type: api.SiteManaged}).ID)
	wantAPIError(t, err, 400, "DNS verification is only needed for custom domains")

	if _, err := st.admin.DeleteSite(bg, site.ID); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{st.vhostFile(site.ID), site.RootPath, cert} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still exists after DELETE: %v", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(st.relay.Layout.CertsDir, siteDomain, "fullchain.pem")); err != nil {
		t.Fatalf("the wildcard certificate was deleted: %v", err)
	}
}

// vmKiB reads a /proc/<pid>/status value in KiB.
func vmKiB(t *testing.T, pid int, key string) int64 {
	t.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", key, pid)
	return 0
}

// A 100 MiB upload through nginx never sits in the panel's memory: the
// panel process's peak resident set grows by a few MiB at most.
func TestUploadIsStreamed(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs /proc")
	}
	st := startSites(t, true)
	// Created by this process's services: the child panel would reload the
	// system's nginx, not this test's.
	created, err := st.svc.Sites.Create(bg, api.CreateSiteRequest{Name: "big", Type: api.SiteManaged})
	if err != nil {
		t.Fatal(err)
	}
	site := created.Site
	pid := st.panel.Process.Pid
	peakBefore, rssBefore := vmKiB(t, pid, "VmHWM"), vmKiB(t, pid, "VmRSS")
	const part = 25 << 20
	var files []panelclient.UploadFile
	for i := range 4 {
		files = append(files, panelclient.UploadFile{Path: "media/part" + strconv.Itoa(i) + ".mp4", Open: func() (io.ReadCloser, error) {
			return io.NopCloser(io.LimitReader(rand.Reader, part)), nil
		}})
	}
	res, err := st.admin.UploadSiteFiles(bg, site.ID, ".", files, nil)
	if err != nil || len(res.Files) != 4 {
		t.Fatalf("upload: %+v %v", res, err)
	}
	for _, f := range res.Files {
		if fi, err := os.Stat(filepath.Join(site.RootPath, f)); err != nil || fi.Size() != part {
			t.Fatalf("%s: %v %v", f, fi, err)
		}
	}
	peakAfter := vmKiB(t, pid, "VmHWM")
	growth := peakAfter - peakBefore
	t.Logf("panel RSS before the 100 MiB upload %d KiB (peak %d KiB); peak after %d KiB: +%d KiB", rssBefore, peakBefore, peakAfter, growth)
	if growth > 32<<10 {
		t.Fatalf("the panel's peak RSS grew by %d KiB during a 100 MiB upload: it is buffered in memory", growth)
	}
}

// The schema and the route checks answer before anything changes.
func TestSiteRequestValidation(t *testing.T) {
	st := startSites(t, false)
	site := createSite(t, st.admin, api.CreateSiteRequest{Name: "blog", Type: api.SiteManaged})
	c := st.client(&st.adminCert)
	for _, tc := range []struct {
		method, path string
		body         any
		status       int
		msg          string
	}{
		{"POST", "/api/sites", map[string]any{"name": "Bad Name", "type": "managed"}, 400, "Validation failed"},
		{"POST", "/api/sites", map[string]any{"name": "x"}, 400, "Validation failed"},
		{"POST", "/api/sites", map[string]any{"name": "x", "type": "static"}, 400, "Validation failed"},
		{"POST", "/api/sites", map[string]any{"name": "x", "type": "custom", "customDomain": "a..b"}, 400, "Validation failed"},
		{"POST", "/api/sites", map[string]any{"name": "x", "type": "custom", "customDomain": "localhost"}, 400, "Validation failed"},
		{"POST", "/api/sites", map[string]any{"name": "x", "type": "managed", "spaMode": "true"}, 400, "Validation failed"},
		{"POST", "/api/sites", map[string]any{"name": strings.Repeat("a", 64), "type": "managed"}, 400, "Validation failed"},
		{"POST", "/api/sites", map[string]any{"name": "xn--bcher-kva", "type": "managed"}, 400, "Validation failed"},
		{"POST", "/api/sites", map[string]any{"name": "blog", "type": "managed"}, 400, "Site name 'blog' is already in use"},
		{"PATCH", "/api/sites/not-a-uuid", map[string]any{"spaMode": true}, 400, "Validation failed"},
		{"PATCH", "/api/sites/8a4b3c2d-1e0f-4a5b-8c7d-6e5f4a3b2c1d", map[string]any{"spaMode": true}, 404, "Site not found"},
		{"PATCH", "/api/sites/" + site.ID, map[string]any{"allowedUsers": []string{"Not A User"}}, 400, "Validation failed"},
		{"PATCH", "/api/sites/" + site.ID, map[string]any{"allowedUsers": []string{"alice", "alice"}}, 400, "Validation failed"},
		{"DELETE", "/api/sites/8a4b3c2d-1e0f-4a5b-8c7d-6e5f4a3b2c1d", nil, 404, "Site not found"},
		{"POST", "/api/sites/8a4b3c2d-1e0f-4a5b-8c7d-6e5f4a3b2c1d/verify-dns", nil, 404, "Site not found"},
		{"GET", "/api/sites/" + site.ID + "/files?path=" + strings.Repeat("a", 501), nil, 400, "Validation failed"},
		{"GET", "/api/sites/" + site.ID + "/files?recursive=yes", nil, 400, "Validation failed"},
		{"GET", "/api/sites/8a4b3c2d-1e0f-4a5b-8c7d-6e5f4a3b2c1d/files", nil, 404, "Site not found"},
		{"POST", "/api/sites/" + site.ID + "/files", map[string]any{"path": "x"}, 400, "Upload failed: the body must be multipart/form-data"},
		{"DELETE", "/api/sites/" + site.ID + "/files", map[string]any{}, 400, "Validation failed"},
		{"DELETE", "/api/sites/" + site.ID + "/files", map[string]any{"path": ""}, 400, "Validation failed"},
		{"DELETE", "/api/sites/" + site.ID + "/files", map[string]any{"path": "nope.html"}, 404, "File not found"},
	} {
		code, body := call(t, c, tc.method, st.panelURL()+tc.path, tc.body)
		var e api.Error
		json.Unmarshal([]byte(body), &e)
		if code != tc.status || e.Message != tc.msg {
			t.Errorf("%s %s %v: %d %s, want %d %q", tc.method, tc.path, tc.body, code, body, tc.status, tc.msg)
		}
	}
	if list, _ := st.admin.ListSites(bg); len(list) != 1 {
		t.Fatalf("refused requests created sites: %+v", list)
	}
	// An agent gets the scope refusal on admin routes, after body parsing.
	ag := st.client(ptr(st.agentCert("home", []string{api.CapTunnelsRead, api.CapSitesRead, api.CapSitesWrite}, []string{"blog"})))
	for _, tc := range []struct{ method, path string }{
		{"POST", "/api/sites"}, {"PATCH", "/api/sites/" + site.ID}, {"DELETE", "/api/sites/" + site.ID}, {"POST", "/api/sites/" + site.ID + "/verify-dns"},
	} {
		code, body := call(t, ag, tc.method, st.panelURL()+tc.path, map[string]any{"spaMode": true})
		if code != 403 || !strings.Contains(body, "Insufficient certificate scope") {
			t.Errorf("agent %s %s: %d %s", tc.method, tc.path, code, body)
		}
	}
}
