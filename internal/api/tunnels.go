package api

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/portlama/portlama/internal/validate"
)

// TunnelType is what a tunnel serves.
type TunnelType string

// Tunnel types.
const (
	TypeApp   TunnelType = "app"   // a web app behind the login portal (or public)
	TypePanel TunnelType = "panel" // an agent's own panel, mTLS-protected (agent-<label>)
)

// AccessMode says who may reach an app tunnel.
type AccessMode string

// Access modes.
const (
	AccessAuthenticated AccessMode = "authenticated" // any user after password + TOTP (default)
	AccessRestricted    AccessMode = "restricted"    // only allowedUsers and members of allowedGroups
	AccessPublic        AccessMode = "public"        // no login
)

// Tunnel is a tunnel as stored in tunnels.json and returned by every
// tunnel route.
type Tunnel struct {
	ID          string     `json:"id"`
	Subdomain   string     `json:"subdomain"`
	FQDN        string     `json:"fqdn"`
	AgentLabel  string     `json:"agentLabel"`
	Port        int        `json:"port"`       // local port on the agent's side
	TargetHost  string     `json:"targetHost"` // where the agent connects
	RelayPort   int        `json:"relayPort"`  // loopback port on the relay
	Description *string    `json:"description"`
	Type        TunnelType `json:"type"`
	// AccessMode, AllowedUsers and AllowedGroups are absent for panel
	// tunnels.
	AccessMode    AccessMode `json:"accessMode,omitempty"`
	AllowedUsers  *[]string  `json:"allowedUsers,omitempty"`
	AllowedGroups *[]string  `json:"allowedGroups,omitempty"`
	// Enabled: a missing value counts as true (IsEnabled).
	Enabled   *bool  `json:"enabled,omitempty"`
	CreatedAt string `json:"createdAt"`
	// Connected: the agent has bound the tunnel's relay port right now
	// (GET /api/tunnels only; absent when the tunnel server does not
	// answer, and never stored).
	Connected *bool `json:"connected,omitempty"`
}

// IsEnabled reports whether the tunnel is enabled; a missing value counts as
// enabled.
func (t Tunnel) IsEnabled() bool { return t.Enabled == nil || *t.Enabled }

// CreateTunnelRequest is the body of POST /api/tunnels. Empty optional
// fields are omitted and get the relay's defaults.
type CreateTunnelRequest struct {
	Subdomain     string     `json:"subdomain"`
	Port          int        `json:"port"`
	TargetHost    string     `json:"targetHost,omitempty"`
	Description   string     `json:"description,omitempty"`
	Type          TunnelType `json:"type,omitempty"`
	AgentLabel    string     `json:"agentLabel,omitempty"`
	AccessMode    AccessMode `json:"accessMode,omitempty"`
	AllowedUsers  []string   `json:"allowedUsers,omitempty"`
	AllowedGroups []string   `json:"allowedGroups,omitempty"`
}

// UpdateTunnelRequest is the body of PATCH /api/tunnels/:id: at least one
// field; nil fields are absent.
type UpdateTunnelRequest struct {
	Enabled       *bool       `json:"enabled,omitempty"`
	AccessMode    *AccessMode `json:"accessMode,omitempty"`
	AllowedUsers  *[]string   `json:"allowedUsers,omitempty"`
	AllowedGroups *[]string   `json:"allowedGroups,omitempty"`
}

// ExposePanelRequest is the body of POST /api/tunnels/expose-panel.
type ExposePanelRequest struct {
	Port int `json:"port"`
}

// TunnelResponse answers POST /api/tunnels, PATCH /api/tunnels/:id and
// POST /api/tunnels/expose-panel.
type TunnelResponse struct {
	OK     bool   `json:"ok"`
	Tunnel Tunnel `json:"tunnel"`
	// Warning: the change is saved but a relay service did not confirm it
	// is in force yet (docs/api.md, "Changes in force").
	Warning string `json:"warning,omitempty"`
}

// TunnelList answers GET /api/tunnels (newest first).
type TunnelList struct {
	Tunnels []Tunnel `json:"tunnels"`
}

// AgentPanelStatus answers GET /api/tunnels/agent-panel-status.
type AgentPanelStatus struct {
	Enabled bool    `json:"enabled"`
	FQDN    *string `json:"fqdn"`
	Port    *int    `json:"port"`
}

// MacPlist answers GET /api/tunnels/mac-plist?format=json.
type MacPlist struct {
	Plist        string               `json:"plist"`
	Instructions MacPlistInstructions `json:"instructions"`
}

// MacPlistInstructions tell how to install the launchd job.
type MacPlistInstructions struct {
	Download     string `json:"download"`
	Install      string `json:"install"`
	Uninstall    string `json:"uninstall"`
	Logs         string `json:"logs"`
	Status       string `json:"status"`
	Prerequisite string `json:"prerequisite"`
	Certificate  string `json:"certificate"`
}

// AgentConfig answers GET /api/tunnels/agent-config: the calling agent's
// tunnel server, credential and enabled tunnels (createdAt order).
type AgentConfig struct {
	Domain          string        `json:"domain"`
	ChiselServerURL string        `json:"chiselServerUrl"`
	Auth            string        `json:"auth"` // "<label>:<password>", a secret
	Fingerprint     string        `json:"fingerprint"`
	ChiselArgs      []string      `json:"chiselArgs"`
	Tunnels         []AgentTunnel `json:"tunnels"`
}

// AgentTunnel is one enabled tunnel as its agent sees it.
type AgentTunnel struct {
	ID         string     `json:"id"`
	Subdomain  string     `json:"subdomain"`
	FQDN       string     `json:"fqdn"`
	Port       int        `json:"port"`
	TargetHost string     `json:"targetHost"`
	RelayPort  int        `json:"relayPort"`
	Type       TunnelType `json:"type"`
}

// DefaultTargetHost is where an agent connects when a tunnel names no
// targetHost.
const DefaultTargetHost = "127.0.0.1"

func (t AgentTunnel) target() string {
	if t.TargetHost == "" {
		return DefaultTargetHost
	}
	return t.TargetHost
}

// Remote is the chisel reverse remote of the tunnel:
// R:127.0.0.1:<relayPort>:<targetHost>:<port>, an IPv6 target in brackets.
func (t AgentTunnel) Remote() string {
	host := t.target()
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return "R:127.0.0.1:" + strconv.Itoa(t.RelayPort) + ":" + host + ":" + strconv.Itoa(t.Port)
}

// Local is where the tunnel's traffic goes on the agent's side (host:port).
func (t AgentTunnel) Local() string {
	return net.JoinHostPort(t.target(), strconv.Itoa(t.Port))
}

// Remotes returns the chisel remotes of all tunnels, in order.
func (c *AgentConfig) Remotes() []string {
	out := make([]string, 0, len(c.Tunnels))
	for _, t := range c.Tunnels {
		out = append(out, t.Remote())
	}
	return out
}

// Validate checks an agent-config before its values become chisel
// arguments: the server URL is https/wss with a host and nothing else,
// the credential is <user>:<password> without spaces, the fingerprint is
// chisel's SHA-256 form, ports are in range and distinct, target hosts
// follow the relay's rule. A missing targetHost becomes 127.0.0.1.
func (c *AgentConfig) Validate() error {
	u, err := url.Parse(c.ChiselServerURL)
	if err != nil {
		return fmt.Errorf("chiselServerUrl: %w", err)
	}
	if u.Scheme != "https" && u.Scheme != "wss" {
		return fmt.Errorf("chiselServerUrl %q: must be https:// or wss://", c.ChiselServerURL)
	}
	if u.Hostname() == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return fmt.Errorf("chiselServerUrl %q: expected https://<host>[:port]", c.ChiselServerURL)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("chiselServerUrl %q: bad port", c.ChiselServerURL)
		}
	}
	user, pass, ok := strings.Cut(c.Auth, ":")
	if !ok || user == "" || pass == "" || hasControlOrSpace(c.Auth) {
		return errors.New("auth: expected <user>:<password>")
	}
	if !validFingerprint(c.Fingerprint) {
		return errors.New("fingerprint: expected chisel's SHA-256 base64 (44 characters) form")
	}
	seen := map[int]bool{}
	for i := range c.Tunnels {
		t := &c.Tunnels[i]
		if t.TargetHost == "" {
			t.TargetHost = DefaultTargetHost
		}
		if t.RelayPort < 1 || t.RelayPort > 65535 {
			return fmt.Errorf("tunnels[%d]: relayPort %d out of range", i, t.RelayPort)
		}
		if seen[t.RelayPort] {
			return fmt.Errorf("tunnels[%d]: relayPort %d listed twice", i, t.RelayPort)
		}
		seen[t.RelayPort] = true
		if t.Port < 1 || t.Port > 65535 {
			return fmt.Errorf("tunnels[%d]: port %d out of range", i, t.Port)
		}
		if err := validate.TargetHost(t.TargetHost); err != nil {
			return fmt.Errorf("tunnels[%d]: targetHost %q: %w", i, t.TargetHost, err)
		}
		if hasControlOrSpace(t.FQDN) || hasControlOrSpace(t.Subdomain) {
			return fmt.Errorf("tunnels[%d]: bad fqdn or subdomain", i)
		}
	}
	return nil
}

func hasControlOrSpace(s string) bool {
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return true
		}
	}
	return false
}

// validFingerprint accepts chisel's SHA-256 fingerprint form: base64 of 32
// bytes (44 characters). The legacy MD5 form is refused.
func validFingerprint(fp string) bool {
	if len(fp) != 44 {
		return false
	}
	b, err := base64.StdEncoding.DecodeString(fp)
	return err == nil && len(b) == 32
}
