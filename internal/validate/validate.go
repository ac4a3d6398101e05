// Package validate holds the value rules of the panel API (docs/api.md, "Shared value rules" and "Health and onboarding") as pure functions. Each validator takes the value as sent (no
// trimming, no case folding) and returns nil when it is acceptable or an
// error with a plain, user-facing message.
//
// Values accepted by the validators that feed nginx configuration, file
// paths or commands (domains, subdomains, labels, host names, fqdns,
// certificate names, tokens, UUIDs, usernames) never contain whitespace,
// quotes, ';', '{', '}', '/', '\', '$', NUL or "..": they are safe to place
// into an nginx config or a path component.
//
// Validators:
//
//	Domain           onboarding base domain (mixed case allowed; callers lower-case it)
//	Email            local@domain.tld, at most 254 characters
//	Subdomain        tunnel subdomain / managed-site name
//	AgentLabel       label when creating agents and enrollment tokens
//	AgentLabelParam  :label path parameter
//	TunnelAgentLabel agentLabel in a tunnel body
//	Port             local port 1024–65535
//	TargetHost       lower-case DNS hostname, dotted IPv4 or bracket-less IPv6
//	Username, GroupName, DisplayName
//	SystemUser       Unix account a systemd unit runs as (User=)
//	CertName         certificate name (:domain)
//	Token            invitation / enrollment token (64 lower-case hex)
//	UUID             8-4-4-4-12 hex id (any case, any version)
//	FQDN             host name placed into nginx server_name and vhosts
//	SiteFileType     Content-Type of an allowed static site file extension
//	                 (SiteFileExtensions lists them)
//
// IsReservedSubdomain reports the names docs/api.md, "Shared value rules" reserves.
package validate

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits from the contract and from DNS.
const (
	MaxLabelLen     = 63
	MaxHostnameLen  = 253
	MaxEmailLen     = 254
	MinPort         = 1024
	MaxPort         = 65535
	TokenLen        = 64
	maxEmailLocal   = 64
	minUsernameLen  = 2
	maxUsernameLen  = 32
	maxGroupLen     = 64
	maxDisplayLen   = 100
	maxAgentLabel   = 50
	maxLabelParam   = 150
	maxTunnelAgent  = 63
	uuidLen         = 36
	agentPanelLabel = "agent-"
)

// reserved are the subdomains and managed-site names docs/api.md, "Shared value rules" reserves.
var reserved = map[string]bool{
	"panel": true, "auth": true, "tunnel": true, "www": true,
	"mail": true, "ftp": true, "api": true,
}

// IsReservedSubdomain reports whether s is one of the reserved tunnel
// subdomains and managed-site names (panel, auth, tunnel, www, mail, ftp,
// api). The "agent-" prefix is checked separately by callers (it is allowed
// for panel tunnels).
func IsReservedSubdomain(s string) bool { return reserved[s] }

// HasAgentPanelPrefix reports whether s starts with "agent-", the prefix
// reserved for tunnels of type panel.
func HasAgentPanelPrefix(s string) bool { return strings.HasPrefix(s, agentPanelLabel) }

func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isHex(c byte) bool   { return isDigit(c) || (c >= 'a' && c <= 'f') }

// dnsLabel reports whether l is 1–63 characters of letters (lower-case only
// unless mixed is set) and digits with hyphens only inside.
func dnsLabel(l string, mixed bool) bool {
	if len(l) == 0 || len(l) > MaxLabelLen {
		return false
	}
	if l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		switch {
		case isLower(c), isDigit(c), c == '-':
		case mixed && isUpper(c):
		default:
			return false
		}
	}
	return true
}

// dnsName reports whether s is at least minLabels dnsLabels joined by dots,
// at most 253 characters.
func dnsName(s string, minLabels int, mixed bool) bool {
	if len(s) == 0 || len(s) > MaxHostnameLen {
		return false
	}
	labels := strings.Split(s, ".")
	if len(labels) < minLabels {
		return false
	}
	for _, l := range labels {
		if !dnsLabel(l, mixed) {
			return false
		}
	}
	return true
}

func alphaTLD(l string) bool {
	if len(l) < 2 {
		return false
	}
	for i := 0; i < len(l); i++ {
		if !isLower(l[i]) && !isUpper(l[i]) {
			return false
		}
	}
	return true
}

// labelPattern checks 1..max characters, the first of [a-z0-9], the rest of
// [a-z0-9-] plus the bytes in extra.
func labelPattern(s string, max int, extra string) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	if !isLower(s[0]) && !isDigit(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isLower(c) && !isDigit(c) && c != '-' && !strings.ContainsRune(extra, rune(c)) {
			return false
		}
	}
	return true
}

// Domain checks the onboarding base domain: one or more labels of
// [A-Za-z0-9] with inner hyphens (each at most 63 characters), then an
// alphabetic top-level domain of at least two letters; at most 253
// characters. Upper case is accepted; callers store strings.ToLower(s).
func Domain(s string) error {
	if dnsName(s, 2, true) && alphaTLD(s[strings.LastIndexByte(s, '.')+1:]) {
		return nil
	}
	return errors.New("domain must be a name like example.com: labels of letters, digits and inner hyphens (at most 63 characters each) and a top-level domain of at least 2 letters")
}

// Email checks an e-mail address of the form local@domain.tld, at most 254
// characters. The local part is 1–64 characters of letters, digits and
// . _ % + - (no leading, trailing or doubled dot); the domain follows the
// Domain rule.
func Email(s string) error {
	bad := errors.New("email must be a valid address like name@example.com (at most 254 characters)")
	if len(s) > MaxEmailLen {
		return bad
	}
	at := strings.IndexByte(s, '@')
	if at <= 0 || at > maxEmailLocal {
		return bad
	}
	local, domain := s[:at], s[at+1:]
	if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return bad
	}
	for i := 0; i < len(local); i++ {
		c := local[i]
		if !isLower(c) && !isUpper(c) && !isDigit(c) && !strings.ContainsRune("._%+-", rune(c)) {
			return bad
		}
	}
	if Domain(domain) != nil {
		return bad
	}
	return nil
}

// Subdomain checks a tunnel subdomain or managed-site name: at most 63
// characters of ^[a-z0-9]([a-z0-9-]*[a-z0-9])?$, and not "--" in the third
// and fourth places: those labels are reserved for IDNA, and xn--… labels
// are punycode, which a browser shows as other (look-alike) characters.
// Reserved names are a business rule (IsReservedSubdomain), not checked
// here.
func Subdomain(s string) error {
	if len(s) >= 4 && s[2:4] == "--" {
		return errors.New("subdomain must not have \"--\" as its third and fourth characters (xn-- names are punycode, shown by browsers as other characters)")
	}
	if dnsLabel(s, false) {
		return nil
	}
	return errors.New("subdomain must be 1–63 characters of lower-case letters, digits and hyphens, starting and ending with a letter or digit")
}

// AgentLabel checks an agent label when creating agents and enrollment
// tokens: 1–50 characters of ^[a-z0-9][a-z0-9-]*$.
func AgentLabel(s string) error {
	if labelPattern(s, maxAgentLabel, "") {
		return nil
	}
	return errors.New("label must be 1–50 characters of lower-case letters, digits and hyphens, starting with a letter or digit")
}

// AgentLabelParam checks the :label path parameter: 1–150 characters of
// ^[a-z0-9][a-z0-9:-]*$.
func AgentLabelParam(s string) error {
	if labelPattern(s, maxLabelParam, ":") {
		return nil
	}
	return errors.New("label must be 1–150 characters of lower-case letters, digits, hyphens and colons, starting with a letter or digit")
}

// TunnelAgentLabel checks agentLabel in a tunnel body: 1–63 characters of
// ^[a-z0-9][a-z0-9-]*$.
func TunnelAgentLabel(s string) error {
	if labelPattern(s, maxTunnelAgent, "") {
		return nil
	}
	return errors.New("agentLabel must be 1–63 characters of lower-case letters, digits and hyphens, starting with a letter or digit")
}

// Port checks a local port: 1024–65535. Checking that the JSON value is an
// integer is the caller's job.
func Port(p int) error {
	if p >= MinPort && p <= MaxPort {
		return nil
	}
	return fmt.Errorf("port must be an integer between %d and %d", MinPort, MaxPort)
}

// TargetHost checks a tunnel target host: a lower-case DNS hostname (labels
// of [a-z0-9] with inner hyphens, each at most 63 characters, total at most
// 253, last label not all digits), a dotted IPv4 address, or an IPv6
// address without brackets and without a zone. No ports, schemes, spaces
// or slashes.
func TargetHost(s string) error {
	bad := errors.New("targetHost must be a lower-case host name, an IPv4 address or an IPv6 address without brackets (no port, scheme or path)")
	if strings.ContainsRune(s, ':') {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return bad
		}
		return nil
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Is4() {
		return nil
	}
	if !dnsName(s, 1, false) {
		return bad
	}
	last := s[strings.LastIndexByte(s, '.')+1:]
	if strings.Trim(last, "0123456789") == "" {
		// All-numeric last label: not a host name, and not a valid IPv4
		// address either (999.1.1.1, 1.2.3, 8080).
		return bad
	}
	return nil
}

// Username checks a username: 2–32 characters of ^[a-z0-9_-]+$.
func Username(s string) error {
	if len(s) >= minUsernameLen && len(s) <= maxUsernameLen {
		ok := true
		for i := 0; i < len(s); i++ {
			c := s[i]
			if !isLower(c) && !isDigit(c) && c != '_' && c != '-' {
				ok = false
				break
			}
		}
		if ok {
			return nil
		}
	}
	return errors.New("username must be 2–32 characters of lower-case letters, digits, '_' and '-'")
}

// SystemUser checks the name of the Unix account a systemd unit runs as:
// 1–32 characters of ^[a-z_][a-z0-9_.-]*$ without "..", the portable
// subset of what useradd and systemd accept.
func SystemUser(s string) error {
	ok := len(s) >= 1 && len(s) <= maxUsernameLen && (isLower(s[0]) || s[0] == '_') && !strings.Contains(s, "..")
	for i := 1; ok && i < len(s); i++ {
		c := s[i]
		ok = isLower(c) || isDigit(c) || c == '_' || c == '.' || c == '-'
	}
	if !ok {
		return fmt.Errorf("user name %q must be 1–32 characters of lower-case letters, digits, '_', '.' and '-', starting with a letter or '_'", s)
	}
	return nil
}

// GroupName checks a group name: 1–64 characters of ^[A-Za-z0-9._-]+$ (no
// commas: groups travel comma-joined in Remote-Groups).
func GroupName(s string) error {
	if len(s) >= 1 && len(s) <= maxGroupLen {
		ok := true
		for i := 0; i < len(s); i++ {
			c := s[i]
			if !isLower(c) && !isUpper(c) && !isDigit(c) && c != '.' && c != '_' && c != '-' {
				ok = false
				break
			}
		}
		if ok {
			return nil
		}
	}
	return errors.New("group name must be 1–64 characters of letters, digits, '.', '_' and '-'")
}

// DisplayName checks a display name: valid UTF-8, 1–100 characters
// (Unicode code points), no control characters and no format characters
// (Unicode Cf: bidi overrides such as U+202E, zero-width characters), which
// would let a name be shown as something else.
func DisplayName(s string) error {
	bad := errors.New("display name must be 1–100 characters without control or invisible formatting characters")
	if !utf8.ValidString(s) {
		return bad
	}
	n := utf8.RuneCountInString(s)
	if n < 1 || n > maxDisplayLen {
		return bad
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029' {
			return bad
		}
	}
	return nil
}

// CertName checks a certificate name (the :domain parameter): two or more
// dot-separated lower-case labels of [a-z0-9] with inner hyphens.
func CertName(s string) error {
	if dnsName(s, 2, false) {
		return nil
	}
	return errors.New("certificate name must be two or more dot-separated lower-case labels like app.example.com")
}

// Token checks an invitation or enrollment token: exactly 64 lower-case hex
// characters.
func Token(s string) error {
	if len(s) == TokenLen {
		ok := true
		for i := 0; i < len(s); i++ {
			if !isHex(s[i]) {
				ok = false
				break
			}
		}
		if ok {
			return nil
		}
	}
	return errors.New("token must be 64 lower-case hexadecimal characters")
}

// UUID checks the form of an id: 8-4-4-4-12 hexadecimal digits, in either
// case, e.g. 1b4e28ba-2fa1-4d2e-883f-0016d3cca427. Any version is well
// formed (the relay issues v4 ids in lower case), so an unknown but well
// formed id is "not found", not "invalid". Compare ids lower-cased.
func UUID(s string) error {
	bad := errors.New("id must be a UUID (8-4-4-4-12 hexadecimal digits)")
	if len(s) != uuidLen {
		return bad
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return bad
			}
		default:
			if !isHex(c) && !(c >= 'A' && c <= 'F') {
				return bad
			}
		}
	}
	return nil
}

// FQDN checks a host name placed into nginx configuration (server_name,
// X-Original-URL, certificate paths): one or more lower-case labels of
// [a-z0-9] with inner hyphens (at most 63 characters each) joined by dots,
// at most 253 characters, no trailing dot.
func FQDN(s string) error {
	if dnsName(s, 1, false) {
		return nil
	}
	return fmt.Errorf("%q is not a valid lower-case host name", s)
}
