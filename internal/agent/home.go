package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/portlama/portlama/internal/store"
	"github.com/portlama/portlama/internal/validate"
)

// Home is the agent's base directory (by default ~/.portlama). The command
// decides where it is; the package never looks it up itself.
type Home struct {
	Dir string
}

// Registry is agents.json: the labels set up on this machine and the current
// one.
type Registry struct {
	Current string          `json:"current"`
	Agents  []RegistryEntry `json:"agents"`
}

// RegistryEntry is one label in the registry.
type RegistryEntry struct {
	Label      string `json:"label"`
	PanelURL   string `json:"panelUrl"`
	EnrolledAt string `json:"enrolledAt,omitempty"`
}

// Profile is a label's config.json.
type Profile struct {
	Label      string     `json:"label"`
	PanelURL   string     `json:"panelUrl"`
	RelayLabel string     `json:"relayLabel"`
	Serial     string     `json:"serial"`
	ExpiresAt  string     `json:"expiresAt"`
	EnrolledAt string     `json:"enrolledAt"`
	PanelTrust PanelTrust `json:"panelTrust"`
}

// PanelTrust says how the panel's TLS certificate is verified after
// enrollment (see the package documentation).
type PanelTrust struct {
	// Mode is TrustPin or TrustChain.
	Mode string `json:"mode"`
	// Fingerprint is the SHA-256 fingerprint of the panel certificate seen
	// at enrollment (colon-separated upper-case hex).
	Fingerprint string `json:"fingerprint"`
}

// Panel trust modes.
const (
	// TrustPin accepts exactly the certificate with the pinned fingerprint.
	TrustPin = "pin"
	// TrustChain verifies the chain and host name against the system roots,
	// the relay CA and the anchors saved at enrollment.
	TrustChain = "chain"
)

// ValidateLabel checks a local label with the relay's agent label rule
// (validate.AgentLabel: 1–50 characters of [a-z0-9-], starting with a
// letter or digit). Labels name directories, systemd units and launchd
// jobs, so nothing else is allowed.
func ValidateLabel(label string) error {
	if validate.AgentLabel(label) != nil {
		return fmt.Errorf("invalid label %q: use 1-50 lower-case letters, digits and hyphens, starting with a letter or digit", label)
	}
	return nil
}

// RegistryPath is agents.json.
func (h Home) RegistryPath() string { return filepath.Join(h.Dir, "agents.json") }

// LabelDir is the directory of one label.
func (h Home) LabelDir(label string) string { return filepath.Join(h.Dir, label) }

// Paths returns the file paths of one label.
func (h Home) Paths(label string) Paths { return pathsIn(h.LabelDir(label)) }

// Paths are the files of one label.
type Paths struct {
	Dir       string
	Key       string
	Cert      string
	CA        string
	PanelCert string
	PanelCA   string
	Config    string
	Log       string
}

func pathsIn(dir string) Paths {
	return Paths{
		Dir:       dir,
		Key:       filepath.Join(dir, "client.key"),
		Cert:      filepath.Join(dir, "client.crt"),
		CA:        filepath.Join(dir, "ca.crt"),
		PanelCert: filepath.Join(dir, "panel.crt"),
		PanelCA:   filepath.Join(dir, "panel-ca.crt"),
		Config:    filepath.Join(dir, "config.json"),
		Log:       filepath.Join(dir, "agent.log"),
	}
}

func (h Home) registryDoc() *store.Doc[Registry] {
	return store.NewDoc[Registry](h.RegistryPath(), 0o600)
}

// LoadRegistry reads agents.json; a missing file is an empty registry.
func (h Home) LoadRegistry() (Registry, error) {
	r, err := h.registryDoc().Load()
	if err != nil {
		return Registry{}, fmt.Errorf("read agent registry: %w", err)
	}
	if r.Agents == nil {
		r.Agents = []RegistryEntry{}
	}
	return r, nil
}

// ErrNotSetUp is returned when no label is set up (or none is current).
var ErrNotSetUp = errors.New("no agent is set up here: run `portlama-agent setup --token <token> --panel-url <url>` first")

// ResolveLabel returns label when non-empty (it must be registered), else
// the registry's current label.
func (h Home) ResolveLabel(label string) (string, error) {
	r, err := h.LoadRegistry()
	if err != nil {
		return "", err
	}
	if label == "" {
		if r.Current == "" {
			if len(r.Agents) == 0 {
				return "", ErrNotSetUp
			}
			return "", errors.New("no current agent label: pass --label or run `portlama-agent use <label>`")
		}
		label = r.Current
	}
	for _, a := range r.Agents {
		if a.Label == label {
			return label, nil
		}
	}
	return "", fmt.Errorf("no agent with label %q is set up in %s (see `portlama-agent list`)", label, h.Dir)
}

// SetCurrent makes label the current one.
func (h Home) SetCurrent(label string) error {
	_, err := h.registryDoc().Update(func(r *Registry) error {
		for _, a := range r.Agents {
			if a.Label == label {
				r.Current = label
				return nil
			}
		}
		return fmt.Errorf("no agent with label %q is set up", label)
	})
	if err != nil {
		return fmt.Errorf("set current label: %w", err)
	}
	return nil
}

// Register adds or replaces a registry entry and makes it current.
func (h Home) Register(e RegistryEntry) error {
	if err := os.MkdirAll(h.Dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", h.Dir, err)
	}
	_, err := h.registryDoc().Update(func(r *Registry) error {
		kept := r.Agents[:0]
		for _, a := range r.Agents {
			if a.Label != e.Label {
				kept = append(kept, a)
			}
		}
		r.Agents = append(kept, e)
		sort.Slice(r.Agents, func(i, j int) bool { return r.Agents[i].Label < r.Agents[j].Label })
		r.Current = e.Label
		return nil
	})
	if err != nil {
		return fmt.Errorf("update agent registry: %w", err)
	}
	return nil
}

// LoadProfile reads a label's config.json.
func (h Home) LoadProfile(label string) (Profile, error) {
	if err := ValidateLabel(label); err != nil {
		return Profile{}, err
	}
	p, err := store.NewDoc[Profile](h.Paths(label).Config, 0o600).Load()
	if err != nil {
		return Profile{}, fmt.Errorf("read config of %q: %w", label, err)
	}
	if p.PanelURL == "" {
		return Profile{}, fmt.Errorf("config of %q (%s) is missing or incomplete: run setup again", label, h.Paths(label).Config)
	}
	return p, nil
}

// Unregister removes label from agents.json (clearing current when it was
// current) and deletes its directory: its key and certificate are gone.
func (h Home) Unregister(label string) error {
	if err := ValidateLabel(label); err != nil {
		return err
	}
	_, err := h.registryDoc().Update(func(r *Registry) error {
		kept := r.Agents[:0]
		for _, a := range r.Agents {
			if a.Label != label {
				kept = append(kept, a)
			}
		}
		r.Agents = kept
		if r.Current == label {
			r.Current = ""
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("update agent registry: %w", err)
	}
	if err := os.RemoveAll(h.LabelDir(label)); err != nil {
		return fmt.Errorf("remove %s: %w", h.LabelDir(label), err)
	}
	return nil
}
