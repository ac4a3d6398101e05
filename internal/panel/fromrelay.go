package panel

import (
	"log/slog"

	"github.com/portlama/portlama/internal/relay"
	"github.com/portlama/portlama/internal/system"
)

// FromRelay returns the panel configuration for the services of an opened
// relay (relay.Open is where they are connected; this only hands them
// over). Callers set Version and, in tests, Now or RateLimit.
func FromRelay(s *relay.Services, version string, log *slog.Logger) Config {
	return Config{
		Layout:       s.Config.Layout,
		Addrs:        s.Config.Addrs,
		ProxySecret:  s.ProxySecret,
		Version:      version,
		Logger:       log,
		Now:          s.Now,
		Revocations:  s.PKI,
		Agents:       RegistryDirectory{Manager: s.Agents},
		Resolver:     s.Resolver,
		Stats:        &system.Collector{},
		Services:     s.Services,
		PanelStore:   s.Panel,
		Provisioning: s.Job,
		Relay: RelayDeps{
			Tunnels:     s.Tunnels,
			Sites:       s.Sites,
			Agents:      s.Agents,
			PKI:         s.PKI,
			Certs:       s.Certs,
			Credential:  s.ACL.Credential,
			Fingerprint: s.Fingerprint,
			ServerURL:   s.TunnelServerURL,
			RenewCert:   s.RenewCertificate,
			Timers:      s.Timers,
			Presence:    s.TunnelManage,
		},
		Auth: AuthDeps{Users: s.Users, State: s.AuthState, TOTP: s.TOTP, Invitations: s.Invitations, IPVhost: s.IPVhost},
	}
}
