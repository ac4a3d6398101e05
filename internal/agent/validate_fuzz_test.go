package agent

import (
	"encoding/xml"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
)

func FuzzValidateLabel(f *testing.F) {
	for _, s := range []string{"home", "a", "-a", "a-", "Home", "../x", "a/b", strings.Repeat("a", 51), "agent:home", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidateLabel(s) != nil {
			return
		}
		// Accepted labels are safe as a directory name, a unit name and a
		// launchd label.
		if filepath.Base(s) != s || s == "." || s == ".." || strings.ContainsAny(s, "/\\ .:%$\"'\n") || len(s) > 50 {
			t.Fatalf("accepted label %q", s)
		}
	})
}

func FuzzNormalizePanelURL(f *testing.F) {
	for _, s := range []string{"https://203.0.113.7:9292", "https://panel.example.com/", "http://x", "https://", "https://a:99999", "https://u@h", "https://[::1]:9292", " https://h "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := NormalizePanelURL(s)
		if err != nil {
			return
		}
		u, err := url.Parse(n)
		if err != nil || u.Scheme != "https" || u.Hostname() == "" || u.User != nil || u.RawQuery != "" || strings.HasSuffix(n, "/") {
			t.Fatalf("%q normalised to %q", s, n)
		}
		again, err := NormalizePanelURL(n)
		if err != nil || again != n {
			t.Fatalf("not idempotent: %q → %q (%v)", n, again, err)
		}
	})
}

// FuzzServiceFiles: whatever path the agent lives at, the generated files
// carry it as one argument and cannot gain extra directives.
func FuzzServiceFiles(f *testing.F) {
	for _, s := range []string{"/home/ann/.portlama", "/x y/%h/$HOME", "/a\"b\\c", "/a\nExecStartPre=/bin/sh", "/a]]></string><string>x", "relative"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, home string) {
		spec := ServiceSpec{Label: "home", Executable: "/usr/local/bin/portlama-agent", Home: home, LogFile: "/tmp/agent.log"}
		unit, err := SystemdUnit(spec)
		if err != nil {
			return
		}
		if strings.Count(unit, "\nExecStart=") != 1 || strings.Count(unit, "\n[") != 3 {
			t.Fatalf("home %q changed the unit's structure:\n%s", home, unit)
		}
		var exec string
		for _, l := range strings.Split(unit, "\n") {
			if strings.HasPrefix(l, "ExecStart=") {
				exec = l
			}
		}
		if !strings.HasSuffix(exec, " "+systemdQuote(home)) {
			t.Fatalf("home %q not quoted as one word: %s", home, exec)
		}
		sys := spec
		sys.System, sys.User = true, "ann"
		if sysUnit, err := SystemdUnit(sys); err == nil {
			if strings.Count(sysUnit, "\nExecStart=") != 1 || strings.Count(sysUnit, "\n[") != 3 ||
				!strings.Contains(sysUnit, "\nReadWritePaths="+pathSetting(home)+"\n") {
				t.Fatalf("home %q changed the system unit's structure:\n%s", home, sysUnit)
			}
		} else if !strings.ContainsAny(home, `"\`) {
			t.Fatalf("the system unit refused %q, which the user unit takes: %v", home, err)
		}
		plist, err := LaunchdPlist(spec)
		if err != nil {
			t.Fatalf("systemd accepted %q but launchd refused: %v", home, err)
		}
		var doc struct {
			Args []string `xml:"dict>array>string"`
		}
		if err := xml.Unmarshal([]byte(plist), &doc); err != nil {
			t.Fatalf("plist for %q is not XML: %v", home, err)
		}
		if len(doc.Args) != 6 || doc.Args[5] != home {
			t.Fatalf("plist args for %q: %q", home, doc.Args)
		}
	})
}
