package tunnel

import (
	"io"
	"sync"
)

// copyBufSize matches the SSH channel's maximum packet payload: one read
// from a socket becomes one SSH data packet.
const copyBufSize = 32 << 10

var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

type closeWriter interface{ CloseWrite() error }

// pipe copies between a and b in both directions with pooled buffers and
// returns when both directions have ended. A clean EOF in one direction
// half-closes the other end's write side, so request/response protocols
// that shut down their sending side keep working; an error closes both.
func pipe(a, b io.ReadWriteCloser) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); copyHalf(a, b) }()
	go func() { defer wg.Done(); copyHalf(b, a) }()
	wg.Wait()
	a.Close()
	b.Close()
}

func copyHalf(dst, src io.ReadWriteCloser) {
	bp := copyBufs.Get().(*[]byte)
	// The wrappers hide ReadFrom and WriteTo: *net.TCPConn's fall back to
	// io.Copy with a fresh 32 KiB buffer when the other end is an SSH
	// channel.
	_, err := io.CopyBuffer(writerOnly{dst}, readerOnly{src}, *bp)
	copyBufs.Put(bp)
	if err != nil {
		dst.Close()
		src.Close()
		return
	}
	if cw, ok := dst.(closeWriter); ok {
		cw.CloseWrite()
	} else {
		dst.Close()
	}
}

type readerOnly struct{ io.Reader }

// writerOnly hides ReadFrom (see copyHalf).
type writerOnly struct{ io.Writer }
