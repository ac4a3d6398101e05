package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/testutil"
)

type counterDoc struct {
	Count   int      `json:"count"`
	Entries []string `json:"entries"`
	Padding string   `json:"padding"`
}

func TestLoadMissingIsZero(t *testing.T) {
	d := NewDoc[counterDoc](filepath.Join(t.TempDir(), "x.json"), 0o600)
	v, err := d.Load()
	if err != nil || v.Count != 0 || v.Entries != nil {
		t.Fatalf("Load of missing file = %+v, %v; want zero value, nil", v, err)
	}
}

func TestLoadCorruptIsErrorAndNotOverwritten(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.json")
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := NewDoc[counterDoc](path, 0o600)
	if _, err := d.Load(); err == nil {
		t.Fatal("Load of corrupt file succeeded")
	}
	if _, err := d.Update(func(v *counterDoc) error { v.Count++; return nil }); err == nil {
		t.Fatal("Update over a corrupt file succeeded")
	}
	data, _ := os.ReadFile(path)
	if string(data) != "{not json" {
		t.Fatalf("corrupt file was overwritten: %q", data)
	}
}

func TestWriteFormatAndMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.json")
	d := NewDoc[counterDoc](path, 0o640)
	if err := d.Save(counterDoc{Count: 1, Entries: []string{"<a>"}}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "{\n  \"count\": 1,\n  \"entries\": [\n    \"<a>\"\n  ],\n  \"padding\": \"\"\n}\n"
	if string(data) != want {
		t.Fatalf("file content = %q, want %q", data, want)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o640 {
		t.Fatalf("mode = %v, want 0640", st.Mode().Perm())
	}
	// The mode holds on every rewrite, whatever the file had before.
	os.Chmod(path, 0o666)
	if _, err := d.Update(func(v *counterDoc) error { v.Count++; return nil }); err != nil {
		t.Fatal(err)
	}
	st, _ = os.Stat(path)
	if st.Mode().Perm() != 0o640 {
		t.Fatalf("mode after rewrite = %v, want 0640", st.Mode().Perm())
	}
}

func TestUpdateErrorWritesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.json")
	d := NewDoc[counterDoc](path, 0o600)
	d.Save(counterDoc{Count: 7})
	boom := errors.New("boom")
	if _, err := d.Update(func(v *counterDoc) error { v.Count = 99; return boom }); !errors.Is(err, boom) {
		t.Fatalf("Update error = %v, want boom", err)
	}
	v, _ := d.Load()
	if v.Count != 7 {
		t.Fatalf("count = %d after failed update, want 7", v.Count)
	}
}

// A failure injected between writing the temporary file and renaming it
// leaves the old document intact and no temporary file behind.
func TestInjectedFailureBeforeRenameKeepsOldDocument(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.json")
	d := NewDoc[counterDoc](path, 0o600)
	if err := d.Save(counterDoc{Count: 1}); err != nil {
		t.Fatal(err)
	}
	d.beforeRename = func() error { return errors.New("power cut") }
	if _, err := d.Update(func(v *counterDoc) error { v.Count = 2; return nil }); err == nil {
		t.Fatal("Update succeeded despite injected failure")
	}
	v, err := d.Load()
	if err != nil || v.Count != 1 {
		t.Fatalf("after failure Load = %+v, %v; want count 1", v, err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Fatalf("temporary file left behind: %s", e.Name())
		}
	}
}

func TestConcurrentUpdatesLoseNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.json")
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			// A fresh Doc per goroutine, as separate handlers would have.
			d := NewDoc[counterDoc](path, 0o600)
			_, err := d.Update(func(v *counterDoc) error {
				v.Count++
				v.Entries = append(v.Entries, fmt.Sprint(i))
				return nil
			})
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	v, err := NewDoc[counterDoc](path, 0o600).Load()
	if err != nil {
		t.Fatal(err)
	}
	if v.Count != n || len(v.Entries) != n {
		t.Fatalf("count = %d, entries = %d; want %d each", v.Count, len(v.Entries), n)
	}
}

// TestKilledWriterNeverTearsDocument runs writers in child processes that
// rewrite a large document in a loop, kills them with SIGKILL at random
// moments, and checks after every kill that the document parses and is
// internally consistent. It also proves the flock excludes other processes:
// two children incrementing concurrently lose no increment.
func TestKilledWriterNeverTearsDocument(t *testing.T) {
	if os.Getenv("STORE_TEST_CHILD") != "" {
		return
	}
	path := filepath.Join(t.TempDir(), "x.json")
	d := NewDoc[counterDoc](path, 0o600)
	if err := d.Save(counterDoc{Count: 0}); err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 8; round++ {
		cmd := childWriter(t, path, "forever")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(20+round*7) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		v, err := d.Load()
		if err != nil {
			t.Fatalf("round %d: document unreadable after kill: %v", round, err)
		}
		if len(v.Entries) != v.Count || len(v.Padding) != 64*1024 && v.Count > 0 {
			t.Fatalf("round %d: inconsistent document: count %d, %d entries, padding %d", round, v.Count, len(v.Entries), len(v.Padding))
		}
	}

	// Cross-process exclusion: two children add 100 each.
	start, _ := d.Load()
	a, b := childWriter(t, path, "100"), childWriter(t, path, "100")
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	if err := a.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := b.Wait(); err != nil {
		t.Fatal(err)
	}
	end, _ := d.Load()
	if end.Count != start.Count+200 {
		t.Fatalf("two processes added %d, want 200", end.Count-start.Count)
	}
}

func childWriter(t *testing.T, path, mode string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildWriter$")
	cmd.Env = append(os.Environ(), "STORE_TEST_CHILD="+mode, "STORE_TEST_PATH="+path)
	return cmd
}

// TestChildWriter is the body of the child processes above.
func TestChildWriter(t *testing.T) {
	mode := os.Getenv("STORE_TEST_CHILD")
	if mode == "" {
		return // only meaningful as the child of TestKilledWriterNeverTearsDocument
	}
	d := NewDoc[counterDoc](os.Getenv("STORE_TEST_PATH"), 0o600)
	pad := strings.Repeat("x", 64*1024)
	for i := 0; mode == "forever" || i < 100; i++ {
		if _, err := d.Update(func(v *counterDoc) error {
			v.Count++
			v.Entries = append(v.Entries, "e")
			v.Padding = pad
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
}

func FuzzLoad(f *testing.F) {
	f.Add([]byte(`{"count":1,"entries":["a"]}`))
	f.Add([]byte(`{`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "x.json")
		os.WriteFile(path, data, 0o600)
		v, err := NewDoc[counterDoc](path, 0o600).Load()
		if err == nil {
			// Whatever loads must round-trip.
			out, merr := Marshal(v)
			if merr != nil {
				t.Fatal(merr)
			}
			var back counterDoc
			if json.Unmarshal(out, &back) != nil || back.Count != v.Count {
				t.Fatalf("round trip changed the document")
			}
		}
	})
}

// A file the service user owns stays its own when root rewrites it
// (`portlama reset-admin` runs as root; the panel must still read
// panel.json afterwards). A new file is root's.
func TestRootKeepsTheOwnerOfAReplacedFile(t *testing.T) {
	testutil.NeedRoot(t, "needs root to own files as another user")
	dir := t.TempDir()
	path := filepath.Join(dir, "panel.json")
	if err := os.WriteFile(path, []byte("{}\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(path, []byte(`{"a":1}`+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	owner := func(p string) (uint32, uint32) {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		return st.Uid, st.Gid
	}
	if u, g := owner(path); u != 65534 || g != 65534 {
		t.Errorf("rewritten file owned by %d:%d, want 65534:65534", u, g)
	}
	fresh := filepath.Join(dir, "new.json")
	if err := WriteFileAtomic(fresh, []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if u, _ := owner(fresh); u != 0 {
		t.Errorf("new file owned by %d, want root", u)
	}
}

// TestLoadChanged: a document still holding the version read is not read
// again; any replacement is, whoever wrote it, including one of the same
// size, and so is a corrupt file (an error, as Load's).
func TestLoadChanged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.json")
	d := NewDoc[counterDoc](path, 0o600)
	load := func(since Version, wantChanged bool, wantCount int) Version {
		t.Helper()
		v, ver, changed, err := d.LoadChanged(since)
		if err != nil {
			t.Fatal(err)
		}
		if changed != wantChanged || (changed && v.Count != wantCount) {
			t.Fatalf("LoadChanged = count %d, changed %v; want count %d, changed %v", v.Count, changed, wantCount, wantChanged)
		}
		return ver
	}
	missing := load(Version{}, true, 0)
	load(missing, true, 0) // a missing file is never "unchanged"

	if err := d.Save(counterDoc{Count: 1}); err != nil {
		t.Fatal(err)
	}
	v1 := load(missing, true, 1)
	load(v1, false, 0)
	load(Version{}, true, 1)

	// This process's write through another Doc of the path, same size.
	if err := NewDoc[counterDoc](path, 0o600).Save(counterDoc{Count: 2}); err != nil {
		t.Fatal(err)
	}
	v2 := load(v1, true, 2)
	// Another process's replacement, same size.
	if err := WriteFileAtomic(path, []byte(`{"count": 3, "entries": null, "padding": ""}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	v3 := load(v2, true, 3)
	// An edit in place, as by hand.
	if err := os.WriteFile(path, []byte(`{"count": 4}`), 0o600); err != nil {
		t.Fatal(err)
	}
	load(v3, true, 4)

	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := d.LoadChanged(v3); err == nil {
		t.Fatal("LoadChanged of a corrupt file succeeded")
	}
}
