package store

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/portlama/portlama/internal/testutil"
)

func TestWriteFileAtomicOwned(t *testing.T) {
	testutil.NeedRoot(t, "changing a file's owner needs root")
	path := filepath.Join(t.TempDir(), "f")
	if err := WriteFileAtomicOwned(path, []byte("x"), 0o640, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != 65534 || st.Gid != 65534 || fi.Mode().Perm() != 0o640 {
		t.Fatalf("owner %d:%d mode %v", st.Uid, st.Gid, fi.Mode().Perm())
	}
}
