package webui

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
)

func built() fstest.MapFS {
	return fstest.MapFS{
		"index.html":                {Data: []byte(`<!doctype html><html><head><script type="module" crossorigin src="/assets/index-abc123.js"></script></head><body><div id="root"></div></body></html>` + strings.Repeat(" ", 200))},
		"index.html.gz":             {Data: []byte("gz-index")},
		"index.html.br":             {Data: []byte("br-index")},
		"assets/index-abc123.js":    {Data: []byte(strings.Repeat("console.log(1);", 50))},
		"assets/index-abc123.js.br": {Data: []byte("br-js")},
		"assets/index-abc123.js.gz": {Data: []byte("gz-js")},
		"assets/logo-ff00.svg":      {Data: []byte("<svg/>")},
		"README.md":                 {Data: []byte("not served")},
	}
}

func get(t *testing.T, h http.Handler, method, path string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestCachingAndEncodings(t *testing.T) {
	h, err := FromFS(built())
	if err != nil {
		t.Fatal(err)
	}
	js := get(t, h, "GET", "/assets/index-abc123.js", map[string]string{"Accept-Encoding": "gzip, deflate, br"})
	if js.Code != 200 || js.Header().Get("Cache-Control") != "public, max-age=31536000, immutable" ||
		js.Header().Get("Content-Encoding") != "br" || js.Body.String() != "br-js" ||
		!strings.HasPrefix(js.Header().Get("Content-Type"), "text/javascript") || js.Header().Get("Vary") != "Accept-Encoding" {
		t.Fatalf("asset: %d %v %q", js.Code, js.Header(), js.Body.String())
	}
	gz := get(t, h, "GET", "/assets/index-abc123.js", map[string]string{"Accept-Encoding": "gzip"})
	if gz.Header().Get("Content-Encoding") != "gzip" || gz.Body.String() != "gz-js" {
		t.Fatalf("gzip: %v %q", gz.Header(), gz.Body.String())
	}
	// q=0 refuses an encoding; no header means identity.
	for _, ae := range []string{"", "br;q=0, gzip;q=0", "identity"} {
		plain := get(t, h, "GET", "/assets/index-abc123.js", map[string]string{"Accept-Encoding": ae})
		if plain.Header().Get("Content-Encoding") != "" || !strings.HasPrefix(plain.Body.String(), "console.log") {
			t.Fatalf("Accept-Encoding %q: %v", ae, plain.Header())
		}
	}
	// A file whose compressed copy would be larger is sent as it is.
	svg := get(t, h, "GET", "/assets/logo-ff00.svg", map[string]string{"Accept-Encoding": "br"})
	if svg.Header().Get("Content-Encoding") != "" || svg.Body.String() != "<svg/>" {
		t.Fatalf("svg: %v", svg.Header())
	}

	for _, p := range []string{"/", "/index.html", "/tunnels", "/users/alice", "/onboarding/dns"} {
		r := get(t, h, "GET", p, map[string]string{"Accept-Encoding": "br"})
		if r.Code != 200 || r.Header().Get("Cache-Control") != "no-cache" || r.Body.String() != "br-index" ||
			!strings.HasPrefix(r.Header().Get("Content-Type"), "text/html") || r.Header().Get("ETag") == "" {
			t.Fatalf("%s: %d %v %q", p, r.Code, r.Header(), r.Body.String())
		}
		// Revalidation answers 304 for the same representation.
		again := get(t, h, "GET", p, map[string]string{"Accept-Encoding": "br", "If-None-Match": r.Header().Get("ETag")})
		if again.Code != http.StatusNotModified {
			t.Fatalf("%s revalidation: %d", p, again.Code)
		}
	}
	if e1, e2 := get(t, h, "GET", "/", map[string]string{"Accept-Encoding": "br"}).Header().Get("ETag"), get(t, h, "GET", "/", nil).Header().Get("ETag"); e1 == e2 {
		t.Fatalf("br and identity share the ETag %s", e1)
	}
}

func TestNotFoundAndMethods(t *testing.T) {
	h, _ := FromFS(built())
	for _, p := range []string{"/assets/index-old.js", "/favicon.ico", "/README.md", "/assets/"} {
		if r := get(t, h, "GET", p, nil); r.Code != 404 || strings.Contains(r.Body.String(), "<html") {
			t.Fatalf("%s: %d %q", p, r.Code, r.Body.String())
		}
	}
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH"} {
		if r := get(t, h, m, "/", nil); r.Code != 405 || r.Header().Get("Allow") != "GET, HEAD" {
			t.Fatalf("%s: %d", m, r.Code)
		}
	}
	if r := get(t, h, "HEAD", "/tunnels", nil); r.Code != 200 || r.Body.Len() != 0 {
		t.Fatalf("HEAD: %d %d bytes", r.Code, r.Body.Len())
	}
	// Path tricks stay inside the build.
	if r := get(t, h, "GET", "/assets/../README.md", nil); r.Code != 404 {
		t.Fatalf("dot-dot: %d", r.Code)
	}
}

func TestSecurityHeadersOnEveryAnswer(t *testing.T) {
	h, _ := FromFS(built())
	empty, _ := FromFS(fstest.MapFS{"README.md": {Data: []byte("x")}})
	for _, c := range []struct {
		h    *Handler
		path string
	}{{h, "/"}, {h, "/assets/index-abc123.js"}, {h, "/nope.js"}, {empty, "/"}} {
		r := get(t, c.h, "GET", c.path, nil)
		hd := r.Header()
		if !strings.Contains(hd.Get("Content-Security-Policy"), "default-src 'none'") || !strings.Contains(hd.Get("Content-Security-Policy"), "frame-ancestors 'none'") ||
			strings.Contains(hd.Get("Content-Security-Policy"), "unsafe") || hd.Get("X-Content-Type-Options") != "nosniff" ||
			hd.Get("X-Frame-Options") != "DENY" || hd.Get("Referrer-Policy") != "no-referrer" {
			t.Fatalf("%s: %v", c.path, hd)
		}
	}
}

// Without a build (a fresh clone) every page says how to build the UI.
func TestPlaceholderWithoutBuild(t *testing.T) {
	h, err := FromFS(fstest.MapFS{"README.md": {Data: []byte("x")}})
	if err != nil {
		t.Fatal(err)
	}
	if h.Built() {
		t.Fatal("Built() with no index.html")
	}
	for _, p := range []string{"/", "/tunnels"} {
		r := get(t, h, "GET", p, nil)
		if r.Code != 200 || !strings.Contains(r.Body.String(), "make ui") || r.Header().Get("Cache-Control") != "no-cache" {
			t.Fatalf("%s: %d %q", p, r.Code, r.Body.String())
		}
	}
}

func TestPickEncoding(t *testing.T) {
	for _, c := range []struct {
		accept string
		br, gz bool
		want   string
	}{
		{"gzip, deflate, br", true, true, "br"},
		{"gzip;q=1, br;q=0.5", true, true, "gzip"},
		{"br", false, true, ""},
		{"*", true, true, "br"},
		{"*;q=0", true, true, ""},
		{"gzip;q=bad", true, true, ""},
		{"GZIP", true, true, "gzip"},
		{"br;q=0, *", true, true, "gzip"},
	} {
		if got := pickEncoding(c.accept, c.br, c.gz); got != c.want {
			t.Errorf("pickEncoding(%q, %v, %v) = %q, want %q", c.accept, c.br, c.gz, got, c.want)
		}
	}
}

func FuzzPickEncoding(f *testing.F) {
	f.Add("gzip, deflate, br;q=0.9, *;q=0.1")
	f.Add("")
	f.Fuzz(func(t *testing.T, accept string) {
		got := pickEncoding(accept, true, true)
		if got != "" && got != "br" && got != "gzip" {
			t.Fatalf("pickEncoding(%q) = %q", accept, got)
		}
	})
}

var inlineScript = regexp.MustCompile(`<script\b[^>]*>\s*[^<\s]`)
var externalRef = regexp.MustCompile(`(?i)(src|href)=["']?(https?:)?//`)

// The embedded build (make ui) has no inline script and refers to no other
// host; under CI=true the binary must have the UI.
func TestEmbeddedBuild(t *testing.T) {
	h := New()
	if !h.Built() {
		if os.Getenv("CI") == "true" {
			t.Fatal("the web UI is not built into this binary: run `make ui` first")
		}
		t.Skip("web UI not built (make ui)")
	}
	data, err := fs.ReadFile(h.fsys, h.index.name)
	if err != nil {
		t.Fatal(err)
	}
	idx := string(data)
	if inlineScript.MatchString(idx) || externalRef.MatchString(idx) || strings.Contains(idx, "style=") {
		t.Fatalf("index.html has inline code or external references:\n%s", idx)
	}
	for p, f := range h.files {
		if !strings.HasPrefix(p, "assets/") && p != "index.html" {
			t.Errorf("unexpected file %s in the build", p)
		}
		if strings.HasSuffix(p, ".js") && (f.br == "" || f.gz == "") {
			t.Errorf("%s has no precompressed copies", p)
		}
	}
}
