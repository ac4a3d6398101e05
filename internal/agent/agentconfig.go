package agent

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/portlama/portlama/internal/validate"
)

// AgentConfig is the answer of GET /api/tunnels/agent-config (contract §7.6)
// after validation.
type AgentConfig struct {
	Domain          string        `json:"domain"`
	ChiselServerURL string        `json:"chiselServerUrl"`
	Auth            string        `json:"auth"`
	Fingerprint     string        `json:"fingerprint"`
	ChiselArgs      []string      `json:"chiselArgs,omitempty"`
	Tunnels         []AgentTunnel `json:"tunnels"`
}

// AgentTunnel is one enabled tunnel in agent-config.
type AgentTunnel struct {
	ID         string `json:"id"`
	Subdomain  string `json:"subdomain"`
	FQDN       string `json:"fqdn"`
	Port       int    `json:"port"`
	TargetHost string `json:"targetHost"`
	RelayPort  int    `json:"relayPort"`
	Type       string `json:"type"`
}

// ParseAgentConfig decodes and validates an agent-config document. It
// rejects anything that could not safely become chisel arguments: a server
// URL that is not https/wss, malformed credentials or fingerprint, ports out
// of range, and target hosts that are not a hostname or IP address. A
// missing targetHost means 127.0.0.1.
func ParseAgentConfig(data []byte) (*AgentConfig, error) {
	var c AgentConfig
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("parse agent-config: %w", err)
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("invalid agent-config: %w", err)
	}
	return &c, nil
}

func (c *AgentConfig) validate() error {
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
			t.TargetHost = "127.0.0.1"
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
		if err := ValidateTargetHost(t.TargetHost); err != nil {
			return fmt.Errorf("tunnels[%d]: %w", i, err)
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
// bytes (44 characters ending in "="). The legacy MD5 form is refused.
func validFingerprint(fp string) bool {
	if len(fp) != 44 {
		return false
	}
	b, err := base64.StdEncoding.DecodeString(fp)
	return err == nil && len(b) == 32
}

// ValidateTargetHost checks a tunnel's targetHost with the relay's own rule
// (contract §2.6, internal/validate): a lower-case DNS hostname, a dotted
// IPv4 address, or an IPv6 address without brackets or zone.
func ValidateTargetHost(h string) error {
	if err := validate.TargetHost(h); err != nil {
		return fmt.Errorf("targetHost %q: %w", h, err)
	}
	return nil
}

// Remote is the chisel reverse remote of a tunnel:
// R:127.0.0.1:<relayPort>:<targetHost>:<port>, with an IPv6 target in
// brackets.
func (t AgentTunnel) Remote() string {
	host := t.TargetHost
	if host == "" {
		host = "127.0.0.1"
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return "R:127.0.0.1:" + strconv.Itoa(t.RelayPort) + ":" + host + ":" + strconv.Itoa(t.Port)
}

// Local is where the tunnel's traffic goes on this side (host:port).
func (t AgentTunnel) Local() string {
	host := t.TargetHost
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, strconv.Itoa(t.Port))
}

// Remotes returns the chisel remotes of all tunnels, in agent-config order.
func (c *AgentConfig) Remotes() []string {
	out := make([]string, 0, len(c.Tunnels))
	for _, t := range c.Tunnels {
		out = append(out, t.Remote())
	}
	return out
}
