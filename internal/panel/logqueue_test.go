package panel

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"
)

// A slow client loses the oldest frames, never the newest, and the reader
// waits for it instead of queueing without bound.
func TestLogQueueDropsOldestAndPauses(t *testing.T) {
	q := newLogQueue(10)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 3 { // 9 bytes: under the limit, push does not wait
		if err := q.push(ctx, []byte("ab"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	pushed := make(chan error, 1)
	go func() { pushed <- q.push(ctx, []byte("ab3")) }() // over: ab0 dropped, push waits
	select {
	case err := <-pushed:
		t.Fatalf("push over the limit returned before the queue drained: %v", err)
	case <-time.After(50 * time.Millisecond): // bounded check that it is still waiting
	}
	var got []string
	done := make(chan error, 1)
	go func() {
		done <- q.drain(ctx, func(b []byte) error { got = append(got, string(b)); return nil })
	}()
	if err := <-pushed; err != nil {
		t.Fatal(err)
	}
	q.close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if want := "[ab1 ab2 ab3]"; fmt.Sprint(got) != want {
		t.Errorf("written %v, want %s", got, want)
	}
}
