package agent

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/portlama/portlama/internal/tunnel"
)

// NewFetcher returns a ConfigFetcher that calls agent-config through c.
func NewFetcher(c *Client) ConfigFetcher {
	return func(ctx context.Context) (*AgentConfig, error) {
		cfg, err := c.AgentConfig(ctx)
		if err != nil {
			return nil, fmt.Errorf("fetch agent-config: %w", err)
		}
		return cfg, nil
	}
}

// TunnelClientFactory builds real tunnel clients (internal/tunnel) for id:
// the client certificate is presented to tunnel.<d>, whose certificate is
// verified against the system roots plus the pinned relay CA.
func TunnelClientFactory(id *Identity, version string, log *slog.Logger) TunnelFactory {
	return func(s TunnelServer) (TunnelClient, error) {
		tc, err := id.TunnelTLSConfig(s.URL)
		if err != nil {
			return nil, err
		}
		return tunnel.NewClient(tunnel.ClientConfig{
			ServerURL:   s.URL,
			Auth:        s.Auth,
			Fingerprint: s.Fingerprint,
			TLS:         tc,
			Version:     version,
			Logger:      log,
		})
	}
}
