package auth

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// maxStrayPathSegments bounds how many path prefixes stray cookies are
// cleared for (each one costs Set-Cookie headers).
const maxStrayPathSegments = 6

// strayParam marks a portal redirect from an auth request that carried more
// than one session cookie: the portal then clears the extra ones on the
// target's paths.
const strayParam = "stray"

// sessionCookie returns the request's session cookie value. A request with
// more than one session cookie has none: another host under the base domain
// (a tunnelled app) can plant a second one with a longer path, and which
// one a browser sends first is not under our control.
func sessionCookie(r *http.Request) (string, bool) {
	cs := r.CookiesNamed(SessionCookieName)
	if len(cs) != 1 {
		return "", false
	}
	return cs[0].Value, true
}

// hasStrayCookies reports whether the request carries more than one session
// cookie.
func hasStrayCookies(r *http.Request) bool {
	return len(r.CookiesNamed(SessionCookieName)) > 1
}

// clearStrayCookies expires session cookies that are not the server's own
// (Domain=<base domain>, Path=/) for every path that could have sent them to
// path: its prefixes, on the base domain, its parents and the portal host.
// The server's own cookie is left alone.
func (s *Server) clearStrayCookies(w http.ResponseWriter, path string) {
	paths := cookiePathPrefixes(path)
	domains := []string{""} // host-only on the portal host
	for d := s.cfg.Domain; strings.Contains(d, "."); d = d[strings.IndexByte(d, '.')+1:] {
		domains = append(domains, d)
	}
	for _, d := range domains {
		for _, p := range paths {
			if d == s.cfg.Domain && p == "/" {
				continue
			}
			http.SetCookie(w, &http.Cookie{Name: SessionCookieName, Value: "", Domain: d, Path: p,
				HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode, MaxAge: -1})
		}
	}
}

// cookiePathPrefixes lists the cookie paths that path-match path (RFC 6265
// §5.1.4): "/", then each segment prefix with and without a trailing slash.
func cookiePathPrefixes(path string) []string {
	out := []string{"/"}
	if !strings.HasPrefix(path, "/") {
		return out
	}
	segs := strings.Split(path[1:], "/")
	cur := ""
	for i, seg := range segs {
		if seg == "" || i >= maxStrayPathSegments || !cookiePathSafe(seg) {
			break
		}
		cur += "/" + seg
		out = append(out, cur, cur+"/")
	}
	return out
}

// clearStrayCookiesFor clears stray session cookies on the paths of a
// redirect target (another host under the base domain), so a cookie an app
// planted on its own paths cannot keep the user in a login loop.
func (s *Server) clearStrayCookiesFor(w http.ResponseWriter, target string) {
	u, err := url.Parse(target)
	if err != nil || u.Path == "" || u.Path == "/" {
		return
	}
	paths := cookiePathPrefixes(u.Path)[1:] // never "/": that is where ours lives
	for d := s.cfg.Domain; strings.Contains(d, "."); d = d[strings.IndexByte(d, '.')+1:] {
		for _, p := range paths {
			http.SetCookie(w, &http.Cookie{Name: SessionCookieName, Value: "", Domain: d, Path: p,
				HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode, MaxAge: -1})
		}
	}
}

// cookiePathSafe reports whether seg can appear in a Set-Cookie Path as is:
// visible ASCII without separators.
func cookiePathSafe(seg string) bool {
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if c <= ' ' || c >= 0x7f || c == ';' || c == ',' || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// ForeignCookieLimit is the Cookie header size beyond which the portal
// expires every cookie but its own: other servers accept 16 KiB lines
// (nginx conf.d), so the portal clears well before apps stop answering.
// Apps under the domain can set such cookies from JavaScript; the portal
// accepts far more (nginx.PortalHeaderBuffers) and cleans up.
const ForeignCookieLimit = 8 << 10

// foreignCookieBudget bounds the Set-Cookie bytes of one answer (nginx
// reads the auth server's headers into 32 KiB); what is left is cleared on
// the next visit.
const foreignCookieBudget = 24 << 10

// dropForeignCookies expires the cookies other than the session cookie when
// the request carries more than ForeignCookieLimit bytes of them: on the
// portal host, the base domain and its parents, for "/" and the prefixes of
// the request path. Largest first.
func (s *Server) dropForeignCookies(w http.ResponseWriter, r *http.Request) {
	lines := r.Header.Values("Cookie")
	total := 0
	for _, l := range lines {
		total += len(l)
	}
	if total <= ForeignCookieLimit {
		return
	}
	type ck struct {
		name string
		size int
	}
	var cks []ck
	seen := map[string]bool{}
	for _, l := range lines {
		for _, part := range strings.Split(l, ";") {
			name, val, _ := strings.Cut(part, "=")
			name = strings.TrimSpace(name)
			if name == SessionCookieName || seen[name] || !cookieNameSafe(name) {
				continue
			}
			seen[name] = true
			cks = append(cks, ck{name, len(name) + len(val)})
		}
	}
	slices.SortFunc(cks, func(a, b ck) int { return b.size - a.size })
	domains := []string{""}
	for d := s.cfg.Domain; strings.Contains(d, "."); d = d[strings.IndexByte(d, '.')+1:] {
		domains = append(domains, d)
	}
	paths := cookiePathPrefixes(r.URL.Path)
	budget, cleared := foreignCookieBudget, 0
	for _, c := range cks {
		var lines []string
		size := 0
		for _, d := range domains {
			for _, p := range paths {
				v := c.name + "=; Path=" + p + "; Max-Age=0; Secure"
				if d != "" {
					v += "; Domain=" + d
				}
				lines = append(lines, v)
				size += len("Set-Cookie: \r\n") + len(v)
			}
		}
		if size > budget {
			break
		}
		budget -= size
		for _, v := range lines {
			w.Header().Add("Set-Cookie", v)
		}
		cleared++
	}
	s.log.Warn("request carried too many cookie bytes; expiring foreign cookies",
		"bytes", total, "cookies", len(cks), "cleared", cleared, "path", r.URL.Path, "ip", clientIP(r))
}

// cookieNameSafe reports whether name can be echoed in a Set-Cookie line
// as is: a non-empty token of visible ASCII without separators.
func cookieNameSafe(name string) bool {
	if name == "" || len(name) > 256 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`;,="\`, c) >= 0 {
			return false
		}
	}
	return true
}
