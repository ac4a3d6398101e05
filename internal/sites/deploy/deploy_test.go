package deploy

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/portlama/portlama/internal/api"
)

func TestToDelete(t *testing.T) {
	local := []localFile{{rel: "index.html"}, {rel: "assets/app.js"}}
	remote := []api.SiteFile{
		{RelativePath: "index.html", Type: api.SiteFileRegular},
		{RelativePath: "assets", Type: api.SiteFileDirectory},
		{RelativePath: "assets/app.js", Type: api.SiteFileRegular},
		{RelativePath: "assets/old.js", Type: api.SiteFileRegular},
		{RelativePath: "old", Type: api.SiteFileDirectory},
		{RelativePath: "old/a.html", Type: api.SiteFileRegular},
		{RelativePath: "old/deep", Type: api.SiteFileDirectory},
		{RelativePath: "old/deep/b.css", Type: api.SiteFileRegular},
	}
	if got, want := toDelete(local, remote), []string{"assets/old.js", "old"}; !slices.Equal(got, want) {
		t.Fatalf("toDelete = %v, want %v", got, want)
	}
}

func TestBatches(t *testing.T) {
	files := []localFile{{rel: "a", size: 10}, {rel: "b", size: 10}, {rel: "c", size: 25}, {rel: "d", size: 1}, {rel: "e", size: 1}}
	var got [][]string
	for _, b := range batches(files, 20, 2) {
		var names []string
		for _, f := range b {
			names = append(names, f.rel)
		}
		got = append(got, names)
	}
	want := [][]string{{"a", "b"}, {"c"}, {"d", "e"}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("batches %v, want %v", got, want)
	}
}

func TestScanSkipsWhatTheRelayRefuses(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"index.html", ".DS_Store", ".git/config", "a/b.css", "LICENSE", "x.exe"} {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(dir, p), []byte("x"), 0o644)
	}
	os.Symlink("index.html", filepath.Join(dir, "link.html"))
	var skipped []string
	files, n, err := scan(dir, func(e Event) { skipped = append(skipped, e.Path) })
	if err != nil {
		t.Fatal(err)
	}
	var rels []string
	for _, f := range files {
		rels = append(rels, f.rel)
	}
	slices.Sort(skipped)
	if !slices.Equal(rels, []string{"a/b.css", "index.html"}) || n != 5 ||
		!slices.Equal(skipped, []string{".DS_Store", ".git/", "LICENSE", "link.html", "x.exe"}) {
		t.Fatalf("files %v, skipped %d %v", rels, n, skipped)
	}
	big := filepath.Join(dir, "big.mp4")
	f, _ := os.Create(big)
	f.Truncate(50<<20 + 1)
	f.Close()
	if _, _, err := scan(dir, func(Event) {}); err == nil {
		t.Fatal("a file over 50 MiB was accepted")
	}
}
