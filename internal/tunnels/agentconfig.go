package tunnels

import (
	"encoding/xml"
	"fmt"
	"net/netip"
	"strings"
)

// AgentConfig is the GET /api/tunnels/agent-config body (contract §7.6).
type AgentConfig struct {
	Domain          string        `json:"domain"`
	ChiselServerURL string        `json:"chiselServerUrl"`
	Auth            string        `json:"auth"`
	Fingerprint     string        `json:"fingerprint"`
	ChiselArgs      []string      `json:"chiselArgs"`
	Tunnels         []AgentTunnel `json:"tunnels"`
}

// AgentTunnel is one enabled tunnel as an agent sees it.
type AgentTunnel struct {
	ID         string `json:"id"`
	Subdomain  string `json:"subdomain"`
	FQDN       string `json:"fqdn"`
	Port       int    `json:"port"`
	TargetHost string `json:"targetHost"`
	RelayPort  int    `json:"relayPort"`
	Type       string `json:"type"`
}

// Remote is the chisel reverse remote for a tunnel:
// R:127.0.0.1:<relayPort>:<targetHost>:<port>, an IPv6 target in brackets.
func Remote(relayPort int, targetHost string, port int) string {
	host := targetHost
	if a, err := netip.ParseAddr(targetHost); err == nil && a.Is6() {
		host = "[" + targetHost + "]"
	}
	return fmt.Sprintf("R:127.0.0.1:%d:%s:%d", relayPort, host, port)
}

// BuildAgentConfig assembles an agent's configuration from its enabled
// tunnels (createdAt order), its tunnel credential and the server's
// fingerprint.
func BuildAgentConfig(domain, serverURL, label, password, fingerprint string, enabled []Tunnel) AgentConfig {
	auth := label + ":" + password
	cfg := AgentConfig{
		Domain:          domain,
		ChiselServerURL: serverURL,
		Auth:            auth,
		Fingerprint:     fingerprint,
		ChiselArgs:      []string{"client", "--auth", auth, "--fingerprint", fingerprint, serverURL},
		Tunnels:         []AgentTunnel{},
	}
	for _, t := range enabled {
		cfg.ChiselArgs = append(cfg.ChiselArgs, Remote(t.RelayPort, t.TargetHost, t.Port))
		cfg.Tunnels = append(cfg.Tunnels, AgentTunnel{
			ID: t.ID, Subdomain: t.Subdomain, FQDN: t.FQDN, Port: t.Port,
			TargetHost: t.TargetHost, RelayPort: t.RelayPort, Type: t.Type,
		})
	}
	return cfg
}

// MacPlist renders the launchd job for a stock chisel client (contract §7.7).
func MacPlist(chiselArgs []string) string {
	args := []string{"/usr/local/bin/chisel"}
	if len(chiselArgs) > 0 {
		args = append(args, chiselArgs[0],
			"--tls-cert", "/usr/local/etc/portlama/client.crt",
			"--tls-key", "/usr/local/etc/portlama/client.key")
		args = append(args, chiselArgs[1:]...)
	}
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>Label</key>
  <string>com.portlama.chisel</string>
  <key>ProgramArguments</key>
  <array>
`)
	for _, a := range args {
		b.WriteString("    <string>" + xmlEscape(a) + "</string>\n")
	}
	b.WriteString(`  </array>
  <key>KeepAlive</key>
  <true/>
  <key>RunAtLoad</key>
  <true/>
  <key>StandardOutPath</key>
  <string>/usr/local/var/log/chisel.log</string>
  <key>StandardErrorPath</key>
  <string>/usr/local/var/log/chisel.error.log</string>
  <key>EnvironmentVariables</key>
  <dict>
    <key>PATH</key>
    <string>/usr/local/bin:/usr/bin:/bin</string>
  </dict>
</dict>
</plist>
`)
	return b.String()
}

func xmlEscape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// MacPlistInstructions are the `instructions` of ?format=json.
func MacPlistInstructions() map[string]string {
	return map[string]string{
		"download":     "Save the plist to ~/Library/LaunchAgents/com.portlama.chisel.plist and run: chmod 600 ~/Library/LaunchAgents/com.portlama.chisel.plist (it holds your tunnel credential)",
		"install":      "launchctl load ~/Library/LaunchAgents/com.portlama.chisel.plist",
		"uninstall":    "launchctl unload ~/Library/LaunchAgents/com.portlama.chisel.plist",
		"logs":         "tail -f /usr/local/var/log/chisel.log",
		"status":       "launchctl list | grep chisel",
		"prerequisite": "brew install chisel",
		"certificate":  "Export this agent's certificate and key to /usr/local/etc/portlama/client.crt and /usr/local/etc/portlama/client.key (chmod 600 the key)",
	}
}
