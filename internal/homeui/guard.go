package homeui

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// CookieName is the session cookie set by /login.
const CookieName = "portlama_home"

// TokenHeader carries the token for scripts (instead of the cookie).
const TokenHeader = "X-Portlama-Token"

// guard refuses what another local user, another web page or a DNS
// rebinding attack could send to a server on 127.0.0.1:
//
//   - Host must be 127.0.0.1, localhost or [::1] with our port: a page on
//     evil.example whose name was re-pointed to 127.0.0.1 sends its own
//     name, so it is refused before anything else (421).
//   - A request that names an Origin (every cross-origin fetch and every
//     POST from a form) must name ours; Sec-Fetch-Site other than
//     same-origin or none is refused as well (403).
//   - Everything but /login and the static files needs the token: the
//     cookie set by /login, or the X-Portlama-Token header (401).
type guard struct {
	port  int
	token string

	mu    sync.Mutex
	codes map[string]time.Time // one-time login codes → expiry
	now   func() time.Time
}

func newGuard(token string) *guard {
	return &guard{token: token, codes: map[string]time.Time{}, now: time.Now}
}

func (g *guard) allowedHost(host string) bool {
	h, p, err := net.SplitHostPort(host)
	if err != nil || p != strconv.Itoa(g.port) {
		return false
	}
	return h == "127.0.0.1" || h == "localhost" || h == "::1"
}

func (g *guard) allowedOrigin(origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Scheme != "http" || u.Path != "" || u.User != nil {
		return false
	}
	return g.allowedHost(u.Host)
}

func (g *guard) hasToken(r *http.Request) bool {
	tok := r.Header.Get(TokenHeader)
	if tok == "" {
		if c, err := r.Cookie(CookieName); err == nil {
			tok = c.Value
		}
	}
	return tok != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(g.token)) == 1
}

// LoginCode returns a one-time code for /login?code=… (valid two minutes):
// the URL opened in the browser, so the token itself never appears in a
// URL, a browser history or a process list.
func (g *guard) LoginCode() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	code := hex.EncodeToString(b)
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	for c, exp := range g.codes {
		if now.After(exp) {
			delete(g.codes, c)
		}
	}
	g.codes[code] = now.Add(2 * time.Minute)
	return code
}

// redeem consumes a login code.
func (g *guard) redeem(code string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	exp, ok := g.codes[code]
	delete(g.codes, code)
	return ok && g.now().Before(exp)
}

func (g *guard) wrap(next http.Handler, public func(*http.Request) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.allowedHost(r.Host) {
			writeError(w, http.StatusMisdirectedRequest, "This control UI answers only on 127.0.0.1 (the Host header names another site).")
			return
		}
		if o := r.Header.Get("Origin"); o != "" && !g.allowedOrigin(o) {
			writeError(w, http.StatusForbidden, "Requests from other sites are refused.")
			return
		}
		if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
			writeError(w, http.StatusForbidden, "Requests from other sites are refused.")
			return
		}
		if r.URL.Path == "/login" {
			g.login(w, r)
			return
		}
		if !public(r) && !g.hasToken(r) {
			writeError(w, http.StatusUnauthorized, "Open the control UI with the link portlama-agent ui printed (or run it again).")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// login redeems ?code= and sets the session cookie (HttpOnly, SameSite
// Strict: other sites' requests never carry it), then goes to /.
func (g *guard) login(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || !g.redeem(r.URL.Query().Get("code")) {
		writeError(w, http.StatusUnauthorized, "This link was used already or has expired: run portlama-agent ui again for a new one.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: g.token, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}
