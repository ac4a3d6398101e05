package tunnel

import (
	"io"
	"net"
	"runtime"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// wsConn carries the SSH byte stream in binary WebSocket messages, as
// chisel does, without chisel's costs: Read reads straight from the current
// message's reader into the caller's buffer (no buffer per message), and
// writes are coalesced: Write appends to a pending buffer and one writer
// goroutine sends everything pending as one message with one write to the
// socket (on TLS client connections a batchConn below the TLS layer turns
// the records of one frame into one syscall).
//
// Coalescing is what makes a request cheap. A socket write on loopback is
// most of a tunnel process's CPU (the kernel delivers the data in the
// writer's time), and under load the channels of one session have packets
// ready at the same moment (the readers one netpoll woke): the writer yields
// once before it takes the pending bytes, so they all leave in one write.
// It also joins the two Writes x/crypto/ssh makes of an AES-GCM packet
// above 4 KiB (the 4-byte length and the body, through its 4 KiB
// bufio.Writer). The SSH stream does not care where messages end.
type wsConn struct {
	ws    *websocket.Conn
	r     io.Reader // reader of the current message, nil between messages
	batch *batchConn

	mu      sync.Mutex
	wake    sync.Cond // the writer waits for pending bytes or closing
	room    sync.Cond // Write waits for room in pending
	pending []byte
	err     error     // the first write error; every later Write returns it
	wdl     time.Time // write deadline, applied by the writer (gorilla's is not synchronized)
	closing bool
	done    chan struct{} // closed when the writer has exited
}

// wsReadLimit bounds one message before SSH authentication too (x/crypto/ssh
// never sends packets above 256 KiB; chisel uses the same bound).
const wsReadLimit = 512 << 10

// Buffer sizes of the WebSocket layer. wsWriteBuffer holds a whole
// coalesced message so a client's masked frame is written at once;
// wsReadBuffer lets one read take several small frames.
const (
	wsWriteBuffer = 64 << 10
	wsReadBuffer  = 16 << 10
)

// maxPending bounds the coalesced bytes (one frame in the client's write
// buffer, room for its header); Write blocks while they are full, which
// passes a slow socket's back-pressure on to the SSH channels. A single
// larger write goes alone.
const maxPending = wsWriteBuffer - 16

// closeFlush bounds how long Close waits for pending bytes to be written.
const closeFlush = 250 * time.Millisecond

func newWSConn(ws *websocket.Conn, batch *batchConn) *wsConn {
	ws.SetReadLimit(wsReadLimit)
	c := &wsConn{ws: ws, batch: batch, done: make(chan struct{})}
	c.wake.L = &c.mu
	c.room.L = &c.mu
	go c.writeLoop()
	return c
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

// Write queues p for the writer. It is serialized by the SSH transport,
// and the transport reuses p once Write returns, so p is copied.
func (c *wsConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.err == nil && !c.closing && len(c.pending) > 0 && len(c.pending)+len(p) > maxPending {
		c.room.Wait()
	}
	switch {
	case c.err != nil:
		return 0, c.err
	case c.closing:
		return 0, net.ErrClosed
	}
	c.pending = append(c.pending, p...)
	c.wake.Signal()
	return len(p), nil
}

// writeLoop sends what Write queued until the connection closes or a write
// fails.
func (c *wsConn) writeLoop() {
	defer close(c.done)
	var spare []byte
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		for len(c.pending) == 0 && !c.closing {
			c.wake.Wait()
		}
		if len(c.pending) == 0 {
			return // closing, everything written
		}
		if !c.closing {
			// Let the goroutines that are ready to run add their packets.
			c.mu.Unlock()
			runtime.Gosched()
			c.mu.Lock()
		}
		buf := c.pending
		c.pending = spare[:0]
		dl := c.wdl
		c.room.Broadcast()
		c.mu.Unlock()
		c.ws.SetWriteDeadline(dl)
		err := c.send(buf)
		c.mu.Lock()
		// The two buffers are kept between bursts (at most 2×maxPending
		// each): dropping them when the writer goes idle made every
		// packet of a download allocate its buffer again (agent CPU per
		// download +30 %, in one run against keeping them).
		spare = buf
		if cap(buf) > 2*maxPending {
			spare = nil // a rare huge packet's buffer is not kept
		}
		if err != nil {
			c.err = err
			c.pending = nil
			c.room.Broadcast()
			c.ws.Close() // ends the reader too
			return
		}
	}
}

func (c *wsConn) send(p []byte) error {
	if c.batch != nil {
		c.batch.hold()
	}
	err := c.ws.WriteMessage(websocket.BinaryMessage, p)
	if c.batch != nil {
		if ferr := c.batch.flush(); err == nil {
			err = ferr
		}
	}
	return err
}

// Close writes what is pending (for at most closeFlush: a peer that stopped
// reading must not hold it) and closes the connection.
func (c *wsConn) Close() error {
	c.mu.Lock()
	c.closing = true
	c.wake.Signal()
	c.room.Broadcast()
	c.mu.Unlock()
	t := time.NewTimer(closeFlush)
	select {
	case <-c.done:
	case <-t.C:
	}
	t.Stop()
	return c.ws.Close()
}

func (c *wsConn) LocalAddr() net.Addr               { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr              { return c.ws.RemoteAddr() }
func (c *wsConn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }

// SetWriteDeadline applies to the writes that start after it.
func (c *wsConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.wdl = t
	c.mu.Unlock()
	return nil
}

func (c *wsConn) SetDeadline(t time.Time) error {
	if err := c.ws.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
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
