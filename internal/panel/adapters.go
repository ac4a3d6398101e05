package panel

import (
	"errors"

	"github.com/portlama/portlama/internal/agents"
)

// RegistryDirectory adapts the agents registry (agents.Manager) to
// AgentDirectory. (*pki.PKI already satisfies Revocations.)
type RegistryDirectory struct {
	Manager *agents.Manager
}

// LookupAgent returns the non-revoked registry entry for label.
func (d RegistryDirectory) LookupAgent(label string) (Agent, bool, error) {
	e, err := d.Manager.Lookup(label)
	if errors.Is(err, agents.ErrNotFound) || errors.Is(err, agents.ErrInvalidLabel) {
		return Agent{}, false, nil
	}
	if err != nil {
		return Agent{}, false, err
	}
	return Agent{Label: e.Label, Serial: e.Serial, Capabilities: e.Capabilities, AllowedSites: e.AllowedSites}, true, nil
}
