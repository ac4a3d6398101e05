package tunnel

import (
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
)

// Write coalescing for the client's connection to the relay (performance).
//
// The SSH transport writes one packet at a time as one WebSocket message.
// chisel's client (gorilla/websocket with its default 4 KiB write buffer)
// sends a message as masked frames of at most 4 KiB, each with its own
// write: a 32 KiB data packet costs eight syscalls, and eight TCP segments
// for the relay to take apart. frameConn collects the frames of a message
// and writes them with one call when the final frame (FIN bit) is complete.
// Nothing is delayed: a message is written as soon as its last frame is,
// in the caller's goroutine, so a single-frame message (every small
// request or response) is written exactly as before, without a copy.
//
// Until the server's first bytes arrive the connection carries the HTTP
// upgrade request, which is passed through unchanged; framing starts with
// the first read (the client writes no frame before it has the server's
// 101 answer).

// frameMaxPending bounds what is held back: a message larger than this
// (never produced by SSH packets of at most 256 KiB + framing) is written in
// pieces.
const frameMaxPending = 512 << 10

type frameConn struct {
	net.Conn
	framing atomic.Bool // set by the first successful Read

	mu   sync.Mutex
	buf  []byte   // complete or partial frames not yet written
	hdr  [14]byte // header bytes of the frame being parsed
	hdrN int      // how many of them are in hdr
	left uint64   // payload bytes of the current frame still to come
	fin  bool     // FIN bit of the last frame whose header was parsed
}

func newFrameConn(c net.Conn) *frameConn {
	return &frameConn{Conn: c, fin: true}
}

func (c *frameConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.framing.Load() {
		c.framing.Store(true)
	}
	return n, err
}

func (c *frameConn) Write(p []byte) (int, error) {
	if !c.framing.Load() {
		return c.Conn.Write(p)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.scan(p)
	boundary := c.hdrN == 0 && c.left == 0 && c.fin
	if len(c.buf) == 0 && boundary {
		return c.Conn.Write(p) // whole message(s) in one piece
	}
	c.buf = append(c.buf, p...)
	if !boundary && len(c.buf) < frameMaxPending {
		return len(p), nil
	}
	_, err := c.Conn.Write(c.buf)
	c.buf = c.buf[:0]
	if cap(c.buf) > frameMaxPending {
		c.buf = nil
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// scan advances the frame parser over p (RFC 6455 §5.2 framing).
func (c *frameConn) scan(p []byte) {
	for len(p) > 0 {
		if c.left > 0 {
			n := uint64(len(p))
			if n > c.left {
				n = c.left
			}
			c.left -= n
			p = p[n:]
			continue
		}
		c.hdr[c.hdrN] = p[0]
		c.hdrN++
		p = p[1:]
		if c.hdrN < 2 {
			continue
		}
		need := 2
		l7 := c.hdr[1] & 0x7f
		switch l7 {
		case 126:
			need += 2
		case 127:
			need += 8
		}
		if c.hdr[1]&0x80 != 0 {
			need += 4 // masking key
		}
		if c.hdrN < need {
			continue
		}
		switch l7 {
		case 126:
			c.left = uint64(binary.BigEndian.Uint16(c.hdr[2:4]))
		case 127:
			c.left = binary.BigEndian.Uint64(c.hdr[2:10])
		default:
			c.left = uint64(l7)
		}
		c.fin = c.hdr[0]&0x80 != 0
		c.hdrN = 0
	}
}
