package auth

import (
	"net/url"
	"strings"
)

// SafeRedirect returns rd, normalised, if it is an https URL whose host is
// domain or a name below it; otherwise ok is false. It never admits another
// host, userinfo, a scheme other than https, or anything ambiguous
// (backslashes, control characters, whitespace).
func SafeRedirect(rd, domain string) (string, bool) {
	if rd == "" || len(rd) > 4096 || domain == "" {
		return "", false
	}
	for i := 0; i < len(rd); i++ {
		c := rd[i]
		if c <= 0x20 || c == 0x7f || c == '\\' || c >= 0x80 {
			return "", false
		}
	}
	u, err := url.Parse(rd)
	if err != nil || u.Scheme != "https" || u.Opaque != "" || u.User != nil || u.Host == "" {
		return "", false
	}
	if !strings.HasPrefix(rd, "https://") {
		return "", false
	}
	host := u.Hostname()
	if !HostUnderDomain(host, domain) {
		return "", false
	}
	if p := u.Port(); p != "" {
		if len(p) > 5 || strings.Trim(p, "0123456789") != "" {
			return "", false
		}
	}
	return u.String(), true
}

// HostUnderDomain reports whether host (lower-case DNS name, no port) is
// domain or a subdomain of it.
func HostUnderDomain(host, domain string) bool {
	domain = strings.ToLower(domain)
	if host == "" || domain == "" || host != strings.ToLower(host) {
		return false
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	if strings.Contains(host, "..") || strings.HasPrefix(host, ".") {
		return false
	}
	return host == domain || strings.HasSuffix(host, "."+domain)
}

// redirectTarget returns rd, normalised, when the portal may send a signed-in
// visitor there: SafeRedirect under the base domain, on the portal's port,
// and to a name the relay serves — the portal, panel.<d>, or one of the
// hosts of access-rules.json (tunnels, sites). Without that list only the
// portal and the panel qualify.
func (s *Server) redirectTarget(rd string) (string, bool) {
	out, ok := SafeRedirect(rd, s.cfg.Domain)
	if !ok {
		return "", false
	}
	u, err := url.Parse(out)
	if err != nil {
		return "", false
	}
	portal, err := url.Parse(s.cfg.PortalURL)
	if err != nil || portOrDefault(u) != portOrDefault(portal) {
		return "", false
	}
	host := u.Hostname()
	if host == portal.Hostname() || host == "panel."+s.cfg.Domain {
		return out, true
	}
	s.mu.RLock()
	known := s.policy.hosts[host]
	s.mu.RUnlock()
	return out, known
}
