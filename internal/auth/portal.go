package auth

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"html"
	"net/http"
	"regexp"
	"strings"
)

//go:embed portal/index.html portal/portal.css portal/portal.js portal/denied.html
var portalFS embed.FS

// portalCSP allows nothing but the portal's own script, style and API.
const portalCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", portalCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}

func serveAsset(name, ctype string, status int) http.HandlerFunc {
	data, err := portalFS.ReadFile("portal/" + name)
	if err != nil {
		panic("portal asset missing: " + name) // embedded at build time
	}
	return func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w.Header())
		w.Header().Set("Content-Type", ctype)
		if status == http.StatusOK && ctype != "text/html; charset=utf-8" {
			w.Header().Set("Cache-Control", "public, max-age=300")
		} else {
			w.Header().Set("Cache-Control", "no-store")
		}
		w.WriteHeader(status)
		if r.Method != http.MethodHead {
			w.Write(data)
		}
	}
}

// Handler returns the public HTTP handler: portal pages, the JSON login API
// and the auth-request endpoint. Portal requests that carry too many cookie
// bytes also expire the foreign ones (dropForeignCookies).
func (s *Server) Handler() http.Handler {
	mux := s.routes()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Not for nginx's subrequests: their answer's headers never reach
		// the browser.
		if r.URL.Path != "/api/authz/auth-request" && r.URL.Path != "/denied" {
			s.dropForeignCookies(w, r)
		}
		mux.ServeHTTP(w, r)
	})
}

func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	index := serveAsset("index.html", "text/html; charset=utf-8", http.StatusOK)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		s.dropStrays(w, r)
		rd, rdOK := s.redirectTarget(r.URL.Query().Get("rd"))
		if rdOK && r.URL.Query().Get(strayParam) == "1" {
			s.clearStrayCookiesFor(w, rd)
		}
		// Already signed in with a valid target: go straight back.
		if rdOK {
			if _, _, _, ok := s.validSession(r, LevelTwoFactor, true); ok {
				w.Header().Set("Cache-Control", "no-store")
				http.Redirect(w, r, rd, http.StatusFound)
				return
			}
		}
		index(w, r)
	})
	mux.HandleFunc("GET /logout", index)
	denied := s.deniedPage()
	mux.HandleFunc("/denied", denied)
	mux.Handle("GET /static/portal.css", serveAsset("portal.css", "text/css; charset=utf-8", http.StatusOK))
	mux.Handle("GET /static/portal.js", serveAsset("portal.js", "text/javascript; charset=utf-8", http.StatusOK))
	mux.HandleFunc("GET /api/health", func(w http.ResponseWriter, r *http.Request) { writeOK(w, nil) })
	mux.HandleFunc("GET /api/state", s.handleState)
	mux.HandleFunc("POST /api/firstfactor", s.handleFirstFactor)
	mux.HandleFunc("POST /api/secondfactor/totp", s.handleTOTP)
	mux.HandleFunc("POST /api/logout", s.handleLogout)
	mux.HandleFunc("/api/authz/auth-request", s.handleAuthRequest)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeKO(w, http.StatusNotFound, "Not found")
	})
	return mux
}

var styleRe = regexp.MustCompile(`(?s)<style>(.*?)</style>`)

// deniedPage is the "access denied" page nginx shows for a 403 from the
// auth-request endpoint. It is served on the application's host, so it is
// fully self-contained: one inline style admitted by its hash, no script,
// and a link back to the portal.
func (s *Server) deniedPage() http.HandlerFunc {
	raw, err := portalFS.ReadFile("portal/denied.html")
	if err != nil {
		panic("portal asset missing: denied.html")
	}
	page := strings.ReplaceAll(string(raw), "{{PORTAL}}", html.EscapeString(s.cfg.PortalURL))
	csp := "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	if m := styleRe.FindStringSubmatch(page); m != nil {
		sum := sha256.Sum256([]byte(m[1]))
		csp += "; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusForbidden)
		if r.Method != http.MethodHead {
			w.Write([]byte(page))
		}
	}
}
