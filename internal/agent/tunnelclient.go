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

// TunnelClientFactory builds real tunnel sessions (internal/tunnel) for id:
// the client certificate is presented to tunnel.<d>, whose certificate is
// verified against the system roots plus the pinned relay CA. The Runner
// asks for one session per tunnel; its logs carry the tunnel's fqdn.
func TunnelClientFactory(id *Identity, log *slog.Logger) TunnelFactory {
	return func(s Session) (TunnelSession, error) {
		tc, err := id.TunnelTLSConfig(s.ServerURL)
		if err != nil {
			return nil, err
		}
		l := log
		if len(s.Tunnels) == 1 && l != nil {
			l = l.With("fqdn", s.Tunnels[0].FQDN)
		}
		return tunnel.NewClient(tunnel.ClientConfig{
			ServerURL:   s.ServerURL,
			Auth:        s.Auth,
			Fingerprint: s.Fingerprint,
			Remotes:     s.Remotes,
			TLS:         tc,
			Logger:      l,
		})
	}
}
