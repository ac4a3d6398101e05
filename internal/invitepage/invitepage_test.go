package invitepage

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/portlama/portlama/internal/testutil"
)

func TestWrite(t *testing.T) {
	www := filepath.Join(t.TempDir(), "www")
	// a stale file with a wrong mode is replaced
	if err := os.MkdirAll(filepath.Join(www, Dir), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(www, Dir, "index.html"), []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(www); err != nil {
		t.Fatal(err)
	}
	if err := Write(www); err != nil { // idempotent
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(www, Dir))
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("directory mode %v, %v", fi.Mode().Perm(), err)
	}
	want := map[string]bool{"index.html": true, "invite.js": true, "invite.css": true}
	entries, err := os.ReadDir(filepath.Join(www, Dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(want) {
		t.Fatalf("files %v, want %v", entries, want)
	}
	for _, e := range entries {
		if !want[e.Name()] {
			t.Errorf("unexpected file %s", e.Name())
		}
		info, _ := e.Info()
		if info.Mode().Perm() != 0o644 {
			t.Errorf("%s mode %v, want 0644", e.Name(), info.Mode().Perm())
		}
		embedded, _ := fs.ReadFile(Files(), e.Name())
		got, _ := os.ReadFile(filepath.Join(www, Dir, e.Name()))
		if string(got) != string(embedded) {
			t.Errorf("%s differs from the embedded file", e.Name())
		}
	}
}

// TestPageFitsCSP checks what the CSP of docs/architecture.md, "The portal vhost" would block in a
// browser: inline scripts, inline styles, event-handler attributes and
// resources from other origins.
func TestPageFitsCSP(t *testing.T) {
	html, err := fs.ReadFile(Files(), "index.html")
	if err != nil {
		t.Fatal(err)
	}
	page := string(html)
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`), // inline script body
		regexp.MustCompile(`<script(?:(?:\s+[a-z-]+(?:="[^"]*")?)*)\s*>`),
		regexp.MustCompile(`<style`),
		regexp.MustCompile(`\sstyle=`),
		regexp.MustCompile(`\son[a-z]+=`),
		regexp.MustCompile(`(?:src|href)="(?:https?:)?//`),
		regexp.MustCompile(`javascript:`),
	} {
		if m := bad.FindString(page); m != "" && !strings.Contains(m, "src=") {
			t.Errorf("index.html contains %q, which the CSP blocks", m)
		}
	}
	for _, ref := range regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(page, -1) {
		u := ref[1]
		if u == "/" {
			continue
		}
		name, ok := strings.CutPrefix(u, "/invite/")
		if !ok {
			t.Errorf("reference %q is not under /invite/", u)
			continue
		}
		if _, err := fs.Stat(Files(), name); err != nil {
			t.Errorf("reference %q: %v", u, err)
		}
	}
	js, _ := fs.ReadFile(Files(), "invite.js")
	for _, bad := range []string{"eval(", "new Function", "innerHTML", "http://", "https://cdn", "document.write", "pathname.split", "'/api/invite/' + token"} {
		if strings.Contains(string(js), bad) {
			t.Errorf("invite.js contains %q", bad)
		}
	}
	for _, need := range []string{"/api/invite/lookup", "/api/invite/accept", "location.hash", "totpQr", "loginUrl"} {
		if !strings.Contains(string(js), need) {
			t.Errorf("invite.js lacks %q", need)
		}
	}
	for _, need := range []string{"Account Created", "Go to Login", `id="qr"`, `id="manual-key"`, `id="confirm"`} {
		if !strings.Contains(page, need) {
			t.Errorf("index.html lacks %q", need)
		}
	}
}

// TestScriptSyntax runs node --check on invite.js when node is installed.
func TestScriptSyntax(t *testing.T) {
	node := testutil.NeedBinary(t, "node")
	path := filepath.Join(t.TempDir(), "invite.js")
	js, _ := fs.ReadFile(Files(), "invite.js")
	if err := os.WriteFile(path, js, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(node, "--check", path).CombinedOutput(); err != nil {
		t.Fatalf("node --check: %v\n%s", err, out)
	}
}
