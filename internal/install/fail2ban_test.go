package install

import (
	"bytes"
	"log/slog"
	"regexp"
	"strings"
	"testing"
)

// failRegex is the filter's failregex as a Go regexp: fail2ban's <HOST>
// becomes a group; the rest is syntax Python and RE2 share.
func failRegex(t testing.TB) *regexp.Regexp {
	t.Helper()
	for _, line := range strings.Split(Fail2banFilter, "\n") {
		if re, ok := strings.CutPrefix(line, "failregex = "); ok {
			return regexp.MustCompile(strings.Replace(re, "<HOST>", `(?P<host>[0-9a-fA-F.:]+)`, 1))
		}
	}
	t.Fatal("the filter has no failregex")
	return nil
}

// authLine is a line as the auth server prints it: the slog text handler
// of the portlama binary (cmd/portlama newLogger), the attributes of
// internal/auth's failed-login messages.
func authLine(msg, user, ip string) string {
	var b bytes.Buffer
	slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelInfo})).Warn(msg, "user", user, "ip", ip)
	return strings.TrimSuffix(b.String(), "\n")
}

// fail2ban sees "<date> <host> <ident>[pid]: MESSAGE" from the journal.
const journalPrefix = "2026-12-03T14:00:00.000000+0000 droplet portlama[412]: "

func TestFail2banFilter(t *testing.T) {
	re := failRegex(t)
	host := func(line string) string {
		m := re.FindStringSubmatch(line)
		if m == nil {
			return ""
		}
		return m[re.SubexpIndex("host")]
	}
	for _, c := range []struct {
		msg, user, ip, want string
	}{
		{"first factor failed", "alice", "203.0.113.9", "203.0.113.9"},
		{"second factor failed", "alice", "2001:db8::7", "2001:db8::7"},
		{"login refused: banned or too many attempts", "alice", "203.0.113.9", "203.0.113.9"},
		{"login refused: banned", "bob", "203.0.113.9", "203.0.113.9"},
		{"second factor refused: banned", "bob", "203.0.113.9", "203.0.113.9"},
		// What a visitor types cannot move the ban to another address.
		{"first factor failed", "x ip=198.51.100.1", "203.0.113.9", "203.0.113.9"},
		{"first factor failed", `x" ip=198.51.100.1`, "203.0.113.9", "203.0.113.9"},
		{"first factor failed", "x\nip=198.51.100.1", "203.0.113.9", "203.0.113.9"},
		{"first factor failed", "", "203.0.113.9", "203.0.113.9"},
		// Not login failures.
		{"cross-origin write refused", "alice", "203.0.113.9", ""},
	} {
		line := journalPrefix + authLine(c.msg, c.user, c.ip)
		if got := host(line); got != c.want {
			t.Errorf("%q: host %q, want %q", line, got, c.want)
		}
	}
	// An info line with the same words is not a failure.
	if host(journalPrefix+`time=x level=INFO msg="first factor failed" user=a ip=203.0.113.9`) != "" {
		t.Error("an INFO line matched")
	}
}

// FuzzFail2banFilter: for any user name the filter bans the address the
// auth server logged, or nothing.
func FuzzFail2banFilter(f *testing.F) {
	for _, s := range []string{"alice", "x ip=1.2.3.4", `a"b`, "\\\" ip=9.9.9.9", "ip=", "\x00", "é ü"} {
		f.Add(s)
	}
	re := failRegex(f)
	f.Fuzz(func(t *testing.T, user string) {
		line := journalPrefix + authLine("first factor failed", user, "203.0.113.9")
		m := re.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("no match: %q", line)
		}
		if got := m[re.SubexpIndex("host")]; got != "203.0.113.9" {
			t.Fatalf("host %q from %q", got, line)
		}
	})
}
