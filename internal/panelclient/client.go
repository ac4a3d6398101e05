// Package panelclient is the typed client of the panel's REST API
// (docs/api.md), over mTLS: one method per route, taking and returning the
// types of internal/api. The agent CLI, the demo, the end-to-end tests and
// the benchmarks use it; the desktop app will.
//
// Every non-2xx answer is an *api.Error (status and envelope), to be
// inspected with errors.Is / errors.As:
//
//	c := panelclient.New("https://203.0.113.7:9292", panelclient.HTTPClient(tlsConf))
//	t, err := c.CreateTunnel(ctx, api.CreateTunnelRequest{Subdomain: "app", Port: 8080})
//	switch {
//	case errors.Is(err, api.ErrTwoFARequired): // ask for a code, c.VerifyTwoFA, retry
//	case errors.Is(err, api.ErrCertificateRequired): // nginx or the panel refused the certificate
//	}
//
// It copes with what sits in front of the panel: nginx answers some
// refusals itself (no client certificate, 413, 429), as JSON when asked for
// it and as an HTML page otherwise; both become an *api.Error. The panel
// 2FA session cookie is kept by the client once VerifyTwoFA or
// ConfirmTwoFA succeeded, and refreshed when the panel slides it.
package panelclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/portlama/portlama/internal/api"
)

// maxAnswer bounds the answers read (the largest is a P12 bundle).
const maxAnswer = 4 << 20

// Client calls one panel. It is safe for concurrent use.
type Client struct {
	base string
	http *http.Client

	mu        sync.Mutex
	twoFA     *http.Cookie // the panel 2FA session, once verified
	onWarning func(string)
}

// OnWarning has fn called with the "warning" of every successful answer
// that carries one: the change is saved, but a relay service did not
// confirm it is in force yet (docs/api.md, "Changes in force").
func (c *Client) OnWarning(fn func(warning string)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onWarning = fn
}

// HTTPClient returns an HTTP client for the panel with tlsConf (the client
// certificate and how the panel is verified) and sane timeouts.
func HTTPClient(tlsConf *tls.Config) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:     tlsConf,
			Proxy:               http.ProxyFromEnvironment,
			TLSHandshakeTimeout: 15 * time.Second,
			IdleConnTimeout:     90 * time.Second,
			ForceAttemptHTTP2:   true,
		},
	}
}

// New returns a client for the panel at baseURL (https://<ip>:9292 or
// https://panel.<d>) sending its requests through hc.
func New(baseURL string, hc *http.Client) *Client {
	return &Client{base: strings.TrimRight(baseURL, "/"), http: hc}
}

// CloseIdle closes idle connections (the next call re-handshakes).
func (c *Client) CloseIdle() { c.http.CloseIdleConnections() }

// TwoFASession returns the panel 2FA session cookie the client holds, or
// nil.
func (c *Client) TwoFASession() *http.Cookie {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.twoFA
}

// SetTwoFASession makes the client send cookie (nil: none).
func (c *Client) SetTwoFASession(cookie *http.Cookie) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.twoFA = cookie
}

// do sends a request with in as its JSON body (nil: none) and decodes a
// JSON answer into out (nil: ignored).
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	data, _, err := c.send(ctx, method, path, in)
	if err != nil {
		return err
	}
	c.warn(data)
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: unexpected answer: %w", method, path, err)
	}
	return nil
}

// warn hands an answer's warning to the OnWarning hook.
func (c *Client) warn(data []byte) {
	c.mu.Lock()
	fn := c.onWarning
	c.mu.Unlock()
	if fn == nil {
		return
	}
	var w struct {
		Warning string `json:"warning"`
	}
	if json.Unmarshal(data, &w) == nil && w.Warning != "" {
		fn(w.Warning)
	}
}

// send sends a request and returns the body of a 2xx answer.
func (c *Client) send(ctx context.Context, method, path string, in any) ([]byte, http.Header, error) {
	var body io.Reader
	contentType := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, nil, fmt.Errorf("encode request: %w", err)
		}
		body, contentType = bytes.NewReader(b), "application/json"
	}
	return c.roundTrip(ctx, c.http, method, path, body, contentType, maxAnswer)
}

// roundTrip sends one request through hc and returns the body of a 2xx
// answer, read up to limit bytes.
func (c *Client) roundTrip(ctx context.Context, hc *http.Client, method, path string, body io.Reader, contentType string, limit int64) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, nil, fmt.Errorf("build request %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if ck := c.TwoFASession(); ck != nil {
		req.AddCookie(ck)
	}
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, nil, fmt.Errorf("%s %s: %w", method, c.base+path, err)
	}
	defer resp.Body.Close()
	c.keepSession(resp)
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, nil, ParseError(resp.StatusCode, resp.Header.Get("Content-Type"), data)
	}
	return data, resp.Header, nil
}

// keepSession follows the panel's 2FA cookie: set, refreshed or cleared.
func (c *Client) keepSession(resp *http.Response) {
	for _, ck := range resp.Cookies() {
		if ck.Name != api.TwoFACookieName {
			continue
		}
		if ck.MaxAge < 0 || ck.Value == "" {
			c.SetTwoFASession(nil)
		} else {
			c.SetTwoFASession(&http.Cookie{Name: ck.Name, Value: ck.Value})
		}
	}
}

// ParseError turns a non-2xx answer into an *api.Error: the panel's
// envelope as it is; nginx's answers (a JSON envelope, or an HTML page) by
// what they say. A refused client certificate always carries the message
// api.MsgCertificateRequired.
func ParseError(status int, contentType string, body []byte) *api.Error {
	var e api.Error
	if mt, _, _ := mime.ParseMediaType(contentType); (mt == "application/json" || contentType == "") &&
		json.Unmarshal(body, &e) == nil && e.Message != "" {
		e.Status = status
		return &e
	}
	e = api.Error{Status: status, Message: http.StatusText(status)}
	if e.Message == "" {
		e.Message = fmt.Sprintf("HTTP %d", status)
	}
	// nginx's pages for a missing or refused client certificate (400, or
	// 495/496 when not rewritten).
	if status == 495 || status == 496 || (status == http.StatusBadRequest && bytes.Contains(body, []byte("SSL certificate"))) {
		e.Message = api.MsgCertificateRequired
	}
	return &e
}
