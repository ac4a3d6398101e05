package sitepath

import (
	"bytes"
	"errors"
	"io"
	"mime/multipart"
	"net/textproto"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/portlama/portlama/internal/errkind"
)

func TestClean(t *testing.T) {
	for _, tc := range []struct {
		in   string
		root bool
		want string // cleaned path, or the error message
		ok   bool
	}{
		{"index.html", false, "index.html", true},
		{"a/b/c.css", false, "a/b/c.css", true},
		{"./a//b/", false, "a/b", true},
		{"a/../b.js", false, "b.js", true},
		{`a\b.js`, false, "a/b.js", true},
		{".", true, ".", true},
		{"a/..", true, ".", true},
		{"", false, MsgPathRequired, false},
		{"a\x00b", false, MsgPathNull, false},
		{"/etc/passwd", false, MsgPathAbsolute, false},
		{`\etc\passwd`, false, MsgPathAbsolute, false},
		{"..", true, MsgPathTraversal, false},
		{"../x.html", false, MsgPathTraversal, false},
		{"a/../../x.html", false, MsgPathTraversal, false},
		{`..\x.html`, false, MsgPathTraversal, false},
		{"a/..b", false, MsgPathTraversal, false},
		{".env", false, MsgPathHidden, false},
		{"a/.git/config", false, MsgPathHidden, false},
		{"a/.hidden/x.css", true, MsgPathHidden, false},
		{".", false, MsgPathRoot, false},
		{"a/..", false, MsgPathRoot, false},
		{"a\nb.html", false, MsgPathControl, false},
		{"x\u202egnp.html", false, MsgPathControl, false},
		{"\xff.html", false, MsgPathUTF8, false},
		{strings.Repeat("a", 256) + ".html", false, MsgPathLong, false},
		{strings.Repeat("a/", 520) + "x.html", false, MsgPathLong, false},
	} {
		got, err := Clean(tc.in, tc.root)
		if tc.ok {
			if err != nil || got != tc.want {
				t.Errorf("Clean(%q, %v) = %q, %v; want %q", tc.in, tc.root, got, err, tc.want)
			}
			continue
		}
		if err == nil || errkind.Message(err) != tc.want || !errors.Is(err, errkind.Invalid) {
			t.Errorf("Clean(%q, %v) = %q, %v; want the error %q", tc.in, tc.root, got, err, tc.want)
		}
	}
}

func TestUploadAndExtensions(t *testing.T) {
	for _, tc := range []struct{ dir, name, want string }{
		{".", "index.html", "index.html"},
		{".", "assets/app.3f9a2b1c.JS", "assets/app.3f9a2b1c.JS"},
		{"docs", "guide/intro.md", "docs/guide/intro.md"},
		{".", "noext", "File 'noext' has no extension and is not allowed"},
		{".", "trailing.", "File 'trailing.' has no extension and is not allowed"},
		{".", "evil.PHP", "File 'evil.PHP' has disallowed extension '.php'"},
		{".", "archive.tar.gz", "File 'archive.tar.gz' has disallowed extension '.gz'"},
		{".", "../x.html", MsgPathTraversal},
		{"docs", "../../x.html", MsgPathTraversal},
		{".", "/abs.html", MsgPathAbsolute},
		{".", ".htaccess", MsgPathHidden},
		{".", "a/.well-known/x.txt", MsgPathHidden},
		{".", "", MsgPathRequired},
	} {
		got, err := Upload(tc.dir, tc.name)
		if err != nil {
			got = errkind.Message(err)
		}
		if got != tc.want {
			t.Errorf("Upload(%q, %q) = %q, want %q", tc.dir, tc.name, got, tc.want)
		}
	}
}

// partHeaders builds the headers of one part with the given
// Content-Disposition, through mime/multipart's own parser.
func partHeaders(t testing.TB, cd string) (textproto.MIMEHeader, bool) {
	var b bytes.Buffer
	b.WriteString("--B\r\nContent-Disposition: " + cd + "\r\n\r\nx\r\n--B--\r\n")
	p, err := multipart.NewReader(&b, "B").NextPart()
	if err != nil {
		return nil, false
	}
	io.Copy(io.Discard, p)
	return p.Header, true
}

func TestPartFileName(t *testing.T) {
	for _, tc := range []struct {
		cd     string
		name   string
		isFile bool
		bad    bool
	}{
		{`form-data; name="file"; filename="a/b/index.html"`, "a/b/index.html", true, false},
		{`form-data; name="file"; filename="../../etc/x.html"`, "../../etc/x.html", true, false}, // kept, refused by Upload
		{`form-data; name="f"; filename*=UTF-8''caf%C3%A9.html`, "café.html", true, false},
		{`form-data; name="f"; filename="sub\\x.css"`, `sub\x.css`, true, false},
		{`form-data; name="field"`, "", false, false},
		{`form-data; name="file"; filename=""`, "", false, false},
		{`form-data; name="file"; filename="a.html`, "", false, true},
	} {
		h, ok := partHeaders(t, tc.cd)
		if !ok {
			t.Fatalf("multipart could not read %q", tc.cd)
		}
		name, isFile, err := PartFileName(h)
		if (err != nil) != tc.bad || name != tc.name || isFile != tc.isFile {
			t.Errorf("PartFileName(%q) = %q, %v, %v; want %q, %v, bad=%v", tc.cd, name, isFile, err, tc.name, tc.isFile, tc.bad)
		}
	}
}

// checkAccepted asserts what every accepted path promises.
func checkAccepted(t *testing.T, in, clean string, root bool) {
	t.Helper()
	if clean == "." {
		if !root {
			t.Fatalf("%q: the root accepted as a file path", in)
		}
		return
	}
	if clean == "" || strings.HasPrefix(clean, "/") || path.Clean(clean) != clean || strings.Contains(clean, `\`) {
		t.Fatalf("%q → %q: not a clean relative path", in, clean)
	}
	for _, c := range strings.Split(clean, "/") {
		if c == ".." || strings.HasPrefix(c, ".") || c == "" {
			t.Fatalf("%q → %q: component %q", in, clean, c)
		}
	}
	if !utf8.ValidString(clean) || strings.ContainsAny(clean, "\x00\r\n") {
		t.Fatalf("%q → %q: bad characters", in, clean)
	}
	// Joined to a root it stays strictly below it.
	base := "/srv/www/site"
	j := filepath.Join(base, filepath.FromSlash(clean))
	if !strings.HasPrefix(j, base+"/") {
		t.Fatalf("%q → %q leaves the root: %s", in, clean, j)
	}
}

func FuzzClean(f *testing.F) {
	for _, s := range []string{"index.html", "a/b/c.css", "../x", "a/../../b", ".", "..", "/abs", `..\x`, ".git/x", "a//b/", "a\x00b", "x\u202e.html", "\xff", "a/..b"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, p string, root bool) {
		clean, err := Clean(p, root)
		if err != nil {
			if !errors.Is(err, errkind.Invalid) || errkind.Message(err) == "" {
				t.Fatalf("%q: error without kind or message: %v", p, err)
			}
			return
		}
		checkAccepted(t, p, clean, root)
		// Idempotent.
		if again, err := Clean(clean, root); err != nil || again != clean {
			t.Fatalf("Clean(Clean(%q)) = %q, %v; want %q", p, again, err, clean)
		}
	})
}

// FuzzPartFileName runs arbitrary Content-Disposition values through
// mime/multipart and the part name rules: an accepted upload path is
// clean, below the root and has an allowed extension.
func FuzzPartFileName(f *testing.F) {
	for _, s := range []string{
		`form-data; name="file"; filename="index.html"`,
		`form-data; name="file"; filename="../../etc/cron.d/x.html"`,
		`form-data; name="file"; filename="/etc/x.css"`,
		`form-data; name="file"; filename="a\\..\\..\\x.js"`,
		`form-data; name="file"; filename*=UTF-8''%2e%2e%2fx.html`,
		`form-data; name="file"; filename*=UTF-8''a%00b.html`,
		`form-data; name="file"; filename=".env"`,
		`form-data; name="file"; filename="x.php"`,
		`form-data; name=field`,
	} {
		f.Add(s, "docs")
		f.Add(s, ".")
	}
	f.Fuzz(func(t *testing.T, cd, dir string) {
		if strings.ContainsAny(cd, "\r\n") {
			return // not one header line
		}
		h, ok := partHeaders(t, cd)
		if !ok {
			return
		}
		name, isFile, err := PartFileName(h)
		if err != nil || !isFile {
			return
		}
		cleanDir, err := Clean(dir, true)
		if err != nil {
			return
		}
		rel, err := Upload(cleanDir, name)
		if err != nil {
			return
		}
		checkAccepted(t, name, rel, false)
		if err := CheckExtension(rel, name); err != nil {
			t.Fatalf("%q accepted without an allowed extension: %v", rel, err)
		}
		if cleanDir != "." && !strings.HasPrefix(rel, cleanDir+"/") {
			t.Fatalf("%q stored outside the upload directory %q", rel, cleanDir)
		}
	})
}
