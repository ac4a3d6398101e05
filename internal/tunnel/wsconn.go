package tunnel

import (
	"io"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// wsConn carries the SSH byte stream in binary WebSocket messages, as
// chisel does, without chisel's costs: Read reads straight from the current
// message's reader into the caller's buffer (no buffer per message), and
// Write sends each write as one message with one write to the socket (the
// write buffer holds the biggest data packet; on TLS client connections a
// batchConn below the TLS layer turns the records of one frame into one
// syscall).
//
// x/crypto/ssh writes a packet with one Write, so one packet is one frame,
// except for AES-GCM packets above 4 KiB: its GCM cipher writes the 4-byte
// length and the body separately into the transport's 4 KiB bufio.Writer,
// which then passes them on as a 4 KiB write and the rest. Telling the two
// apart here would mean parsing SSH framing; the cost (one more frame and
// syscall per 32 KiB) is far below chacha20-poly1305's extra CPU.
type wsConn struct {
	ws    *websocket.Conn
	r     io.Reader // reader of the current message, nil between messages
	batch *batchConn
}

// wsReadLimit bounds one message before SSH authentication too (x/crypto/ssh
// never sends packets above 256 KiB; chisel uses the same bound).
const wsReadLimit = 512 << 10

// Buffer sizes of the WebSocket layer. wsWriteBuffer holds a whole SSH data
// packet (32 KiB payload plus headers) so a client's masked frame is
// written at once; wsReadBuffer lets one read take several small frames.
const (
	wsWriteBuffer = 64 << 10
	wsReadBuffer  = 16 << 10
)

func newWSConn(ws *websocket.Conn, batch *batchConn) *wsConn {
	ws.SetReadLimit(wsReadLimit)
	return &wsConn{ws: ws, batch: batch}
}

// Read is called by one goroutine only (the SSH transport's reader).
func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			_, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if err == io.EOF {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

// Write is serialized by the SSH transport.
func (c *wsConn) Write(p []byte) (int, error) {
	if c.batch != nil {
		c.batch.hold()
	}
	err := c.ws.WriteMessage(websocket.BinaryMessage, p)
	if c.batch != nil {
		if ferr := c.batch.flush(); err == nil {
			err = ferr
		}
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Close() error                       { return c.ws.Close() }
func (c *wsConn) LocalAddr() net.Addr                { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr               { return c.ws.RemoteAddr() }
func (c *wsConn) SetReadDeadline(t time.Time) error  { return c.ws.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }
func (c *wsConn) SetDeadline(t time.Time) error {
	if err := c.ws.SetReadDeadline(t); err != nil {
		return err
	}
	return c.ws.SetWriteDeadline(t)
}

// batchConn sits between a TLS client connection and TCP. Between hold
// and flush it collects what TLS writes (the records of one WebSocket
// frame: a 32 KiB SSH packet is three TLS records) and sends it with one
// write.
type batchConn struct {
	net.Conn
	mu      sync.Mutex
	holding bool
	buf     []byte
}

func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.holding {
		b.buf = append(b.buf, p...)
		return len(p), nil
	}
	return b.Conn.Write(p)
}

func (b *batchConn) hold() {
	b.mu.Lock()
	b.holding = true
	b.mu.Unlock()
}

func (b *batchConn) flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.holding = false
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.Conn.Write(b.buf)
	if cap(b.buf) > 256<<10 {
		b.buf = nil // a rare huge packet: do not keep its buffer
	} else {
		b.buf = b.buf[:0]
	}
	return err
}
