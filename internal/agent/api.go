package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// APIError is an error answer of the panel (contract §2.2). Message is the
// panel's "error" string, verbatim.
type APIError struct {
	Status  int
	Message string
	Details json.RawMessage
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	s := fmt.Sprintf("%s (HTTP %d)", msg, e.Status)
	if h := e.Hint(); h != "" {
		s += "\nhint: " + h
	}
	return s
}

// Hint returns advice for well-known panel errors, or "".
func (e *APIError) Hint() string {
	switch {
	case e.Message == "Insufficient certificate capability":
		var d struct {
			Required string `json:"required"`
		}
		_ = json.Unmarshal(e.Details, &d)
		if d.Required != "" {
			return fmt.Sprintf("this agent lacks the %q capability; an admin can grant it on the panel's Certificates page", d.Required)
		}
		return "this agent lacks a capability; an admin can grant it on the panel's Certificates page"
	case e.Message == "Certificate has been revoked":
		return "this agent was revoked on the relay; ask an admin for a new enrollment token and run setup again"
	case e.Message == "mTLS certificate required":
		return "the relay did not accept this agent's certificate (expired, or issued by another relay?)"
	case e.Message == "Onboarding not complete":
		return "finish the relay's onboarding in the panel first"
	case e.Status == http.StatusTooManyRequests:
		return "wait a minute and try again"
	}
	return ""
}

// Client calls the panel API as one agent.
type Client struct {
	base string
	http *http.Client
}

// NewClient returns a client for the panel at panelURL using tlsConf (from
// Identity.PanelTLSConfig, or the bootstrap config during setup).
func NewClient(panelURL string, tlsConf *tls.Config) *Client {
	tr := &http.Transport{
		TLSClientConfig:     tlsConf,
		Proxy:               http.ProxyFromEnvironment,
		TLSHandshakeTimeout: 15 * time.Second,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	return &Client{
		base: strings.TrimRight(panelURL, "/"),
		http: &http.Client{Transport: tr, Timeout: 30 * time.Second},
	}
}

// CloseIdle closes idle connections (the next call re-handshakes).
func (c *Client) CloseIdle() { c.http.CloseIdleConnections() }

// do sends a JSON request and decodes a JSON answer into out (may be nil).
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("build request %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%s %s: %w", method, c.base+path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return parseAPIError(resp.StatusCode, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: unexpected answer: %w", method, path, err)
	}
	return nil
}

func parseAPIError(status int, data []byte) error {
	var env struct {
		Error   string          `json:"error"`
		Details json.RawMessage `json:"details"`
	}
	if json.Unmarshal(data, &env) == nil && env.Error != "" {
		return &APIError{Status: status, Message: env.Error, Details: env.Details}
	}
	// Not a panel answer (nginx error page, proxy): say so plainly.
	msg := http.StatusText(status)
	if status == http.StatusBadRequest && bytes.Contains(data, []byte("SSL certificate")) {
		msg = "the relay refused this agent's client certificate"
	}
	return &APIError{Status: status, Message: msg}
}

// Health is GET /api/health.
type Health struct {
	Status  string `json:"status"`
	Version string `json:"version"`
}

// Health calls GET /api/health.
func (c *Client) Health(ctx context.Context) (Health, error) {
	var h Health
	if err := c.do(ctx, http.MethodGet, "/api/health", nil, &h); err != nil {
		return Health{}, err
	}
	if h.Status != "ok" {
		return h, fmt.Errorf("relay health is %q", h.Status)
	}
	return h, nil
}

// AgentConfig calls GET /api/tunnels/agent-config and validates the answer.
func (c *Client) AgentConfig(ctx context.Context) (*AgentConfig, error) {
	var raw json.RawMessage
	if err := c.do(ctx, http.MethodGet, "/api/tunnels/agent-config", nil, &raw); err != nil {
		return nil, err
	}
	return ParseAgentConfig(raw)
}

// Tunnel is the panel's tunnel object (contract §7.1).
type Tunnel struct {
	ID            string   `json:"id"`
	Subdomain     string   `json:"subdomain"`
	FQDN          string   `json:"fqdn"`
	AgentLabel    string   `json:"agentLabel"`
	Port          int      `json:"port"`
	TargetHost    string   `json:"targetHost"`
	RelayPort     int      `json:"relayPort"`
	Description   *string  `json:"description"`
	Type          string   `json:"type"`
	AccessMode    string   `json:"accessMode,omitempty"`
	AllowedUsers  []string `json:"allowedUsers,omitempty"`
	AllowedGroups []string `json:"allowedGroups,omitempty"`
	Enabled       *bool    `json:"enabled,omitempty"`
	CreatedAt     string   `json:"createdAt"`
}

// IsEnabled reports the enabled flag; a missing value counts as true.
func (t Tunnel) IsEnabled() bool { return t.Enabled == nil || *t.Enabled }

// ListTunnels calls GET /api/tunnels.
func (c *Client) ListTunnels(ctx context.Context) ([]Tunnel, error) {
	var out struct {
		Tunnels []Tunnel `json:"tunnels"`
	}
	if err := c.do(ctx, http.MethodGet, "/api/tunnels", nil, &out); err != nil {
		return nil, err
	}
	return out.Tunnels, nil
}

// NewTunnel is the body of POST /api/tunnels (contract §7.3).
type NewTunnel struct {
	Subdomain     string   `json:"subdomain"`
	Port          int      `json:"port"`
	TargetHost    string   `json:"targetHost,omitempty"`
	Description   string   `json:"description,omitempty"`
	AccessMode    string   `json:"accessMode,omitempty"`
	AllowedUsers  []string `json:"allowedUsers,omitempty"`
	AllowedGroups []string `json:"allowedGroups,omitempty"`
}

// CreateTunnel calls POST /api/tunnels.
func (c *Client) CreateTunnel(ctx context.Context, t NewTunnel) (Tunnel, error) {
	var out struct {
		Tunnel Tunnel `json:"tunnel"`
	}
	if err := c.do(ctx, http.MethodPost, "/api/tunnels", t, &out); err != nil {
		return Tunnel{}, err
	}
	return out.Tunnel, nil
}

// SetTunnelEnabled calls PATCH /api/tunnels/:id with {"enabled": enabled}.
func (c *Client) SetTunnelEnabled(ctx context.Context, id string, enabled bool) (Tunnel, error) {
	var out struct {
		Tunnel Tunnel `json:"tunnel"`
	}
	if err := c.do(ctx, http.MethodPatch, "/api/tunnels/"+url.PathEscape(id), map[string]bool{"enabled": enabled}, &out); err != nil {
		return Tunnel{}, err
	}
	return out.Tunnel, nil
}

// DeleteTunnel calls DELETE /api/tunnels/:id.
func (c *Client) DeleteTunnel(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/api/tunnels/"+url.PathEscape(id), nil, nil)
}

// EnrollResult is the answer of POST /api/enroll (contract §11.4).
type EnrollResult struct {
	OK        bool   `json:"ok"`
	Cert      string `json:"cert"`
	CACert    string `json:"caCert"`
	Label     string `json:"label"`
	Serial    string `json:"serial"`
	ExpiresAt string `json:"expiresAt"`
}

// Enroll calls POST /api/enroll with a one-time token and a CSR.
func (c *Client) Enroll(ctx context.Context, token string, csrPEM []byte) (EnrollResult, error) {
	var out EnrollResult
	err := c.do(ctx, http.MethodPost, "/api/enroll", map[string]string{"token": token, "csr": string(csrPEM)}, &out)
	if err != nil {
		return EnrollResult{}, err
	}
	if !out.OK || out.Cert == "" || out.CACert == "" || out.Label == "" {
		return EnrollResult{}, errors.New("enroll: the relay's answer lacks the certificate, CA or label")
	}
	return out, nil
}
