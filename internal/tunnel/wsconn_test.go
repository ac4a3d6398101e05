package tunnel

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// wsPair returns a wsConn on the client end of a WebSocket and the raw
// server end, which the test reads message by message.
func wsPair(t *testing.T) (*wsConn, *websocket.Conn) {
	t.Helper()
	peer := make(chan *websocket.Conn, 1)
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			t.Errorf("upgrade: %v", err)
			return
		}
		peer <- ws
	}))
	t.Cleanup(srv.Close)
	d := websocket.Dialer{WriteBufferSize: wsWriteBuffer, ReadBufferSize: wsReadBuffer}
	ws, _, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := newWSConn(ws, nil)
	t.Cleanup(func() { c.Close() })
	p := <-peer
	t.Cleanup(func() { p.Close() })
	p.SetReadLimit(wsReadLimit)
	return c, p
}

// readAll reads messages from p until want bytes have arrived.
func readAll(t *testing.T, p *websocket.Conn, want int) (data []byte, sizes []int) {
	t.Helper()
	p.SetReadDeadline(time.Now().Add(10 * time.Second))
	for len(data) < want {
		_, m, err := p.ReadMessage()
		if err != nil {
			t.Fatalf("after %d of %d bytes in %d messages: %v", len(data), want, len(sizes), err)
		}
		data = append(data, m...)
		sizes = append(sizes, len(m))
	}
	return data, sizes
}

func TestWSConnCoalescesWritesInOrder(t *testing.T) {
	tests := []struct {
		name   string
		writes int
		size   int
	}{
		{"small packets", 2000, 60},
		{"bulk packets", 200, 20 << 10},
		{"one write above the bound", 1, 3 * maxPending},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, p := wsPair(t)
			// Packet i is size bytes of i, numbered in front.
			packet := func(i int) []byte {
				b := bytes.Repeat([]byte{byte(i)}, tt.size)
				copy(b, fmt.Sprintf("<%d>", i))
				return b
			}
			go func() {
				for i := range tt.writes {
					if _, err := c.Write(packet(i)); err != nil {
						t.Errorf("write %d: %v", i, err)
						return
					}
				}
			}()
			var sent []byte
			for i := range tt.writes {
				sent = append(sent, packet(i)...)
			}
			got, sizes := readAll(t, p, len(sent))
			if !bytes.Equal(got, sent) {
				t.Fatalf("the stream differs from what was written (%d vs %d bytes)", len(got), len(sent))
			}
			for i, n := range sizes {
				if n > maxPending && n != tt.size {
					t.Errorf("message %d has %d bytes, above the bound %d", i, n, maxPending)
				}
			}
			if tt.writes > 1 && len(sizes) >= tt.writes {
				t.Errorf("%d writes left as %d messages: nothing was coalesced", tt.writes, len(sizes))
			}
			t.Logf("%d writes of %d bytes → %d messages", tt.writes, tt.size, len(sizes))
		})
	}
}

func TestWSConnCloseWritesWhatIsPending(t *testing.T) {
	c, p := wsPair(t)
	var sent []byte
	for i := range 100 {
		b := []byte(fmt.Sprintf("packet %d;", i))
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, b...)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	got, _ := readAll(t, p, len(sent))
	if !bytes.Equal(got, sent) {
		t.Fatalf("got %q, want %q", got, sent)
	}
	if _, _, err := p.ReadMessage(); err == nil {
		t.Fatal("the connection is still open after Close")
	}
	if _, err := c.Write([]byte("late")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after Close: %v, want net.ErrClosed", err)
	}
}

func TestWSConnWriteFailsOnceThePeerIsGone(t *testing.T) {
	c, p := wsPair(t)
	p.Close()
	chunk := make([]byte, 32<<10)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := c.Write(chunk); err != nil {
			return // the writer's error reaches the caller
		}
		if time.Now().After(deadline) {
			t.Fatal("writes to a closed peer still succeed after 10 s")
		}
	}
}
