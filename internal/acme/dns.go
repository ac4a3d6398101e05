package acme

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/go-acme/lego/v5/challenge"
	"github.com/go-acme/lego/v5/providers/dns/digitalocean"
)

// DNS providers the relay supports for DNS-01 (panel.json acme.dnsProvider).
const ProviderDigitalOcean = "digitalocean"

// Keys of the provider credentials file (acme-dns.env, 0600).
const (
	EnvDOToken  = "DO_AUTH_TOKEN"
	EnvDOAPIURL = "DO_API_URL" // optional: another API endpoint (tests)
)

// ReadCredentials reads a KEY=VALUE file (blank lines and # comments
// ignored). It refuses a file that others can read: it holds an API token.
func ReadCredentials(path string) (map[string]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read DNS provider credentials: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is readable by other users (mode %o); run chmod 600 %s", path, st.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read DNS provider credentials: %w", err)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("%s line %d: want KEY=VALUE", path, n)
		}
		out[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"'`)
	}
	return out, nil
}

// newDNSProvider builds the DNS-01 provider from its credentials file.
func newDNSProvider(name, credFile string) (challenge.Provider, error) {
	if name != ProviderDigitalOcean {
		return nil, fmt.Errorf("DNS provider %q is not supported (supported: %s)", name, ProviderDigitalOcean)
	}
	if credFile == "" {
		return nil, fmt.Errorf("no credentials file for DNS provider %s", name)
	}
	cred, err := ReadCredentials(credFile)
	if err != nil {
		return nil, err
	}
	token := cred[EnvDOToken]
	if token == "" {
		return nil, fmt.Errorf("%s has no %s (a DigitalOcean API token with write access to the domain)", credFile, EnvDOToken)
	}
	cfg := digitalocean.NewDefaultConfig()
	cfg.AuthToken = token
	cfg.PollingInterval = 500 * time.Millisecond
	cfg.PropagationTimeout = 2 * time.Minute
	if u := cred[EnvDOAPIURL]; u != "" {
		cfg.BaseURL = u
	}
	p, err := digitalocean.NewDNSProviderConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("DNS provider %s: %w", name, err)
	}
	return p, nil
}
