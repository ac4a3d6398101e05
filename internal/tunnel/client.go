package tunnel

// Client: a thin wrapper around chisel's client (chclient) for the agent.
//
// TLS decision: chisel's client only takes TLS material as file paths, but
// it accepts a DialContext function and uses plain ws:// when the server URL
// is http://. So for an https:// (or wss://) ServerURL the wrapper hands chisel
// the equivalent http://host:port URL and a DialContext that performs the TLS
// handshake itself with ClientConfig.TLS (an in-memory *tls.Config: RootCAs,
// client Certificates or GetClientCertificate, ServerName). The Host header
// and the wire bytes are exactly those of a stock chisel client talking
// wss://. Verification is always on: a config with InsecureSkipVerify is
// rejected. An http:// ServerURL (tests, direct loopback use) connects
// without TLS; the SSH layer inside still verifies the server key against
// Fingerprint, which is required.
//
// Performance: the dialed connection is wrapped in a frameConn (frameconn.go),
// which writes all WebSocket frames of one SSH packet with a single write
// instead of one write per 4 KiB frame.
//
// Run connects once (chisel's own retry loop is disabled) and returns when
// the context is done (nil) or the session ends or fails (an error wrapping
// ErrRefused, ErrUnverified or ErrConnection). Reconnecting, with backoff and
// a fresh agent-config, is the caller's job. A Client is single-use: build a
// new one for every connection attempt.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	chclient "github.com/jpillora/chisel/client"
	"github.com/jpillora/chisel/share/settings"
)

// Errors returned (wrapped) by Client.Run; test with errors.Is.
var (
	// ErrRefused: the relay refused this client: unknown agent or wrong
	// password, a remote outside the agent's ACL, or the relay's front end
	// rejected the client certificate. Refetch the configuration before
	// trying again.
	ErrRefused = errors.New("tunnel server refused the connection")
	// ErrUnverified: the relay could not be verified (TLS certificate or
	// SSH key fingerprint mismatch). Never ignore this one.
	ErrUnverified = errors.New("tunnel server could not be verified")
	// ErrConnection: the relay could not be reached or the session was lost
	// (including the relay closing the session after an ACL change).
	ErrConnection = errors.New("tunnel connection failed")
)

// DefaultKeepAlive is the SSH keep-alive interval used when
// ClientConfig.KeepAlive is zero (chisel's command-line default).
const DefaultKeepAlive = 25 * time.Second

// ClientConfig configures a Client. ServerURL, Auth, Fingerprint and
// Remotes come from GET /api/tunnels/agent-config.
type ClientConfig struct {
	// ServerURL is the tunnel endpoint, e.g. "https://tunnel.<d>:443".
	// https/wss use TLS with the TLS field; http/ws connect in clear text
	// (the SSH layer is still authenticated by Fingerprint).
	ServerURL string
	// Auth is the agent's credential "<label>:<password>". Never logged.
	Auth string
	// Fingerprint is the tunnel server key fingerprint (SHA256, base64, 44
	// characters, as chisel prints it). Required.
	Fingerprint string
	// Remotes are reverse chisel remotes, e.g. "R:127.0.0.1:20001:127.0.0.1:8080".
	Remotes []string
	// TLS is used for https/wss: RootCAs (nil means system roots),
	// Certificates or GetClientCertificate (nginx demands a client
	// certificate on tunnel.<d>), ServerName (default: the URL host).
	// InsecureSkipVerify is refused. Cloned; never modified.
	TLS *tls.Config
	// KeepAlive is the SSH keep-alive interval; zero means DefaultKeepAlive.
	KeepAlive time.Duration
	// Logger receives chisel's client messages; nil discards them.
	Logger *slog.Logger
}

// Client is one tunnel connection attempt of an agent. Create it with
// NewClient; call Run once.
type Client struct {
	cfg       ClientConfig
	chiselURL string
	tlsConf   *tls.Config
	log       *slog.Logger
	dialAddr  string // tests: dial this address instead of the URL's

	started   atomic.Bool
	connected chan struct{}
	done      chan struct{}
	runErr    error // set before done is closed

	mu        sync.Mutex
	dialErr   error  // last error of our dialer
	httpReply string // first line the server answered the upgrade with
	chiselErr string // last "Connection error" chisel logged
}

// NewClient validates cfg and returns a Client ready to Run.
func NewClient(cfg ClientConfig) (*Client, error) {
	u, err := url.Parse(cfg.ServerURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("tunnel server URL %q is not a valid URL", cfg.ServerURL)
	}
	secure := false
	switch u.Scheme {
	case "https", "wss":
		secure = true
	case "http", "ws":
	default:
		return nil, fmt.Errorf("tunnel server URL %q: scheme must be https or http", cfg.ServerURL)
	}
	if u.User != nil {
		return nil, fmt.Errorf("tunnel server URL must not contain credentials")
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "80"
		if secure {
			port = "443"
		}
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil || host == "" {
		return nil, fmt.Errorf("tunnel server URL %q: invalid host or port", cfg.ServerURL)
	}
	chiselURL := (&url.URL{Scheme: "http", Host: net.JoinHostPort(host, port), Path: u.Path}).String()

	user, pass, ok := strings.Cut(cfg.Auth, ":")
	if !ok || user == "" || pass == "" {
		return nil, errors.New("tunnel credential must have the form <label>:<password>")
	}
	if err := checkFingerprint(cfg.Fingerprint); err != nil {
		return nil, err
	}
	if len(cfg.Remotes) == 0 {
		return nil, errors.New("no tunnel remotes given")
	}
	for _, r := range cfg.Remotes {
		rem, err := settings.DecodeRemote(r)
		if err != nil {
			return nil, fmt.Errorf("tunnel remote %q: %w", r, err)
		}
		if !rem.Reverse {
			return nil, fmt.Errorf("tunnel remote %q: only reverse remotes (R:...) are supported", r)
		}
	}

	var tc *tls.Config
	if secure {
		if cfg.TLS != nil {
			tc = cfg.TLS.Clone()
		} else {
			tc = &tls.Config{}
		}
		if tc.InsecureSkipVerify {
			return nil, errors.New("TLS verification cannot be disabled for the tunnel")
		}
		if tc.ServerName == "" {
			tc.ServerName = host
		}
		if tc.MinVersion < tls.VersionTLS12 {
			tc.MinVersion = tls.VersionTLS12
		}
		// HTTP/1.1 only: the upgrade to WebSocket needs it.
		tc.NextProtos = []string{"http/1.1"}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	cfg.Remotes = append([]string(nil), cfg.Remotes...)
	return &Client{
		cfg:       cfg,
		chiselURL: chiselURL,
		tlsConf:   tc,
		log:       log,
		connected: make(chan struct{}),
		done:      make(chan struct{}),
	}, nil
}

// checkFingerprint accepts only chisel's SHA256 form (base64 of 32 bytes).
func checkFingerprint(fp string) error {
	if fp == "" {
		return errors.New("tunnel server fingerprint is required")
	}
	b, err := base64.StdEncoding.DecodeString(fp)
	if err != nil || len(b) != 32 {
		return fmt.Errorf("tunnel server fingerprint %q is not a SHA256 fingerprint (44 base64 characters)", fp)
	}
	return nil
}

// Connected returns a channel closed once the session is established and
// the relay accepted every remote.
func (c *Client) Connected() <-chan struct{} { return c.connected }

// Done returns a channel closed when Run has returned.
func (c *Client) Done() <-chan struct{} { return c.done }

// Ready waits until the session is established (nil), Run has ended (its
// error, or ErrConnection if it returned nil) or ctx is done (ctx.Err()).
func (c *Client) Ready(ctx context.Context) error {
	select {
	case <-c.connected:
		return nil
	case <-c.done:
		if c.runErr != nil {
			return c.runErr
		}
		return fmt.Errorf("%w: client stopped before connecting", ErrConnection)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run connects to the tunnel server and blocks while the session lasts. It
// returns nil when ctx is done, otherwise an error wrapping ErrRefused,
// ErrUnverified or ErrConnection. Run may be called only once.
func (c *Client) Run(ctx context.Context) error {
	if !c.started.CompareAndSwap(false, true) {
		return errors.New("tunnel client already used; create a new one")
	}
	err := c.run(ctx)
	c.runErr = err
	close(c.done)
	return err
}

func (c *Client) run(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return nil
	}
	chc, err := chclient.NewClient(&chclient.Config{
		Server:           c.chiselURL,
		Auth:             c.cfg.Auth,
		Fingerprint:      c.cfg.Fingerprint,
		Remotes:          append([]string(nil), c.cfg.Remotes...),
		KeepAlive:        c.cfg.KeepAlive,
		MaxRetryCount:    0, // one attempt: the caller owns reconnects
		MinRetryInterval: time.Second,
		MaxRetryInterval: time.Second,
		DialContext:      c.dial,
	})
	if err != nil {
		return fmt.Errorf("create tunnel client: %w", err)
	}
	// chisel logs "Connected" once the server accepted the configuration
	// (its own Ready() races with reconnect bookkeeping under -race, so
	// the log line is the signal).
	var once sync.Once
	chc.Logger.SetOutput(&chiselLogWriter{log: c.log, onErr: c.noteChiselErr, onConnected: func() {
		once.Do(func() { close(c.connected) })
	}})

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := chc.Start(runCtx); err != nil {
		return fmt.Errorf("%w: start: %v", ErrConnection, err)
	}
	waitErr := chc.Wait()
	cancel()
	if ctx.Err() != nil {
		return nil
	}
	return c.classify(waitErr)
}

func (c *Client) noteChiselErr(msg string) {
	c.mu.Lock()
	c.chiselErr = msg
	c.mu.Unlock()
}

// classify turns what the attempt left behind into one of the sentinel errors.
func (c *Client) classify(waitErr error) error {
	c.mu.Lock()
	dialErr, reply, msg := c.dialErr, c.httpReply, c.chiselErr
	c.mu.Unlock()
	wasConnected := false
	select {
	case <-c.connected:
		wasConnected = true
	default:
	}
	switch {
	case dialErr != nil && isVerifyError(dialErr):
		return fmt.Errorf("%w: TLS: %v", ErrUnverified, dialErr)
	case dialErr != nil:
		return fmt.Errorf("%w: %v", ErrConnection, dialErr)
	case strings.Contains(msg, "Invalid fingerprint") || strings.Contains(msg, "Error decoding fingerprint"):
		return fmt.Errorf("%w: server key does not match the fingerprint", ErrUnverified)
	case strings.Contains(msg, "unable to authenticate"):
		return fmt.Errorf("%w: credentials rejected", ErrRefused)
	case strings.Contains(msg, "denied") || strings.Contains(msg, "not enabled on server") ||
		strings.Contains(msg, "cannot listen"):
		return fmt.Errorf("%w: %s", ErrRefused, msg)
	case strings.Contains(msg, "bad handshake"):
		code := httpStatus(reply)
		if code == 400 || code == 401 || code == 403 || code == 495 || code == 496 {
			return fmt.Errorf("%w: HTTP %q (client certificate missing, invalid or revoked?)", ErrRefused, reply)
		}
		return fmt.Errorf("%w: upgrade refused: HTTP %q", ErrConnection, reply)
	case wasConnected:
		return fmt.Errorf("%w: session closed", ErrConnection)
	case msg != "":
		return fmt.Errorf("%w: %s", ErrConnection, msg)
	case waitErr != nil:
		return fmt.Errorf("%w: %v", ErrConnection, waitErr)
	default:
		return fmt.Errorf("%w: session ended", ErrConnection)
	}
}

func isVerifyError(err error) bool {
	var (
		cv *tls.CertificateVerificationError
		ua x509.UnknownAuthorityError
		ci x509.CertificateInvalidError
		hn x509.HostnameError
	)
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &ci) || errors.As(err, &hn)
}

func httpStatus(line string) int {
	f := strings.Fields(line)
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// dial is chisel's DialContext: TCP, then TLS when the URL asked for it,
// with a reader that notes the server's HTTP status line.
func (c *Client) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	if c.dialAddr != "" {
		addr = c.dialAddr
	}
	addr = loopbackForLocalhost(addr)
	var (
		conn net.Conn
		err  error
	)
	if c.tlsConf != nil {
		conn, err = (&tls.Dialer{NetDialer: d, Config: c.tlsConf}).DialContext(ctx, network, addr)
	} else {
		conn, err = d.DialContext(ctx, network, addr)
	}
	c.mu.Lock()
	c.dialErr = err
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	sc := &sniffConn{Conn: conn, note: func(line string) {
		c.mu.Lock()
		c.httpReply = line
		c.mu.Unlock()
	}}
	return newFrameConn(sc), nil
}

// sniffConn records the first line the server sends (the HTTP status line
// of the WebSocket upgrade), then passes bytes through untouched.
type sniffConn struct {
	net.Conn
	once sync.Once
	buf  []byte
	done bool
	note func(string)
}

func (s *sniffConn) Read(p []byte) (int, error) {
	n, err := s.Conn.Read(p)
	if !s.done && n > 0 {
		s.buf = append(s.buf, p[:n]...)
		if i := bytes.IndexByte(s.buf, '\n'); i >= 0 || len(s.buf) >= 128 {
			if i < 0 {
				i = len(s.buf)
			}
			line := strings.TrimSpace(string(s.buf[:i]))
			s.done, s.buf = true, nil
			s.once.Do(func() { s.note(line) })
		}
	}
	return n, err
}

// chiselLogWriter receives chisel's log lines ("2006/01/02 15:04:05 client:
// msg") and forwards them to slog; connection errors are also reported to
// onErr for classification. Chisel never logs the credential.
type chiselLogWriter struct {
	log         *slog.Logger
	onErr       func(string)
	onConnected func()
}

func (w *chiselLogWriter) Write(p []byte) (int, error) {
	sc := bufio.NewScanner(bytes.NewReader(p))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, "client: "); i >= 0 {
			line = line[i+len("client: "):]
		}
		switch {
		case strings.HasPrefix(line, "Connection error: "):
			w.onErr(strings.TrimPrefix(line, "Connection error: "))
			w.log.Warn("tunnel client", "msg", line)
		case strings.HasPrefix(line, "Authentication failed"):
			w.onErr("unable to authenticate")
			w.log.Warn("tunnel client", "msg", line)
		case strings.HasPrefix(line, "Connected"):
			w.onConnected()
			w.log.Info("tunnel client", "msg", line)
		case strings.HasPrefix(line, "Disconnected"):
			w.log.Info("tunnel client", "msg", line)
		default:
			w.log.Debug("tunnel client", "msg", line)
		}
	}
	return len(p), nil
}

var _ io.Writer = (*chiselLogWriter)(nil)

// loopbackForLocalhost maps names under .localhost to 127.0.0.1, as RFC 6761
// §6.3 asks of resolvers (browsers and curl do it; Go's resolver does not).
// The TLS server name stays the original host. The demo's relay lives at
// tunnel.demo.localhost.
func loopbackForLocalhost(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}
