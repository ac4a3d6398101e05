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
	return fileID{st.Dev, st.Ino, st.Size, st.Mtim, st.Ctim}, nil
}
