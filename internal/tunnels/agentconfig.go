package tunnels

import (
	"encoding/xml"
	"strings"

	"github.com/portlama/portlama/internal/api"
)

// BuildAgentConfig assembles an agent's configuration (docs/api.md, "Tunnels") from
// its enabled tunnels (createdAt order), its tunnel credential and the
// server's fingerprint.
func BuildAgentConfig(domain, serverURL, label, password, fingerprint string, enabled []api.Tunnel) api.AgentConfig {
	auth := label + ":" + password
	cfg := api.AgentConfig{
		Domain:          domain,
		ChiselServerURL: serverURL,
		Auth:            auth,
		Fingerprint:     fingerprint,
		ChiselArgs:      []string{"client", "--auth", auth, "--fingerprint", fingerprint, serverURL},
		Tunnels:         []api.AgentTunnel{},
	}
	for _, t := range enabled {
		at := api.AgentTunnel{
			ID: t.ID, Subdomain: t.Subdomain, FQDN: t.FQDN, Port: t.Port,
			TargetHost: t.TargetHost, RelayPort: t.RelayPort, Type: t.Type,
		}
		cfg.ChiselArgs = append(cfg.ChiselArgs, at.Remote())
		cfg.Tunnels = append(cfg.Tunnels, at)
	}
	return cfg
}

// MacPlist renders the launchd job for a stock chisel client (docs/api.md, "Tunnels").
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
func MacPlistInstructions() api.MacPlistInstructions {
	return api.MacPlistInstructions{
		Download:     "Save the plist to ~/Library/LaunchAgents/com.portlama.chisel.plist and run: chmod 600 ~/Library/LaunchAgents/com.portlama.chisel.plist (it holds your tunnel credential)",
		Install:      "launchctl load ~/Library/LaunchAgents/com.portlama.chisel.plist",
		Uninstall:    "launchctl unload ~/Library/LaunchAgents/com.portlama.chisel.plist",
		Logs:         "tail -f /usr/local/var/log/chisel.log",
		Status:       "launchctl list | grep chisel",
		Prerequisite: "brew install chisel",
		Certificate:  "Export this agent's certificate and key to /usr/local/etc/portlama/client.crt and /usr/local/etc/portlama/client.key (chmod 600 the key)",
	}
}
