package agent

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/panelclient"
)

// Client is the typed panel client (internal/panelclient) the agent calls
// the relay with.
type Client = panelclient.Client

// AgentConfig and AgentTunnel are the API's (internal/api); the names keep
// the runner's code short.
type (
	AgentConfig = api.AgentConfig
	AgentTunnel = api.AgentTunnel
)

// NewClient returns a client for the panel at panelURL using tlsConf (from
// Identity.PanelTLSConfig, or the bootstrap config during setup).
func NewClient(panelURL string, tlsConf *tls.Config) *Client {
	return panelclient.New(panelURL, panelclient.HTTPClient(tlsConf))
}

// Explain adds advice to a panel error the user can act on; other errors
// are returned as they are. The panel's message stays first and verbatim.
func Explain(err error) error {
	var ae *api.Error
	if !errors.As(err, &ae) {
		return err
	}
	if h := hint(ae); h != "" {
		return &explained{err: err, hint: h}
	}
	return err
}

type explained struct {
	err  error
	hint string
}

func (e *explained) Error() string { return e.err.Error() + "\nhint: " + e.hint }
func (e *explained) Unwrap() error { return e.err }

// hint returns advice for well-known panel errors, or "".
func hint(e *api.Error) string {
	switch {
	case e.Is(api.ErrCapability):
		var d api.CapabilityDetails
		if e.DecodeDetails(&d) && d.Required != "" {
			return fmt.Sprintf("this agent lacks the %q capability; an admin can grant it on the panel's Certificates page", d.Required)
		}
		return "this agent lacks a capability; an admin can grant it on the panel's Certificates page"
	case e.Is(api.ErrRevoked):
		return "this agent was revoked on the relay; ask an admin for a new enrollment token and run setup again"
	case e.Is(api.ErrCertificateRequired):
		return "the relay refused this agent's client certificate (expired, or issued by another relay?)"
	case e.Is(api.ErrOnboardingPending):
		return "finish the relay's onboarding in the panel first"
	case e.Status == http.StatusTooManyRequests:
		return "wait a minute and try again"
	}
	return ""
}

// ParseAgentConfig decodes and validates an agent-config document (see
// api.AgentConfig.Validate). A missing targetHost means 127.0.0.1.
func ParseAgentConfig(data []byte) (*AgentConfig, error) {
	var c AgentConfig
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("parse agent-config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("invalid agent-config: %w", err)
	}
	return &c, nil
}
