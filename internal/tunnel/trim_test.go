package tunnel

import (
	"context"
	"testing"
	"time"
)

func TestTrimmerFreesOnceAfterTraffic(t *testing.T) {
	freed := make(chan struct{}, 10)
	tr := &trimmer{free: func() { freed <- struct{}{} }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go tr.run(ctx, time.Millisecond, 20*time.Millisecond)
	// No traffic yet: nothing to free.
	select {
	case <-freed:
		t.Fatal("freed without any traffic")
	case <-time.After(60 * time.Millisecond):
	}
	// While data moves nothing is freed.
	stop := time.After(60 * time.Millisecond)
	for moving := true; moving; {
		tr.touch()
		select {
		case <-freed:
			t.Fatal("freed while data was moving")
		case <-stop:
			moving = false
		case <-time.After(time.Millisecond):
		}
	}
	select {
	case <-freed:
	case <-time.After(5 * time.Second):
		t.Fatal("not freed after the traffic stopped")
	}
	// Once per burst.
	select {
	case <-freed:
		t.Fatal("freed twice for one burst")
	case <-time.After(60 * time.Millisecond):
	}
}
