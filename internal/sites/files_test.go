package sites

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"mime/multipart"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/errkind"
	"github.com/portlama/portlama/internal/sites/sitepath"
)

// part is one part of a test upload: a raw Content-Disposition (so any
// file name can be sent) and the content.
type part struct {
	cd      string
	content string
}

func filePart(name, content string) part {
	return part{cd: `form-data; name="file"; filename="` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(name) + `"`, content: content}
}

func multipartOf(t testing.TB, parts ...part) *multipart.Reader {
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for _, p := range parts {
		pw, err := w.CreatePart(map[string][]string{"Content-Disposition": {p.cd}})
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(pw, p.content)
	}
	w.Close()
	return multipart.NewReader(&b, w.Boundary())
}

// tree lists every path below dir (relative, sorted), hidden ones too.
func tree(t testing.TB, dir string) []string {
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			rel += "/"
		}
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	sort.Strings(out)
	return out
}

var admin = Caller{Admin: true}

func TestUploadListDelete(t *testing.T) {
	e := newEnv(t)
	site := e.create(t, api.CreateSiteRequest{Name: "blog", Type: api.SiteManaged})
	res, err := e.Upload(ctx, admin, site.ID, ".", multipartOf(t,
		part{cd: `form-data; name="note"`, content: "a form field is ignored"},
		filePart("index.html", "<h1>home</h1>"),
		filePart("assets/app.3f9a2b1c.js", "console.log(1)"),
		filePart("assets/img/logo.svg", "<svg/>"),
	))
	if err != nil || !res.OK || !slices.Equal(res.Files, []string{"index.html", "assets/app.3f9a2b1c.js", "assets/img/logo.svg"}) || res.Warning != "" {
		t.Fatalf("upload %+v %v", res, err)
	}
	// Into a directory.
	if _, err := e.Upload(ctx, admin, site.ID, "docs", multipartOf(t, filePart("guide/intro.md", "# hi"))); err != nil {
		t.Fatal(err)
	}
	if got, want := tree(t, site.RootPath), []string{"assets/", "assets/app.3f9a2b1c.js", "assets/img/", "assets/img/logo.svg", "docs/", "docs/guide/", "docs/guide/intro.md", "index.html"}; !slices.Equal(got, want) {
		t.Fatalf("tree %v, want %v", got, want)
	}
	data, _ := os.ReadFile(filepath.Join(site.RootPath, "index.html"))
	if string(data) != "<h1>home</h1>" {
		t.Fatalf("index.html = %q", data)
	}
	for _, p := range []string{"assets", "assets/img", "docs/guide", "assets/img/logo.svg"} {
		fi, _ := os.Stat(filepath.Join(site.RootPath, p))
		if want := map[bool]os.FileMode{true: 0o755, false: 0o644}[fi.IsDir()]; fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
	got, _ := e.Get(admin, site.ID)
	if want := int64(len("<h1>home</h1>") + len("console.log(1)") + len("<svg/>") + len("# hi")); got.TotalSize != want {
		t.Errorf("totalSize %d, want %d", got.TotalSize, want)
	}

	list, err := e.Files(admin, site.ID, ".", false)
	if err != nil || list.Path != "." {
		t.Fatal(err)
	}
	var names []string
	for _, f := range list.Files {
		names = append(names, string(f.Type)+":"+f.RelativePath)
	}
	if want := []string{"directory:assets", "directory:docs", "file:index.html"}; !slices.Equal(names, want) {
		t.Fatalf("list %v, want %v", names, want)
	}
	rec, err := e.Files(admin, site.ID, "assets", true)
	sum := sha256.Sum256([]byte("console.log(1)"))
	if err != nil || len(rec.Files) != 3 || rec.Files[0].RelativePath != "assets/app.3f9a2b1c.js" ||
		rec.Files[0].SHA256 != hex.EncodeToString(sum[:]) || rec.Files[1].Type != api.SiteFileDirectory || rec.Files[1].SHA256 != "" {
		t.Fatalf("recursive %+v %v", rec, err)
	}
	_, err = e.Files(admin, site.ID, "index.html", false)
	wantErr(t, err, errkind.Invalid, "Path is not a directory")
	_, err = e.Files(admin, site.ID, "nope", false)
	wantErr(t, err, errkind.NotFound, "Path not found")
	_, err = e.Files(admin, site.ID, "../", false)
	wantErr(t, err, errkind.Invalid, sitepath.MsgPathTraversal)

	if err := e.DeleteFile(ctx, admin, site.ID, "assets"); err != nil {
		t.Fatal(err)
	}
	err = e.DeleteFile(ctx, admin, site.ID, ".")
	wantErr(t, err, errkind.Invalid, sitepath.MsgPathRoot)
	err = e.DeleteFile(ctx, admin, site.ID, "assets")
	wantErr(t, err, errkind.NotFound, "File not found")
	if got, want := tree(t, site.RootPath), []string{"docs/", "docs/guide/", "docs/guide/intro.md", "index.html"}; !slices.Equal(got, want) {
		t.Fatalf("tree after delete %v", got)
	}
	if got, _ := e.Get(admin, site.ID); got.TotalSize != int64(len("<h1>home</h1>")+len("# hi")) {
		t.Errorf("totalSize after delete %d", got.TotalSize)
	}
}

// Every file rule refuses its case with 400, and nothing is written
// outside the site root (or inside it) by a refused part.
func TestUploadRulesWriteNothingOutsideTheRoot(t *testing.T) {
	e := newEnv(t)
	site := e.create(t, api.CreateSiteRequest{Name: "blog", Type: api.SiteManaged})
	parent := filepath.Dir(e.www)
	before := tree(t, parent)
	for _, tc := range []struct {
		dir  string
		name string
		msg  string
	}{
		{".", "../evil.html", "Upload failed: " + sitepath.MsgPathTraversal},
		{".", "a/../../evil.html", "Upload failed: " + sitepath.MsgPathTraversal},
		{".", `..\..\evil.html`, "Upload failed: " + sitepath.MsgPathTraversal},
		{".", "/tmp/evil.html", "Upload failed: " + sitepath.MsgPathAbsolute},

		{".", ".htaccess.html", "Upload failed: " + sitepath.MsgPathHidden},
		{".", "x/.git/config.txt", "Upload failed: " + sitepath.MsgPathHidden},
		{".", "shell.php", "Upload failed: File 'shell.php' has disallowed extension '.php'"},
		{".", "README", "Upload failed: File 'README' has no extension and is not allowed"},
		{".", "index.html/x.css", "Upload failed: 'index.html' is a file, not a directory"},
		{"../..", "x.html", sitepath.MsgPathTraversal},
		{"/etc", "x.html", sitepath.MsgPathAbsolute},
		{".git", "x.html", sitepath.MsgPathHidden},
		{"a\x00", "x.html", sitepath.MsgPathNull},
	} {
		_, err := e.Upload(ctx, admin, site.ID, tc.dir, multipartOf(t, filePart(tc.name, "pwned")))
		wantErr(t, err, errkind.Invalid, tc.msg)
	}
	// A NUL byte can come only percent-encoded (RFC 5987).
	_, err := e.Upload(ctx, admin, site.ID, ".", multipartOf(t, part{cd: `form-data; name="file"; filename*=UTF-8''a%00.html`, content: "x"}))
	wantErr(t, err, errkind.Invalid, "Upload failed: "+sitepath.MsgPathNull)
	// The whole tree around the sites: only the site's own index.html.
	after := tree(t, parent)
	if !slices.Equal(before, after) {
		t.Fatalf("files changed by refused uploads:\nbefore %v\nafter  %v", before, after)
	}
	// A part that breaks a rule ends the upload; those before it stay.
	_, err = e.Upload(ctx, admin, site.ID, ".", multipartOf(t, filePart("ok.css", "a{}"), filePart("../x.html", "no"), filePart("late.css", "b{}")))
	wantErr(t, err, errkind.Invalid, "Upload failed: "+sitepath.MsgPathTraversal)
	if got := tree(t, site.RootPath); !slices.Equal(got, []string{"index.html", "ok.css"}) {
		t.Fatalf("tree %v", got)
	}
	// An upload without file parts.
	_, err = e.Upload(ctx, admin, site.ID, ".", multipartOf(t, part{cd: `form-data; name="x"`, content: "y"}))
	wantErr(t, err, errkind.Invalid, "Upload failed: the request has no file parts")
}

func TestUploadLimits(t *testing.T) {
	e := newEnv(t) // maxSiteSize 1 MiB
	site := e.create(t, api.CreateSiteRequest{Name: "blog", Type: api.SiteManaged})
	big := strings.Repeat("x", 1<<20)
	res, err := e.Upload(ctx, admin, site.ID, ".", multipartOf(t, filePart("big.txt", big)))
	if err != nil || res.TotalSize == nil || *res.TotalSize <= 1<<20 ||
		res.Warning != "Site size ("+sitepath.FormatSize(*res.TotalSize)+") exceeds the 1.0 MiB limit." {
		t.Fatalf("over maxSiteSize: %+v %v", res, err)
	}
	// A file over 50 MiB is refused and leaves no temporary file.
	r := &repeatReader{n: sitepath.MaxFileSize + 1}
	pr, pw := io.Pipe()
	w := multipart.NewWriter(pw)
	go func() {
		fw, _ := w.CreateFormFile("file", "huge.bin.txt")
		io.Copy(fw, r)
		w.Close()
		pw.Close()
	}()
	_, err = e.Upload(ctx, admin, site.ID, ".", multipart.NewReader(pr, w.Boundary()))
	pr.Close()
	wantErr(t, err, errkind.Invalid, "Upload failed: File 'huge.bin.txt' is larger than 50.0 MiB")
	if got := tree(t, site.RootPath); !slices.Equal(got, []string{"big.txt", "index.html"}) {
		t.Fatalf("tree %v", got)
	}
}

type repeatReader struct{ n int64 }

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	for i := range p {
		p[i] = 'a'
	}
	r.n -= int64(len(p))
	return len(p), nil
}

// A symbolic link planted in a site root (by someone with shell access)
// cannot lead an upload outside it.
func TestUploadDoesNotFollowLinksOut(t *testing.T) {
	e := newEnv(t)
	site := e.create(t, api.CreateSiteRequest{Name: "blog", Type: api.SiteManaged})
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(site.RootPath, "out")); err != nil {
		t.Fatal(err)
	}
	_, err := e.Upload(ctx, admin, site.ID, ".", multipartOf(t, filePart("out/x.html", "pwned")))
	if err == nil || !errors.Is(err, errkind.Failed) && !errors.Is(err, errkind.Invalid) {
		t.Fatalf("upload through a link: %v", err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatalf("written outside the root: %v", entries)
	}
}

// FuzzUpload sends one part with an arbitrary file name (and upload
// directory) through the whole upload path onto a real disk: a refused
// part writes nothing, an accepted one lands below the site root, and
// nothing ever appears outside it.
func FuzzUpload(f *testing.F) {
	for _, s := range []string{"index.html", "a/b.css", "../x.html", "..\\x.html", "/abs.html", ".env", "x.php", "a/./b/../c.js", "a//b.js", "é.html", "a\u202e.html", "CON.html", "a:b.html"} {
		f.Add(s, ".")
		f.Add(s, "sub/dir")
	}
	f.Fuzz(func(t *testing.T, name, dir string) {
		if strings.ContainsAny(name, "\r\n") {
			return // cannot be one header line
		}
		e := newEnv(t)
		site := e.create(t, api.CreateSiteRequest{Name: "blog", Type: api.SiteManaged})
		parent := filepath.Dir(e.www)
		res, err := e.Upload(ctx, admin, site.ID, dir, multipartOf(t, filePart(name, "x")))
		var outside []string
		for _, p := range tree(t, parent) {
			if p != "sites.json" && p != "sites.json.lock" && p != "www/" && !strings.HasPrefix(p, "www/"+site.ID+"/") {
				outside = append(outside, p)
			}
		}
		if len(outside) > 0 {
			t.Fatalf("name %q dir %q wrote outside the root: %v", name, dir, outside)
		}
		inside := tree(t, site.RootPath)
		if err != nil {
			if !errors.Is(err, errkind.Invalid) {
				t.Fatalf("name %q dir %q: %v", name, dir, err)
			}
			if !slices.Equal(inside, []string{"index.html"}) {
				t.Fatalf("refused name %q dir %q left %v", name, dir, inside)
			}
			return
		}
		if len(res.Files) != 1 || !slices.Contains(inside, res.Files[0]) {
			t.Fatalf("name %q dir %q: stored %v, tree %v", name, dir, res.Files, inside)
		}
		for _, p := range inside {
			if strings.Contains(p, "/.") || strings.HasPrefix(p, ".") {
				t.Fatalf("hidden entry %q after uploading %q", p, name)
			}
		}
	})
}
