package nginx

import (
	"fmt"
	"path/filepath"
)

// TunnelSecretSnippet is the snippet the tunnel vhost includes: it sends
// the tunnel server's proxy secret (internal/tunnel.EnsureProxySecret) in
// X-Portlama-Tunnel-Secret. It is mode 0600 like the panel's secret
// snippet; write it before the tunnel vhost.
const TunnelSecretSnippet = "portlama-tunnel-secret.conf"

// TunnelSecret renders the tunnel secret snippet for secret (64 lower-case
// hex characters).
func (r *Renderer) TunnelSecret(secret string) (File, error) {
	if err := checkSecret(secret); err != nil {
		return File{}, fmt.Errorf("tunnel secret snippet: %w", err)
	}
	b, err := render("snippet-tunnel-secret", struct{ Secret string }{secret})
	if err != nil {
		return File{}, err
	}
	return File{Path: filepath.Join(r.layout.NginxSnippets(), TunnelSecretSnippet), Mode: 0o600, Content: b}, nil
}
