package config

import (
	"encoding/json"
	"fmt"
	"os"
)

// Relay is what every relay process needs to know about its installation:
// where files are and which addresses to use. An
// installed relay uses ProductionRelay; `portlama demo` writes a relay.json
// in its directory and starts each process with --relay-config pointing at it.
type Relay struct {
	Layout Layout `json:"layout"`
	Addrs  Addrs  `json:"addrs"`

	// DNSServer is the resolver (host:port) for onboarding's DNS check;
	// empty means the system resolver.
	DNSServer string `json:"dnsServer,omitempty"`

	// ACME configures the ACME client beyond panel.json's acme settings.
	ACME ACMEClient `json:"acme,omitempty"`

	// Nginx names a self-run nginx (the demo's) that every relay process
	// tests and reloads instead of the system's nginx service.
	Nginx *NginxInstance `json:"nginx,omitempty"`
}

// ACMEClient are the ACME client's settings that belong to the machine
// rather than to panel.json: whom to trust for the CA's HTTPS (Pebble's
// test CA; Let's Encrypt needs none), which resolvers DNS-01 checks use,
// and which ACME profile to ask for (Pebble picks a random one otherwise).
type ACMEClient struct {
	CACertFile   string   `json:"caCertFile,omitempty"`
	DNSResolvers []string `json:"dnsResolvers,omitempty"`
	Profile      string   `json:"profile,omitempty"`
}

// NginxInstance is a self-run nginx: its instance directory (nginx.conf,
// nginx.pid, error.log).
type NginxInstance struct {
	Prefix string `json:"prefix"`
}

// ProductionRelay is the configuration of an installed relay.
func ProductionRelay() Relay {
	return Relay{Layout: ProductionLayout(), Addrs: DefaultAddrs()}
}

// LoadRelay reads a relay configuration file; an empty path yields
// ProductionRelay.
func LoadRelay(path string) (Relay, error) {
	if path == "" {
		return ProductionRelay(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Relay{}, fmt.Errorf("read relay config: %w", err)
	}
	var r Relay
	if err := json.Unmarshal(data, &r); err != nil {
		return Relay{}, fmt.Errorf("parse relay config %s: %w", path, err)
	}
	if r.Layout.DataDir == "" || r.Addrs.Panel == "" {
		return Relay{}, fmt.Errorf("relay config %s: layout.dataDir and addrs.panel are required", path)
	}
	return r, nil
}
