// Package config holds the relay's typed configuration: where its files live
// (Layout), which addresses its processes use (Addrs), and the panel.json
// document. Values are built once at start-up and passed down; no package
// reads process-wide configuration on its own.
package config

import (
	"net"
	"path/filepath"
	"strconv"
)

// Layout says where the relay keeps its files. Production uses
// ProductionLayout; the demo and the tests put everything under one
// temporary directory with DirLayout.
type Layout struct {
	DataDir     string // /etc/portlama: panel.json, tunnels.json, pki/, tunnel/, auth/, proxy-secret
	NginxDir    string // /etc/nginx: conf.d/, snippets/, sites-available/, sites-enabled/
	WWWDir      string // /var/www/portlama: cert-help page, invite page, static sites
	CertsDir    string // ACME certificate store (<certs> in the contract)
	ACMEWebroot string // webroot served at /.well-known/acme-challenge/ on :80
}

// ProductionLayout is the layout of an installed relay.
func ProductionLayout() Layout {
	return Layout{
		DataDir:     "/etc/portlama",
		NginxDir:    "/etc/nginx",
		WWWDir:      "/var/www/portlama",
		CertsDir:    "/etc/portlama/certs",
		ACMEWebroot: "/var/www/portlama/acme",
	}
}

// DirLayout puts every part of the relay below root, for the demo and tests.
func DirLayout(root string) Layout {
	return Layout{
		DataDir:     filepath.Join(root, "etc"),
		NginxDir:    filepath.Join(root, "nginx"),
		WWWDir:      filepath.Join(root, "www"),
		CertsDir:    filepath.Join(root, "etc", "certs"),
		ACMEWebroot: filepath.Join(root, "www", "acme"),
	}
}

func (l Layout) PanelConfig() string     { return filepath.Join(l.DataDir, "panel.json") }
func (l Layout) PanelSecrets() string    { return filepath.Join(l.DataDir, PanelSecretsName) }
func (l Layout) TunnelsFile() string     { return filepath.Join(l.DataDir, "tunnels.json") }
func (l Layout) SitesFile() string       { return filepath.Join(l.DataDir, "sites.json") }
func (l Layout) InvitationsFile() string { return filepath.Join(l.DataDir, "invitations.json") }
func (l Layout) ProxySecretFile() string { return filepath.Join(l.DataDir, "proxy-secret") }
func (l Layout) PKIDir() string          { return filepath.Join(l.DataDir, "pki") }
func (l Layout) TunnelDir() string       { return filepath.Join(l.DataDir, "tunnel") }
func (l Layout) AuthDir() string         { return filepath.Join(l.DataDir, "auth") }

func (l Layout) NginxSitesAvailable() string { return filepath.Join(l.NginxDir, "sites-available") }
func (l Layout) NginxSitesEnabled() string   { return filepath.Join(l.NginxDir, "sites-enabled") }
func (l Layout) NginxSnippets() string       { return filepath.Join(l.NginxDir, "snippets") }
func (l Layout) NginxConfD() string          { return filepath.Join(l.NginxDir, "conf.d") }

// Addrs are the addresses of the relay's processes. Production uses
// DefaultAddrs; the demo and tests choose free loopback ports.
type Addrs struct {
	Panel  string `json:"panel"`  // panel HTTP API, 127.0.0.1:3100
	Tunnel string `json:"tunnel"` // tunnel server, 127.0.0.1:9090
	Auth   string `json:"auth"`   // auth server, 127.0.0.1:9091

	// Public ports nginx listens on. In production 80, 443 and 9292 on all
	// addresses; the demo binds loopback and unprivileged ports.
	NginxListenHost string `json:"nginxListenHost,omitempty"` // "" for all addresses, "127.0.0.1" in the demo
	HTTPPort        int    `json:"httpPort"`                  // 80: ACME http-01 + redirect to https
	HTTPSPort       int    `json:"httpsPort"`                 // 443: domain vhosts
	PanelIPPort     int    `json:"panelIpPort"`               // 9292: admin panel by IP, mTLS
}

// DefaultAddrs are the addresses of an installed relay.
func DefaultAddrs() Addrs {
	return Addrs{
		Panel:       "127.0.0.1:3100",
		Tunnel:      "127.0.0.1:9090",
		Auth:        "127.0.0.1:9091",
		HTTPPort:    80,
		HTTPSPort:   443,
		PanelIPPort: 9292,
	}
}

// HostURL returns https://<sub>.<domain> (https://<domain> for an empty
// sub) with ":<port>" when the relay's HTTPS port is not 443: the one place
// where the relay's public URLs are built.
func (a Addrs) HostURL(sub, domain string) string {
	host := domain
	if sub != "" {
		host = sub + "." + domain
	}
	if a.HTTPSPort != 0 && a.HTTPSPort != 443 {
		host += ":" + strconv.Itoa(a.HTTPSPort)
	}
	return "https://" + host
}

// PanelIPURL returns https://<ip>:<panel IP port>, the panel by the relay's
// IP (brackets for IPv6): the one place where that address is built.
func (a Addrs) PanelIPURL(ip string) string {
	return "https://" + net.JoinHostPort(ip, strconv.Itoa(a.PanelIPPort))
}
