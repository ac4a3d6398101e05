// Package manage is the management channel from the panel to the relay's
// daemons (the tunnel server and the auth server): HTTP/1.1 with JSON bodies
// over a Unix socket with mode 0600 inside the daemon's 0700 state
// directory, so only the relay's service user can use it and nginx never
// reaches it.
//
// The state files stay the source of truth (a daemon that restarts reads
// them). After the panel writes one, it calls Client.Notify: the daemon
// re-reads its files at once (POST /v1/reload), applies them, and answers
// with the generation — the SHA-256 of the content — of every file it
// applied. Notify compares those with the files as they are on disk, so a
// confirmed change is in force when Notify returns; a daemon that refuses
// the content, or cannot be reached in time, is reported as an error the
// caller turns into an answer (docs/api.md, "Changes in force").
package manage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// DefaultTimeout bounds how long Notify waits for a daemon's
// acknowledgement.
const DefaultTimeout = 2 * time.Second

// ReloadPath is the route every daemon serves: apply the state files now and
// answer with an Ack.
const ReloadPath = "/v1/reload"

// HealthPath answers {"ok":true} while the daemon runs.
const HealthPath = "/v1/health"

// NoFile is the generation of a state file that does not exist.
const NoFile = "none"

// Ack is a daemon's answer to POST /v1/reload.
type Ack struct {
	OK bool `json:"ok"`
	// Generations maps each state file's base name to the generation of
	// the content the daemon now serves from.
	Generations map[string]string `json:"generations"`
}

// Generation returns the generation of a state file's content.
func Generation(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// FileGeneration returns the generation of the file at path as it is now,
// NoFile when it does not exist.
func FileGeneration(path string) (string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return NoFile, nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return Generation(data), nil
}

// ErrNotConfirmed is wrapped by Notify's error when the daemon could not be
// reached or did not answer in time. The change is saved; the daemon
// applies it when it starts or on its next periodic check.
var ErrNotConfirmed = errors.New("change saved but not confirmed")

// RejectedError is a daemon's refusal: it answered, but did not apply the
// change (the state it serves is unchanged).
type RejectedError struct {
	Daemon  string
	Status  int
	Message string
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("%s refused the change: %s (HTTP %d)", e.Daemon, e.Message, e.Status)
}

// Error is a non-2xx answer to a request other than a reload.
type Error struct {
	Daemon  string
	Status  int
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: %s (HTTP %d)", e.Daemon, e.Message, e.Status)
}

// Client calls one daemon's management socket.
type Client struct {
	name    string
	socket  string
	timeout time.Duration
	hc      *http.Client
}

// NewClient returns a client for the daemon called name (used in messages,
// e.g. "tunnel server") listening on socket. Its requests are bounded by
// DefaultTimeout unless the context ends sooner.
func NewClient(name, socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns:    2,
		IdleConnTimeout: 30 * time.Second,
	}
	return &Client{name: name, socket: socket, timeout: DefaultTimeout, hc: &http.Client{Transport: tr}}
}

// Name is the daemon's name as used in messages.
func (c *Client) Name() string { return c.name }

// WithTimeout returns a copy of c whose requests are bounded by d.
func (c *Client) WithTimeout(d time.Duration) *Client {
	cc := *c
	cc.timeout = d
	return &cc
}

// Notify asks the daemon to apply its state files now and checks that it
// serves the content the given files have at this moment (compared by
// base name). It returns nil when confirmed, an error wrapping
// ErrNotConfirmed when the daemon is unreachable, silent or reports other
// content, or a *RejectedError when it refused the files.
func (c *Client) Notify(ctx context.Context, files ...string) error {
	want := make(map[string]string, len(files))
	for _, f := range files {
		g, err := FileGeneration(f)
		if err != nil {
			return err
		}
		want[filepath.Base(f)] = g
	}
	var ack Ack
	err := c.Do(ctx, http.MethodPost, ReloadPath, nil, &ack)
	var me *Error
	switch {
	case errors.As(err, &me):
		return &RejectedError{Daemon: c.name, Status: me.Status, Message: me.Message}
	case err != nil:
		return err
	}
	for name, g := range want {
		if got := ack.Generations[name]; got != g {
			return fmt.Errorf("%w: the %s serves another version of %s (%s, want %s); is it using another state directory?",
				ErrNotConfirmed, c.name, name, short(got), short(g))
		}
	}
	return nil
}

func short(g string) string {
	if len(g) > 19 {
		return g[:19]
	}
	return g
}

// Health checks that the daemon answers.
func (c *Client) Health(ctx context.Context) error {
	return c.Do(ctx, http.MethodGet, HealthPath, nil, nil)
}

// Do sends a request with in (nil for none) as JSON and decodes a 2xx
// answer into out (nil to ignore it). A connection failure or timeout wraps
// ErrNotConfirmed; a non-2xx answer is an *Error.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s %s: encode request: %w", c.name, method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://portlama"+path, body)
	if err != nil {
		return fmt.Errorf("%s %s %s: %w", c.name, method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%w: the %s did not answer on %s (is it running?): %v", ErrNotConfirmed, c.name, c.socket, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("%w: %s %s %s: read answer: %v", ErrNotConfirmed, c.name, method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = http.StatusText(resp.StatusCode)
		}
		return &Error{Daemon: c.name, Status: resp.StatusCode, Message: e.Error}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s %s: decode answer: %w", c.name, method, path, err)
		}
	}
	return nil
}

// Listen listens on a Unix socket at path with mode 0600, replacing a stale
// socket file (never any other kind of file). The directory should be 0700.
func Listen(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("listen on management socket %s: a file that is not a socket is in the way", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale management socket %s: %w", path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on management socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("set mode of management socket %s: %w", path, err)
	}
	return ln, nil
}

// Serve answers h's routes on ln until ctx ends. It adds GET /v1/health.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+HealthPath, func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]bool{"ok": true})
	})
	mux.Handle("/", h)
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("management socket: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	hs.Shutdown(sctx)
	<-errc
	return nil
}

// ReloadHandler returns the daemon side of POST /v1/reload: apply re-reads
// and applies the state files and returns the generation of each (by base
// name); an error answers 409 {"error": ...} and must leave the served
// state unchanged.
func ReloadHandler(apply func(ctx context.Context) (map[string]string, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			WriteError(w, http.StatusMethodNotAllowed, "use POST")
			return
		}
		gens, err := apply(r.Context())
		if err != nil {
			WriteError(w, http.StatusConflict, err.Error())
			return
		}
		WriteJSON(w, http.StatusOK, Ack{OK: true, Generations: gens})
	})
}

// WriteJSON writes v as the JSON answer with status code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// WriteError writes {"error": msg} with status code.
func WriteError(w http.ResponseWriter, code int, msg string) {
	WriteJSON(w, code, map[string]string{"error": msg})
}
