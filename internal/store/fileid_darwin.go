package store

import (
	"os"
	"syscall"
)

func identify(f *os.File) (fileID, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return fileID{}, err
	}
	return fileID{uint64(st.Dev), st.Ino, st.Size, st.Mtimespec, st.Ctimespec}, nil
}
