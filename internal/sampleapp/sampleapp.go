// Package sampleapp is the small web app the demo puts behind a tunnel, and
// the app the end-to-end tests and benchmarks fetch through the relay. It
// exercises what a real app needs from the path: plain pages, request bodies,
// streamed responses, WebSockets and large downloads.
package sampleapp

import (
	"context"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/coder/websocket"
)

// Handler serves:
//
//	GET  /             an HTML page naming the app and echoing Remote-User
//	GET  /headers      the request headers, one "Name: value" per line
//	POST /echo         the request body, unchanged
//	GET  /stream?n=N   N lines, one flushed every 50 ms
//	GET  /ws           a WebSocket that echoes every message
//	GET  /bytes?size=N N bytes (for download benchmarks)
func Handler(name string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		user := r.Header.Get("Remote-User")
		greeting := "Hello from your home machine."
		if user != "" {
			greeting = "Hello, " + html.EscapeString(user) + " — you signed in with two factors."
		}
		fmt.Fprintf(w, "<!doctype html><title>%[1]s</title><h1>%[1]s</h1><p>%[2]s</p><p>Served by the Portlama sample app through a tunnel.</p>\n",
			html.EscapeString(name), greeting)
	})
	mux.HandleFunc("GET /headers", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		r.Header.Write(w)
	})
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		io.Copy(w, r.Body)
	})
	mux.HandleFunc("GET /stream", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		if n <= 0 || n > 1000 {
			n = 5
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fl, _ := w.(http.Flusher)
		for i := 1; i <= n; i++ {
			fmt.Fprintf(w, "line %d\n", i)
			if fl != nil {
				fl.Flush()
			}
			select {
			case <-r.Context().Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, msg); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("GET /bytes", func(w http.ResponseWriter, r *http.Request) {
		size, err := strconv.ParseInt(r.URL.Query().Get("size"), 10, 64)
		if err != nil || size < 0 || size > 1<<32 {
			http.Error(w, "size must be a number of bytes up to 4 GiB", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		buf := make([]byte, 256<<10)
		for size > 0 {
			n := int64(len(buf))
			if size < n {
				n = size
			}
			if _, err := w.Write(buf[:n]); err != nil {
				return
			}
			size -= n
		}
	})
	return mux
}

// Serve runs the app on l until ctx is done.
func Serve(ctx context.Context, l net.Listener, name string) error {
	srv := &http.Server{Handler: Handler(name), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(l); err != nil && err != http.ErrServerClosed {
		return err
	}
	return nil
}
