package nginx

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// status GETs sub's URL and returns the status and the echo name of the
// backend that answered ("" when none did).
func (rl *relay) status(t *testing.T, sub, cookie string) (int, string) {
	t.Helper()
	hdr := map[string]string{}
	if cookie != "" {
		hdr["Cookie"] = "portlama_session=" + cookie
	}
	resp, body := get(t, rl.client(rl.addrs.HTTPSPort, nil), rl.appURL(sub, "/x"), hdr)
	name := ""
	if resp.StatusCode == 200 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		name = decodeEcho(t, body).Name
	}
	return resp.StatusCode, name
}

func TestWildcardServerDispatchesByRoute(t *testing.T) {
	fa := &fakeAuth{}
	rl := startRelay(t, fa)
	rl.wildcard = true
	pub, prot, own := startEcho(t, "pub"), startEcho(t, "prot"), startEcho(t, "own")
	rl.writeApp(t, "pub", pub.port, true)
	rl.writeApp(t, "prot", prot.port, false)
	// An app with a server block of its own next to the shared one: its
	// exact server_name wins over *.<d>.
	rl.wildcard = false
	rl.writeApp(t, "own", own.port, true)

	// One server block for both wildcard apps: their files hold only the
	// upstream.
	for _, sub := range []string{"pub", "prot"} {
		b, err := os.ReadFile(filepath.Join(rl.layout.NginxSitesAvailable(), AppVhostName(sub)))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "server {") || !strings.Contains(string(b), "upstream portlama_app_"+sub) {
			t.Errorf("%s's file is not just its upstream:\n%s", sub, b)
		}
	}

	if code, name := rl.status(t, "pub", ""); code != 200 || name != "pub" {
		t.Errorf("public app without login: %d from %q", code, name)
	}
	if code, name := rl.status(t, "own", ""); code != 200 || name != "own" {
		t.Errorf("own-certificate app: %d from %q", code, name)
	}
	resp, _ := get(t, rl.client(rl.addrs.HTTPSPort, nil), rl.appURL("prot", "/x?a=1"), nil)
	want := "https://auth." + testDomain + "/?rd=" + url.QueryEscape(rl.appURL("prot", "/x?a=1"))
	if resp.StatusCode != 302 || resp.Header.Get("Location") != want {
		t.Errorf("protected app without login: %d %q, want 302 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	if code, _ := rl.status(t, "prot", "bob"); code != 403 {
		t.Errorf("protected app, user the rule refuses: %d, want 403", code)
	}
	if code, name := rl.status(t, "prot", "alice"); code != 200 || name != "prot" {
		t.Errorf("protected app with a session: %d from %q", code, name)
	}
	if _, n := prot.connections(); n != 1 {
		t.Errorf("protected app reached %d times, want once (alice)", n)
	}

	// An unknown name under the wildcard reaches no app, with or without
	// a session.
	before := map[*echo]int{}
	for _, e := range []*echo{pub, prot, own} {
		_, before[e] = e.connections()
	}
	for _, cookie := range []string{"", "alice"} {
		if code, name := rl.status(t, "nosuch", cookie); code != 404 || name != "" {
			t.Errorf("unknown host (session %q): %d from %q, want 404", cookie, code, name)
		}
	}
	for e, n := range before {
		if _, now := e.connections(); now != n {
			t.Errorf("unknown host reached %s", e.name)
		}
	}
}

func TestWildcardAppChangesAndRemoval(t *testing.T) {
	rl := startRelay(t, &fakeAuth{})
	rl.wildcard = true
	a, b, other := startEcho(t, "a"), startEcho(t, "b"), startEcho(t, "other")
	rl.writeApp(t, "web", a.port, true)
	rl.writeApp(t, "other", other.port, true)
	reloads := rl.inst.Reloads()

	// Re-port and access change: rewriting the app takes effect when the
	// call returns.
	rl.writeApp(t, "web", b.port, true)
	if code, name := rl.status(t, "web", ""); code != 200 || name != "b" {
		t.Errorf("after re-port: %d from %q", code, name)
	}
	rl.writeApp(t, "web", b.port, false)
	if code, _ := rl.status(t, "web", ""); code != 302 {
		t.Errorf("after public → protected: %d, want 302", code)
	}
	rl.writeApp(t, "web", b.port, true)
	if n := rl.inst.Reloads() - reloads; n != 3 {
		t.Errorf("%d reloads for 3 changes", n)
	}

	// Disable and enable: the route goes with the upstream.
	if err := rl.mgr.DisableVhost(ctxT(t), AppVhostName("web")); err != nil {
		t.Fatal(err)
	}
	if code, name := rl.status(t, "web", ""); code != 404 || name != "" {
		t.Errorf("disabled app: %d from %q, want 404", code, name)
	}
	if err := rl.mgr.EnableVhost(ctxT(t), AppVhostName("web")); err != nil {
		t.Fatal(err)
	}
	if code, name := rl.status(t, "web", ""); code != 200 || name != "b" {
		t.Errorf("enabled again: %d from %q", code, name)
	}

	// Removal takes the app out, files and route included; the other app
	// keeps serving.
	if err := rl.mgr.RemoveVhost(ctxT(t), AppVhostName("web")); err != nil {
		t.Fatal(err)
	}
	if code, name := rl.status(t, "web", ""); code != 404 || name != "" {
		t.Errorf("removed app: %d from %q, want 404", code, name)
	}
	for _, p := range []string{
		filepath.Join(rl.layout.NginxSitesAvailable(), AppVhostName("web")),
		filepath.Join(rl.layout.NginxSitesAvailable(), AppVhostName("web")+routeSuffix),
		filepath.Join(RoutesDir(rl.layout.NginxSitesEnabled()), AppVhostName("web")),
	} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s left behind (%v)", p, err)
		}
	}
	if code, name := rl.status(t, "other", ""); code != 200 || name != "other" {
		t.Errorf("other app after removal: %d from %q", code, name)
	}
}

func TestWildcardRollbackRestoresRouteAndUpstream(t *testing.T) {
	rl := startRelay(t, &fakeAuth{})
	rl.wildcard = true
	a := startEcho(t, "a")
	rl.writeApp(t, "web", a.port, true)
	avail := rl.layout.NginxSitesAvailable()
	files := []string{
		filepath.Join(avail, AppsVhost),
		filepath.Join(avail, AppVhostName("web")),
		filepath.Join(avail, AppVhostName("web")+routeSuffix),
	}
	snapshot := func() map[string]string {
		m := map[string]string{}
		for _, p := range files {
			b, _ := os.ReadFile(p)
			m[p] = string(b)
		}
		link, _ := os.Readlink(filepath.Join(RoutesDir(rl.layout.NginxSitesEnabled()), AppVhostName("web")))
		m["route link"] = link
		return m
	}
	before := snapshot()

	// A protected rewrite whose route nginx refuses: the whole change
	// (upstream, route, shared server) is rolled back.
	shared, v, err := rl.r.WildcardApp(AppParams{Domain: testDomain, Subdomain: "web", RelayPort: a.port + 1, TLS: rl.tls()})
	if err != nil {
		t.Fatal(err)
	}
	v.Route = []byte("web." + testDomain + " protected:portlama_app_web extra;\n")
	shared.Content = append(shared.Content, "# changed\n"...)
	var te *TestError
	if err := rl.mgr.Apply(ctxT(t), shared, v); !errors.As(err, &te) {
		t.Fatalf("Apply = %v, want a TestError", err)
	}
	after := snapshot()
	for k, want := range before {
		if after[k] != want {
			t.Errorf("%s not restored:\n got %q\nwant %q", k, after[k], want)
		}
	}
	if code, name := rl.status(t, "web", ""); code != 200 || name != "a" {
		t.Errorf("after the failed change: %d from %q", code, name)
	}

	// A new wildcard app that breaks the configuration leaves nothing.
	_, v, err = rl.r.WildcardApp(AppParams{Domain: testDomain, Subdomain: "new", RelayPort: a.port, TLS: rl.tls()})
	if err != nil {
		t.Fatal(err)
	}
	v.Content = []byte("upstream portlama_app_web { server 127.0.0.1:1; }\n") // duplicate upstream
	if err := rl.mgr.Apply(ctxT(t), v); !errors.As(err, &te) {
		t.Fatalf("Apply = %v, want a TestError", err)
	}
	for _, p := range []string{
		filepath.Join(avail, AppVhostName("new")),
		filepath.Join(avail, AppVhostName("new")+routeSuffix),
		filepath.Join(rl.layout.NginxSitesEnabled(), AppVhostName("new")),
		filepath.Join(RoutesDir(rl.layout.NginxSitesEnabled()), AppVhostName("new")),
	} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s left behind (%v)", p, err)
		}
	}
	if code, _ := rl.status(t, "new", ""); code != 404 {
		t.Errorf("failed new app: %d, want 404", code)
	}
}

// Request bodies reach public and protected apps whole (in the shared
// server: past the dispatch to the class's named location).
func TestAppsReceiveRequestBodies(t *testing.T) { appModes(t, testAppsReceiveRequestBodies) }

func testAppsReceiveRequestBodies(t *testing.T, wildcard bool) {
	rl := startRelay(t, &fakeAuth{})
	rl.wildcard = wildcard
	got := make(chan string, 4)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Error(err)
		}
		got <- r.Method + " " + strconv.Itoa(len(b)) + " " + fmt.Sprintf("%x", sha256.Sum256(b))
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	port := l.Addr().(*net.TCPAddr).Port
	rl.writeApp(t, "pub", port, true)
	rl.writeApp(t, "prot", port, false)

	body := bytes.Repeat([]byte("portlama "), 1<<17) // 1.1 MiB
	want := "PUT " + strconv.Itoa(len(body)) + " " + fmt.Sprintf("%x", sha256.Sum256(body))
	for _, tc := range []struct{ sub, cookie string }{{"pub", ""}, {"prot", "alice"}} {
		req, _ := http.NewRequest("PUT", rl.appURL(tc.sub, "/upload"), bytes.NewReader(body))
		if tc.cookie != "" {
			req.Header.Set("Cookie", "portlama_session="+tc.cookie)
		}
		resp, err := rl.client(rl.addrs.HTTPSPort, nil).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", tc.sub, resp.StatusCode)
		}
		if g := <-got; g != want {
			t.Errorf("%s: the app received %q, want %q", tc.sub, g, want)
		}
	}
}
