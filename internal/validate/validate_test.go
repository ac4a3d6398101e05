package validate

import (
	"net/netip"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

type tcase struct {
	in string
	ok bool
}

func run(t *testing.T, name string, fn func(string) error, cases []tcase) {
	t.Helper()
	for _, c := range cases {
		err := fn(c.in)
		if (err == nil) != c.ok {
			t.Errorf("%s(%q) = %v, want ok=%v", name, c.in, err, c.ok)
		}
		if err != nil && err.Error() == "" {
			t.Errorf("%s(%q): empty error message", name, c.in)
		}
	}
}

// unsafeForConfig reports characters or sequences that must never reach an
// nginx config or a path component.
func unsafeForConfig(s string) bool {
	if strings.Contains(s, "..") {
		return true
	}
	for _, r := range s {
		switch r {
		case ' ', '\t', '\n', '\r', '\v', '\f', ';', '{', '}', '/', '\\', '"', '\'', '`', '$', 0, '#', '*', '?', '(', ')', '<', '>', '|', '&', '~', '^', '!', '[', ']':
			return true
		}
		if r > 0x7e || r < 0x21 {
			return true
		}
	}
	return false
}

var long63 = strings.Repeat("a", 63)
var long64 = strings.Repeat("a", 64)

func TestDomain(t *testing.T) {
	run(t, "Domain", Domain, []tcase{
		{"example.com", true},
		{"Example.COM", true},
		{"a.b.c.example.co", true},
		{"my-relay.example.org", true},
		{"x1.io", true},
		{long63 + ".com", true},
		{"demo.localhost", true},
		{"", false},
		{"com", false},
		{"example.c", false},
		{"example.c0m", false},
		{"example.123", false},
		{"-example.com", false},
		{"example-.com", false},
		{"ex_ample.com", false},
		{"example..com", false},
		{".example.com", false},
		{"example.com.", false},
		{long64 + ".com", false},
		{"example.com/x", false},
		{"example.com;", false},
		{"exa mple.com", false},
		{"*.example.com", false},
		{"exämple.com", false},
		{strings.Repeat("a.", 126) + "com", false}, // 255 characters
	})
}

func TestEmail(t *testing.T) {
	run(t, "Email", Email, []tcase{
		{"admin@example.com", true},
		{"first.last+tag@sub.example.org", true},
		{"A_B%c-d@Example.COM", true},
		{strings.Repeat("a", 64) + "@example.com", true},
		{"", false},
		{"admin", false},
		{"@example.com", false},
		{"admin@", false},
		{"admin@example", false},
		{"admin@@example.com", false},
		{"ad min@example.com", false},
		{".admin@example.com", false},
		{"admin.@example.com", false},
		{"ad..min@example.com", false},
		{"a\"b@example.com", false},
		{"admin@exa_mple.com", false},
		{"a;b@example.com", false},
		{strings.Repeat("a", 65) + "@example.com", false},
		{"a@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 63) + "." + strings.Repeat("e", 57) + ".com", false}, // > 254
	})
}

func TestSubdomain(t *testing.T) {
	run(t, "Subdomain", Subdomain, []tcase{
		{"app", true},
		{"a", true},
		{"0", true},
		{"my-app-2", true},
		{"agent-home", true},
		{long63, true},
		{"", false},
		{long64, false},
		{"App", false},
		{"-app", false},
		{"app-", false},
		{"a.b", false},
		{"a_b", false},
		{"a b", false},
		{"..", false},
		{"a/b", false},
		{"a\x00", false},
		{"xn--80ak6aa92e", false}, // punycode (a look-alike of "apple")
		{"xn--app", false},
		{"ab--cd", false},
		{"a--b", true},
		{"abc--d", true},
	})
}

func TestReserved(t *testing.T) {
	for _, s := range []string{"panel", "auth", "tunnel", "www", "mail", "ftp", "api"} {
		if !IsReservedSubdomain(s) {
			t.Errorf("%q not reserved", s)
		}
	}
	for _, s := range []string{"app", "panels", "Panel", "agent-x"} {
		if IsReservedSubdomain(s) {
			t.Errorf("%q reserved", s)
		}
	}
	if !HasAgentPanelPrefix("agent-home") || HasAgentPanelPrefix("agenthome") {
		t.Error("HasAgentPanelPrefix wrong")
	}
}

func TestAgentLabels(t *testing.T) {
	run(t, "AgentLabel", AgentLabel, []tcase{
		{"home", true},
		{"a", true},
		{"0-laptop-", true},
		{strings.Repeat("a", 50), true},
		{"", false},
		{strings.Repeat("a", 51), false},
		{"-home", false},
		{"Home", false},
		{"agent:home", false},
		{"ho me", false},
		{"ho.me", false},
	})
	run(t, "AgentLabelParam", AgentLabelParam, []tcase{
		{"home", true},
		{"agent:home", true},
		{"a:b:c-d", true},
		{strings.Repeat("a", 150), true},
		{"", false},
		{strings.Repeat("a", 151), false},
		{":home", false},
		{"-home", false},
		{"home/x", false},
		{"Home", false},
		{"a..b", false},
	})
	run(t, "TunnelAgentLabel", TunnelAgentLabel, []tcase{
		{"home", true},
		{strings.Repeat("a", 63), true},
		{"", false},
		{strings.Repeat("a", 64), false},
		{"-x", false},
		{"a:b", false},
		{"a_b", false},
	})
}

func TestPort(t *testing.T) {
	for _, c := range []struct {
		p  int
		ok bool
	}{{1024, true}, {8080, true}, {65535, true}, {1023, false}, {0, false}, {-1, false}, {65536, false}, {80, false}} {
		if (Port(c.p) == nil) != c.ok {
			t.Errorf("Port(%d) ok=%v", c.p, !c.ok)
		}
	}
}

func TestTargetHost(t *testing.T) {
	run(t, "TargetHost", TargetHost, []tcase{
		{"127.0.0.1", true},
		{"192.168.1.20", true},
		{"localhost", true},
		{"nas.local", true},
		{"my-host-1.lan", true},
		{"::1", true},
		{"fe80::1", true},
		{"2001:db8::1", true},
		{"::ffff:10.0.0.1", true},
		{"1a", true},
		{"", false},
		{"Localhost", false},
		{"[::1]", false},
		{"fe80::1%eth0", false},
		{"127.0.0.1:80", false},
		{"localhost:8080", false},
		{"http://localhost", false},
		{"local host", false},
		{"a/b", false},
		{"999.1.1.1", false},
		{"1.2.3", false},
		{"8080", false},
		{"01.2.3.4", false},
		{"-host", false},
		{"host-", false},
		{"a..b", false},
		{"host.", false},
		{"ho_st", false},
		{"::g", false},
		{":", false},
		{long64, false},
	})
}

func TestUsernameGroupDisplay(t *testing.T) {
	run(t, "Username", Username, []tcase{
		{"ab", true},
		{"admin", true},
		{"john_doe-2", true},
		{"__", true},
		{strings.Repeat("a", 32), true},
		{"a", false},
		{"", false},
		{strings.Repeat("a", 33), false},
		{"Admin", false},
		{"john.doe", false},
		{"john doe", false},
		{"jo;hn", false},
	})
	run(t, "SystemUser", SystemUser, []tcase{
		{"portlama", true},
		{"sam", true},
		{"a", true},
		{"_svc", true},
		{"john.doe-2", true},
		{strings.Repeat("a", 32), true},
		{"", false},
		{strings.Repeat("a", 33), false},
		{"1sam", false},
		{"-sam", false},
		{".sam", false},
		{"Sam", false},
		{"a..b", false},
		{"sam\n", false},
		{"sam smith", false},
		{"sam;x", false},
		{"sam/x", false},
	})
	run(t, "GroupName", GroupName, []tcase{
		{"admins", true},
		{"Dev.Team_1-x", true},
		{"a", true},
		{strings.Repeat("a", 64), true},
		{"", false},
		{strings.Repeat("a", 65), false},
		{"a,b", false},
		{"a b", false},
		{"a/b", false},
		{"grüppe", false},
	})
	run(t, "DisplayName", DisplayName, []tcase{
		{"John Doe", true},
		{"Zoë O'Brien; \"quoted\" {x}", true},
		{"日本語", true},
		{strings.Repeat("é", 100), true},
		{"", false},
		{strings.Repeat("é", 101), false},
		{"a\nb", false},
		{"a\tb", false},
		{"a\x00b", false},
		{"a\x7fb", false},
		{"a\u0085b", false},
		{"a\u2028b", false},
		{"\xff", false},
		{"admin\u202egnp.exe", false}, // right-to-left override
		{"a\u200bb", false},           // zero-width space
		{"\ufeffBob", false},          // byte order mark
		{"a\u2066b", false},           // bidi isolate
	})
}

func TestCertTokenUUIDFQDN(t *testing.T) {
	run(t, "CertName", CertName, []tcase{
		{"example.com", true},
		{"app.example.com", true},
		{"x-1.y.z", true},
		{"example", false},
		{"Example.com", false},
		{"*.example.com", false},
		{"..", false},
		{"a..b", false},
		{"../etc", false},
		{"example.com.", false},
		{"", false},
	})
	hex := strings.Repeat("0123456789abcdef", 4)
	run(t, "Token", Token, []tcase{
		{hex, true},
		{strings.Repeat("f", 64), true},
		{hex[:63], false},
		{hex + "a", false},
		{strings.ToUpper(hex), false},
		{strings.Repeat("g", 64), false},
		{"", false},
	})
	run(t, "UUID", UUID, []tcase{
		{"1b4e28ba-2fa1-4d2e-883f-0016d3cca427", true},
		{"00000000-0000-4000-8000-000000000000", true},
		{"ffffffff-ffff-4fff-bfff-ffffffffffff", true},
		{"1B4E28BA-2FA1-4D2E-883F-0016D3CCA427", true},  // upper case is well formed
		{"00000000-0000-0000-0000-000000000000", true},  // the nil UUID
		{"1b4e28ba-2fa1-1d2e-883f-0016d3cca427", true},  // v1
		{"1b4e28ba-2fa1-4d2e-c83f-0016d3cca427", true},  // any variant
		{"1b4e28ba-2fa1-4d2e-883f-0016d3cca42", false},  // short
		{"1b4e28ba2fa1-4d2e-883f-0016d3cca4270", false}, // dash misplaced
		{"1b4e28ba-2fa1-4d2e-883f-0016d3cca42g", false},
		{"{1b4e28ba-2fa1-4d2e-883f-0016d3cca427}", false},
		{"1b4e28ba2fa14d2e883f0016d3cca427", false},
		{"1b4e28ba-2fa1-4d2e-883f-0016d3cca42", false},
		{"{1b4e28ba-2fa1-4d2e-883f-0016d3cca427}", false},
		{"", false},
	})
	run(t, "FQDN", FQDN, []tcase{
		{"app.example.com", true},
		{"localhost", true},
		{"app.demo.localhost", true},
		{"xn--bcher-kva.example", true},
		{"App.example.com", false},
		{"app.example.com.", false},
		{"app..com", false},
		{"*.example.com", false},
		{"app.example.com;", false},
		{"app example.com", false},
		{"", false},
	})
}

// checkSafe is the common fuzz property: accepted values are safe in an
// nginx config and as a path component, and bounded in length.
func checkSafe(t *testing.T, name, s string, max int) {
	t.Helper()
	if unsafeForConfig(s) {
		t.Fatalf("%s accepted unsafe value %q", name, s)
	}
	if len(s) > max || len(s) == 0 {
		t.Fatalf("%s accepted value of length %d: %q", name, len(s), s)
	}
	if s == "." || s == ".." {
		t.Fatalf("%s accepted path element %q", name, s)
	}
}

func FuzzDomain(f *testing.F) {
	for _, s := range []string{"example.com", "Example.COM", "a.b.co", "-a.com", "a..com", "a.com;", "a.c0m", "ex ample.com", "a.com\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if Domain(s) != nil {
			return
		}
		checkSafe(t, "Domain", s, MaxHostnameLen)
		low := strings.ToLower(s)
		if FQDN(low) != nil || CertName(low) != nil {
			t.Fatalf("lower-cased domain %q is not an FQDN/cert name", low)
		}
		if Email("admin@"+s) != nil && len(s) <= MaxEmailLen-6 {
			t.Fatalf("admin@%s rejected", s)
		}
	})
}

func FuzzEmail(f *testing.F) {
	for _, s := range []string{"a@example.com", "a.b+c@x.io", "@x.io", "a@b", "a b@x.io", "a@x.io\n", "a\"@x.io"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if Email(s) != nil {
			return
		}
		checkSafe(t, "Email", s, MaxEmailLen)
		if strings.Count(s, "@") != 1 {
			t.Fatalf("Email accepted %q with %d @", s, strings.Count(s, "@"))
		}
		if Domain(s[strings.IndexByte(s, '@')+1:]) != nil {
			t.Fatalf("Email accepted %q with a bad domain", s)
		}
	})
}

func FuzzSubdomain(f *testing.F) {
	for _, s := range []string{"app", "a-b", "-a", "a-", "A", "a.b", "..", "a/b", long63, long64, "xn--80ak6aa92e", "ab--c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if Subdomain(s) != nil {
			return
		}
		checkSafe(t, "Subdomain", s, MaxLabelLen)
		if strings.ContainsAny(s, ".:_") || s != strings.ToLower(s) || strings.HasPrefix(s, "xn--") {
			t.Fatalf("Subdomain accepted %q", s)
		}
		if FQDN(s+".example.com") != nil {
			t.Fatalf("subdomain %q does not make a valid fqdn", s)
		}
	})
}

func FuzzLabels(f *testing.F) {
	for _, s := range []string{"home", "agent:home", "-x", ":x", "a b", "a/b", "A", strings.Repeat("a", 151)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if AgentLabel(s) == nil {
			checkSafe(t, "AgentLabel", s, 50)
			if AgentLabelParam(s) != nil || strings.Contains(s, ":") {
				t.Fatalf("AgentLabel %q not accepted as a param or contains ':'", s)
			}
		}
		if TunnelAgentLabel(s) == nil {
			checkSafe(t, "TunnelAgentLabel", s, 63)
			if AgentLabelParam(s) != nil {
				t.Fatalf("TunnelAgentLabel %q not accepted as a param", s)
			}
		}
		if AgentLabelParam(s) == nil {
			checkSafe(t, "AgentLabelParam", s, 150)
		}
	})
}

func FuzzTargetHost(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "::1", "[::1]", "localhost", "a:80", "http://x", "fe80::1%lo", "999.1.1.1", "a b", "1.2.3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if TargetHost(s) != nil {
			return
		}
		checkSafe(t, "TargetHost", s, MaxHostnameLen)
		if strings.ContainsAny(s, "[]%@") {
			t.Fatalf("TargetHost accepted %q", s)
		}
		if strings.Contains(s, ":") {
			if a, err := netip.ParseAddr(s); err != nil || !a.Is6() {
				t.Fatalf("TargetHost accepted %q with a colon that is not IPv6", s)
			}
		} else if a, err := netip.ParseAddr(s); err != nil {
			if FQDN(s) != nil {
				t.Fatalf("TargetHost accepted %q that is neither an IP nor an FQDN", s)
			}
		} else if !a.Is4() {
			t.Fatalf("TargetHost accepted %q", s)
		}
	})
}

func FuzzUsername(f *testing.F) {
	for _, s := range []string{"admin", "a", "ab", "Admin", "a b", "a;b", "a/b", "..", strings.Repeat("a", 33)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if Username(s) != nil {
			return
		}
		checkSafe(t, "Username", s, 32)
		if len(s) < 2 || strings.ContainsAny(s, ".:,") {
			t.Fatalf("Username accepted %q", s)
		}
	})
}

func FuzzSystemUser(f *testing.F) {
	for _, s := range []string{"portlama", "sam", "john.doe", "_svc", "a", "", "1sam", "-sam", "Sam", "a..b", "a b", "a;b", "a/b", strings.Repeat("a", 33)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if SystemUser(s) != nil {
			return
		}
		checkSafe(t, "SystemUser", s, 32)
		if s == "" || !(s[0] >= 'a' && s[0] <= 'z' || s[0] == '_') || strings.ContainsAny(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ:,@") {
			t.Fatalf("SystemUser accepted %q", s)
		}
	})
}

func FuzzGroupName(f *testing.F) {
	for _, s := range []string{"admins", "a,b", "a b", "", "Dev.Team"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if GroupName(s) != nil {
			return
		}
		// ".." is allowed by the contract's group pattern; groups never
		// reach paths. Check everything else.
		if unsafeForConfig(strings.ReplaceAll(s, ".", "x")) || strings.Contains(s, ",") || len(s) > 64 || s == "" {
			t.Fatalf("GroupName accepted %q", s)
		}
	})
}

func FuzzDisplayName(f *testing.F) {
	for _, s := range []string{"John", "a\nb", "\xff", "", "日本", "a\u202eb", "\u200b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if DisplayName(s) != nil {
			return
		}
		if !utf8.ValidString(s) || strings.ContainsAny(s, "\x00\r\n\t\x7f") || utf8.RuneCountInString(s) > 100 {
			t.Fatalf("DisplayName accepted %q", s)
		}
		for _, r := range s {
			if unicode.Is(unicode.Cf, r) || unicode.IsControl(r) {
				t.Fatalf("DisplayName accepted %q with %U", s, r)
			}
		}
	})
}

func FuzzCertNameFQDN(f *testing.F) {
	for _, s := range []string{"a.b", "example.com", "a", "*.a.b", "../x", "a.b.", "A.b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if CertName(s) == nil {
			checkSafe(t, "CertName", s, MaxHostnameLen)
			if !strings.Contains(s, ".") || FQDN(s) != nil {
				t.Fatalf("CertName accepted %q", s)
			}
		}
		if FQDN(s) == nil {
			checkSafe(t, "FQDN", s, MaxHostnameLen)
			if s != strings.ToLower(s) {
				t.Fatalf("FQDN accepted upper case %q", s)
			}
		}
	})
}

func FuzzTokenUUID(f *testing.F) {
	f.Add(strings.Repeat("ab", 32))
	f.Add("1b4e28ba-2fa1-4d2e-883f-0016d3cca427")
	f.Add("1B4E28BA-2FA1-4D2E-883F-0016D3CCA427")
	f.Add("00000000-0000-0000-0000-000000000000")
	f.Fuzz(func(t *testing.T, s string) {
		if Token(s) == nil {
			checkSafe(t, "Token", s, 64)
			if len(s) != 64 || strings.Trim(s, "0123456789abcdef") != "" {
				t.Fatalf("Token accepted %q", s)
			}
		}
		if UUID(s) == nil {
			checkSafe(t, "UUID", s, 36)
			if strings.Trim(s, "0123456789abcdefABCDEF-") != "" || strings.Count(s, "-") != 4 || s[8] != '-' || s[23] != '-' {
				t.Fatalf("UUID accepted %q", s)
			}
		}
	})
}
