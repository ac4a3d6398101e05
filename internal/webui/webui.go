// Package webui serves the panel's web UI: the single-page app built from
// web/ (make ui) and embedded in the binary. Hashed assets are cached for a
// year, index.html is revalidated on every load, files are sent
// precompressed (brotli or gzip, by Accept-Encoding), client-side routes
// fall back to index.html, and every answer carries a strict
// Content-Security-Policy: scripts, styles and connections only from the
// panel's own origin, nothing inline, no third-party host.
//
// A binary built without the UI (a fresh clone, `go build ./...`) serves a
// page that says how to build it.
package webui

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
)

//go:embed all:dist
var dist embed.FS

// CSP is the Content-Security-Policy of every answer. 'self' covers the
// panel's WebSocket streams on the same host; data: images are the TOTP QR
// codes the API renders.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; " +
	"connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Cache-Control values.
const (
	cacheImmutable  = "public, max-age=31536000, immutable" // hashed names under assets/
	cacheRevalidate = "no-cache"                            // index.html, the SPA routes
)

// file names what is served for one path. The bytes stay in fsys (for
// the embedded UI, the binary's read-only data, shared through the page
// cache): reading them into the heap once would cost the idle panel twice
// their size in anonymous memory.
type file struct {
	name, gz, br string // in fsys; gz and br empty when there is no smaller copy
	ctype        string
	etag         string // quoted, without the encoding suffix
	cache        string
}

// Handler serves the UI. It implements http.Handler.
type Handler struct {
	fsys  fs.FS
	files map[string]*file // by slash path without a leading slash
	index *file            // nil: the UI was not built into this binary
}

// New returns the handler for the UI embedded in this binary (read once).
func New() *Handler { return embedded() }

var embedded = sync.OnceValue(func() *Handler {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // the directory is embedded at build time
	}
	h, err := FromFS(sub)
	if err != nil {
		panic(err) // an embedded file that cannot be read is a broken build
	}
	return h
})

// Built reports whether the UI is in this binary (false: the placeholder
// page is served).
func (h *Handler) Built() bool { return h.index != nil }

// FromFS returns the handler for a built UI in fsys (index.html and
// assets/, each file possibly with .gz and .br beside it).
func FromFS(fsys fs.FS) (*Handler, error) {
	h := &Handler{fsys: fsys, files: map[string]*file{}}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasSuffix(p, ".gz") || strings.HasSuffix(p, ".br") || p == "README.md" {
			return nil
		}
		size, sum, err := hashFile(fsys, p)
		if err != nil {
			return err
		}
		f := &file{name: p, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, cache: cacheRevalidate}
		if f.ctype = mime.TypeByExtension(path.Ext(p)); f.ctype == "" {
			f.ctype = "application/octet-stream"
		}
		if strings.HasPrefix(p, "assets/") {
			f.cache = cacheImmutable
		}
		// Precompressed copies are used only when they are smaller.
		if st, err := fs.Stat(fsys, p+".gz"); err == nil && st.Size() < size {
			f.gz = p + ".gz"
		}
		if st, err := fs.Stat(fsys, p+".br"); err == nil && st.Size() < size {
			f.br = p + ".br"
		}
		h.files[p] = f
		return nil
	})
	if err != nil {
		return nil, err
	}
	h.index = h.files["index.html"]
	return h, nil
}

// hashFile returns the size and SHA-256 of name, streamed (no copy of
// the file in the heap).
func hashFile(fsys fs.FS, name string) (int64, []byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, nil, fmt.Errorf("read %s: %w", name, err)
	}
	return n, h.Sum(nil), nil
}

// setSecurityHeaders sets the headers every answer carries.
func setSecurityHeaders(hd http.Header) {
	hd.Set("Content-Security-Policy", CSP)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
	hd.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()")
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w.Header())
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "Method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if h.index == nil {
		servePlaceholder(w)
		return
	}
	p := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	if f, ok := h.files[p]; ok {
		h.serve(w, r, f)
		return
	}
	// A missing asset or file is a 404, never the app's HTML (a stale
	// script URL must not be answered with a page).
	if p == "assets" || strings.HasPrefix(p, "assets/") || (p != "" && strings.Contains(path.Base(p), ".")) {
		http.Error(w, "Not found", http.StatusNotFound)
		return
	}
	h.serve(w, r, h.index) // a client-side route
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, f *file) {
	hd := w.Header()
	hd.Set("Content-Type", f.ctype)
	hd.Set("Cache-Control", f.cache)
	name, etag := f.name, f.etag
	if f.gz != "" || f.br != "" {
		hd.Add("Vary", "Accept-Encoding")
		switch enc := pickEncoding(r.Header.Get("Accept-Encoding"), f.br != "", f.gz != ""); enc {
		case "br":
			name, etag = f.br, strings.TrimSuffix(etag, `"`)+`-br"`
			hd.Set("Content-Encoding", enc)
		case "gzip":
			name, etag = f.gz, strings.TrimSuffix(etag, `"`)+`-gz"`
			hd.Set("Content-Encoding", enc)
		}
	}
	content, err := h.open(name)
	if err != nil {
		hd.Del("Content-Encoding")
		http.Error(w, "Cannot read "+name+" of the web UI: "+err.Error(), http.StatusInternalServerError)
		return
	}
	defer content.Close()
	hd.Set("ETag", etag)
	http.ServeContent(w, r, "", time.Time{}, content)
}

// open returns name from fsys as the ReadSeeker http.ServeContent needs
// (the files of embed.FS, os.DirFS and fstest.MapFS all are).
func (h *Handler) open(name string) (io.ReadSeekCloser, error) {
	f, err := h.fsys.Open(name)
	if err != nil {
		return nil, err
	}
	rs, ok := f.(io.ReadSeekCloser)
	if !ok {
		f.Close()
		return nil, fmt.Errorf("%s cannot seek", name)
	}
	return rs, nil
}

// pickEncoding chooses br, gzip or "" (identity) from an Accept-Encoding
// header, honouring q-values; br wins a tie.
func pickEncoding(accept string, haveBr, haveGz bool) string {
	best, bestQ := "", 0.0
	star := -1.0
	q := map[string]float64{}
	for _, part := range strings.Split(accept, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		name = strings.ToLower(strings.TrimSpace(name))
		v := 1.0
		if k, val, ok := strings.Cut(strings.TrimSpace(params), "="); ok && strings.TrimSpace(k) == "q" {
			f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
			if err != nil {
				continue
			}
			v = f
		}
		if name == "*" {
			star = v
			continue
		}
		q[name] = v
	}
	for _, c := range []struct {
		name string
		have bool
	}{{"br", haveBr}, {"gzip", haveGz}} {
		v, ok := q[c.name]
		if !ok && star >= 0 {
			v, ok = star, true
		}
		if c.have && ok && v > bestQ {
			best, bestQ = c.name, v
		}
	}
	return best
}

const placeholderPage = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Portlama panel</title></head>
<body>
<h1>Portlama panel</h1>
<p>This portlama binary was built without its web UI.</p>
<p>To build it, install Node.js 20 and npm, then run <code>make ui</code> followed by
<code>make build</code> in the source tree (<code>make build</code> alone does both).</p>
<p>The REST API works without it, under <code>/api</code> (for example <code>/api/health</code>),
for the agent CLI and for curl with a client certificate.</p>
</body>
</html>
`

func servePlaceholder(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", cacheRevalidate)
	w.Header().Set("Content-Security-Policy", "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	w.Write([]byte(placeholderPage))
}
