package tunnel

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// recConn records every Write; Read returns one byte (the "upgrade answer").
type recConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
}

func (c *recConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes = append(c.writes, append([]byte(nil), p...))
	return len(p), nil
}

func (c *recConn) Read(p []byte) (int, error) { p[0] = 'H'; return 1, nil }

func (c *recConn) all() []byte { return bytes.Join(c.writes, nil) }

// wsFrame builds a masked client frame (masking key zero: the parser does
// not look at payload bytes).
func wsFrame(fin bool, opcode byte, payload []byte) []byte {
	b0 := opcode
	if fin {
		b0 |= 0x80
	}
	h := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		h = append(h, 0x80|byte(n))
	case n <= 0xffff:
		h = append(h, 0x80|126)
		h = binary.BigEndian.AppendUint16(h, uint16(n))
	default:
		h = append(h, 0x80|127)
		h = binary.BigEndian.AppendUint64(h, uint64(n))
	}
	h = append(h, 0, 0, 0, 0)
	return append(h, payload...)
}

func TestFrameConnCoalescesMessages(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 70000) // 8-byte length form
	mid := bytes.Repeat([]byte("y"), 4000)  // 2-byte length form
	tests := []struct {
		name   string
		writes [][]byte
		want   int // underlying writes
	}{
		{"single-frame messages pass one by one", [][]byte{wsFrame(true, 2, []byte("a")), wsFrame(true, 2, mid)}, 2},
		{"fragmented message is one write", [][]byte{wsFrame(false, 2, mid), wsFrame(false, 0, mid), wsFrame(true, 0, []byte("z"))}, 1},
		{"empty final frame", [][]byte{wsFrame(false, 2, mid), wsFrame(true, 0, nil)}, 1},
		{"control frame inside a message flushes", [][]byte{wsFrame(false, 2, mid), wsFrame(true, 9, []byte("ping")), wsFrame(true, 0, mid)}, 2},
		{"large frames", [][]byte{wsFrame(false, 2, big), wsFrame(true, 0, big)}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc := &recConn{}
			fc := newFrameConn(rc)
			if _, err := fc.Write([]byte("GET / HTTP/1.1\r\n")); err != nil {
				t.Fatal(err)
			}
			if _, err := fc.Write([]byte("\r\n")); err != nil {
				t.Fatal(err)
			}
			if len(rc.writes) != 2 {
				t.Fatalf("upgrade request: %d writes, want 2 (pass-through)", len(rc.writes))
			}
			fc.Read(make([]byte, 1))
			rc.writes = nil
			var in []byte
			for _, w := range tc.writes {
				in = append(in, w...)
				if n, err := fc.Write(w); err != nil || n != len(w) {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if !bytes.Equal(rc.all(), in) {
				t.Fatalf("bytes changed or held back: got %d, want %d", len(rc.all()), len(in))
			}
			if len(rc.writes) != tc.want {
				t.Errorf("%d underlying writes, want %d", len(rc.writes), tc.want)
			}
		})
	}
}

func TestFrameConnHoldsUntilFin(t *testing.T) {
	rc := &recConn{}
	fc := newFrameConn(rc)
	fc.Read(make([]byte, 1))
	first := wsFrame(false, 2, []byte("part one"))
	fc.Write(first[:3]) // header split across writes
	fc.Write(first[3:])
	if len(rc.writes) != 0 {
		t.Fatalf("a non-final frame was written: %q", rc.writes)
	}
	fc.Write(wsFrame(true, 0, []byte("end")))
	if len(rc.writes) != 1 {
		t.Fatalf("%d writes after the final frame, want 1", len(rc.writes))
	}
	// A runaway message is written once frameMaxPending is reached.
	rc.writes = nil
	chunk := wsFrame(false, 0, bytes.Repeat([]byte("q"), 60000))
	for range frameMaxPending/len(chunk) + 1 {
		fc.Write(chunk)
	}
	if len(rc.writes) == 0 {
		t.Errorf("nothing written after %d bytes without a final frame", frameMaxPending)
	}
}

// FuzzFrameConn builds valid frames from the input, writes them split at
// input-chosen points, and checks that exactly the input comes out, with
// no more writes than messages (plus size-cap flushes).
func FuzzFrameConn(f *testing.F) {
	f.Add([]byte{0x81, 5, 0x02, 200, 0x80, 1, 3, 4, 5})
	f.Add([]byte{0x00, 0xff, 0x00, 0xff, 0x80, 0x10})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, spec []byte) {
		var in []byte
		msgs := 0
		for i := 0; i+1 < len(spec) && i < 64; i += 2 {
			fin := spec[i]&0x80 != 0
			size := int(spec[i+1]) * (1 + int(spec[i]&0x3f))
			in = append(in, wsFrame(fin, spec[i]&0x0f, bytes.Repeat([]byte{'p'}, size))...)
			if fin {
				msgs++
			}
		}
		in = append(in, wsFrame(true, 0, nil)...) // always end on a final frame
		msgs++
		rc := &recConn{}
		fc := newFrameConn(rc)
		fc.Read(make([]byte, 1))
		rest := in
		for k := 0; len(rest) > 0; k++ {
			n := len(rest)
			if len(spec) > 0 {
				n = min(n, 1+int(spec[k%len(spec)])*7)
			}
			if w, err := fc.Write(rest[:n]); err != nil || w != n {
				t.Fatalf("Write = %d, %v", w, err)
			}
			rest = rest[n:]
		}
		if !bytes.Equal(rc.all(), in) {
			t.Fatalf("output differs from input (%d vs %d bytes)", len(rc.all()), len(in))
		}
		if max := msgs + len(in)/frameMaxPending + 1; len(rc.writes) > max {
			t.Fatalf("%d writes for %d messages", len(rc.writes), msgs)
		}
	})
}

// TestFrameConnWebSocket runs real gorilla/websocket traffic (4 KiB client
// frames, so large messages are fragmented, with pings in between) through
// frameConn and checks every message arrives intact.
func TestFrameConnWebSocket(t *testing.T) {
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			typ, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(typ, []byte(fmt.Sprintf("%d:%x", len(msg), crcish(msg)))); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	d := websocket.Dialer{NetDial: func(network, addr string) (net.Conn, error) {
		c, err := net.Dial(network, addr)
		if err != nil {
			return nil, err
		}
		return newFrameConn(c), nil
	}}
	c, _, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // control frames interleaved with data frames
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if c.WriteControl(websocket.PingMessage, []byte("p"), time.Now().Add(time.Second)) != nil {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	for _, size := range []int{0, 1, 125, 126, 4000, 4096, 4097, 32 << 10, 100000, 300 << 10} {
		msg := make([]byte, size)
		for i := range msg {
			msg[i] = byte(i * 7)
		}
		if err := c.WriteMessage(websocket.BinaryMessage, msg); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, got, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if want := fmt.Sprintf("%d:%x", size, crcish(msg)); string(got) != want {
			t.Fatalf("size %d: server saw %s, want %s", size, got, want)
		}
	}
	close(stop)
	wg.Wait()
}

func crcish(b []byte) uint32 {
	var h uint32 = 2166136261
	for _, c := range b {
		h = (h ^ uint32(c)) * 16777619
	}
	return h
}

var _ io.Writer = (*frameConn)(nil)
