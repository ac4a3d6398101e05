package tunnel

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/portlama/portlama/internal/store"
	"github.com/portlama/portlama/internal/validate"
)

// ACLMode is the file mode of acl.json (it holds the agents' passwords).
const ACLMode = 0o600

// ACLFile is the content of <TunnelDir>/acl.json (docs/architecture.md, "Tunnel server files").
type ACLFile struct {
	Agents []ACLAgent `json:"agents"`
}

// ACLAgent is one non-revoked agent: its tunnel user, password and the relay
// ports of its enabled tunnels.
type ACLAgent struct {
	Label      string `json:"label"`
	Password   string `json:"password"`
	RelayPorts []int  `json:"relayPorts"`
}

// ErrUnknownAgent is returned by ACL.SetPorts and ACL.Credential for a label
// that has no entry.
var ErrUnknownAgent = errors.New("agent has no tunnel credentials")

var (
	hex64Re = regexp.MustCompile(`^[a-f0-9]{64}$`)
)

// ValidLabel reports whether label can be a tunnel user name: the rule of
// a tunnel's agentLabel, which covers every agent label.
func ValidLabel(label string) bool { return validate.TunnelAgentLabel(label) == nil }

// Validate checks the whole document: valid, unique labels; 64-hex
// passwords; ports in 1–65535, unique across all agents.
func (f ACLFile) Validate() error {
	labels := make(map[string]bool, len(f.Agents))
	ports := make(map[int]string)
	for i, a := range f.Agents {
		if !ValidLabel(a.Label) {
			return fmt.Errorf("acl agent %d: invalid label %q", i, a.Label)
		}
		if labels[a.Label] {
			return fmt.Errorf("acl: duplicate agent %q", a.Label)
		}
		labels[a.Label] = true
		if !hex64Re.MatchString(a.Password) {
			return fmt.Errorf("acl agent %q: password must be 64 lower-case hex characters", a.Label)
		}
		for _, p := range a.RelayPorts {
			if p < 1 || p > 65535 {
				return fmt.Errorf("acl agent %q: invalid relay port %d", a.Label, p)
			}
			if owner, ok := ports[p]; ok {
				return fmt.Errorf("acl: relay port %d assigned to both %q and %q", p, owner, a.Label)
			}
			ports[p] = a.Label
		}
	}
	return nil
}

// ParseACL decodes and validates acl.json content. Empty content is an
// empty ACL.
func ParseACL(data []byte) (ACLFile, error) {
	var f ACLFile
	if len(strings.TrimSpace(string(data))) == 0 {
		f.normalize()
		return f, nil
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return ACLFile{}, fmt.Errorf("parse acl: %w", err)
	}
	f.normalize()
	if err := f.Validate(); err != nil {
		return ACLFile{}, err
	}
	return f, nil
}

func (f *ACLFile) normalize() {
	if f.Agents == nil {
		f.Agents = []ACLAgent{}
	}
	for i := range f.Agents {
		if f.Agents[i].RelayPorts == nil {
			f.Agents[i].RelayPorts = []int{}
		}
	}
}

// Pattern returns the anchored chisel address regex for the agent:
// ^R:127\.0\.0\.1:(p1|p2)$, or ^$ (matches no remote) without ports. It is
// never empty: chisel reads an empty pattern as "allow everything".
func (a ACLAgent) Pattern() string {
	if len(a.RelayPorts) == 0 {
		return `^$`
	}
	ps := slices.Clone(a.RelayPorts)
	slices.Sort(ps)
	ps = slices.Compact(ps)
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = strconv.Itoa(p)
	}
	return `^R:127\.0\.0\.1:(` + strings.Join(parts, "|") + `)$`
}

// ACL edits acl.json. It satisfies the interface internal/agents uses:
// AddAgent and RemoveAgent.
type ACL struct {
	doc *store.Doc[ACLFile]
}

// NewACL returns the ACL document at path (normally
// <TunnelDir>/acl.json), written with mode 0600.
func NewACL(path string) *ACL {
	return &ACL{doc: store.NewDoc[ACLFile](path, ACLMode)}
}

// Path returns the file path of the document.
func (a *ACL) Path() string { return a.doc.Path() }

// Load reads and validates the document; a missing file is an empty ACL.
func (a *ACL) Load() (ACLFile, error) {
	f, err := a.doc.Load()
	if err != nil {
		return ACLFile{}, fmt.Errorf("load tunnel acl: %w", err)
	}
	f.normalize()
	if err := f.Validate(); err != nil {
		return ACLFile{}, fmt.Errorf("load tunnel acl: %w", err)
	}
	return f, nil
}

func (a *ACL) update(ctx context.Context, fn func(*ACLFile) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err := a.doc.Update(func(f *ACLFile) error {
		f.normalize()
		if err := fn(f); err != nil {
			return err
		}
		return f.Validate()
	})
	return err
}

// AddAgent gives label tunnel credentials (a fresh 32-byte hex password)
// with no ports. It is idempotent: an existing entry is left unchanged.
func (a *ACL) AddAgent(ctx context.Context, label string) error {
	if !ValidLabel(label) {
		return fmt.Errorf("add tunnel agent: invalid label %q", label)
	}
	err := a.update(ctx, func(f *ACLFile) error {
		if slices.ContainsFunc(f.Agents, func(x ACLAgent) bool { return x.Label == label }) {
			return nil
		}
		pw, err := newPassword()
		if err != nil {
			return err
		}
		f.Agents = append(f.Agents, ACLAgent{Label: label, Password: pw, RelayPorts: []int{}})
		return nil
	})
	if err != nil {
		return fmt.Errorf("add tunnel agent %s: %w", label, err)
	}
	return nil
}

// RemoveAgent deletes label's credentials (revocation); the tunnel server
// then closes its sessions. Removing an absent agent is not an error.
func (a *ACL) RemoveAgent(ctx context.Context, label string) error {
	err := a.update(ctx, func(f *ACLFile) error {
		f.Agents = slices.DeleteFunc(f.Agents, func(x ACLAgent) bool { return x.Label == label })
		return nil
	})
	if err != nil {
		return fmt.Errorf("remove tunnel agent %s: %w", label, err)
	}
	return nil
}

// SetPorts replaces the relay ports label may bind (the relay ports of its
// enabled tunnels). The agent must exist (ErrUnknownAgent otherwise). A port
// already held by another agent is refused.
func (a *ACL) SetPorts(ctx context.Context, label string, ports []int) error {
	ps := slices.Clone(ports)
	slices.Sort(ps)
	ps = slices.Compact(ps)
	if ps == nil {
		ps = []int{}
	}
	err := a.update(ctx, func(f *ACLFile) error {
		i := slices.IndexFunc(f.Agents, func(x ACLAgent) bool { return x.Label == label })
		if i < 0 {
			return ErrUnknownAgent
		}
		f.Agents[i].RelayPorts = ps
		return nil
	})
	if err != nil {
		return fmt.Errorf("set tunnel ports of %s: %w", label, err)
	}
	return nil
}

// Credential returns "<label>:<password>" for agent-config, or
// ErrUnknownAgent.
func (a *ACL) Credential(ctx context.Context, label string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	f, err := a.Load()
	if err != nil {
		return "", err
	}
	for _, x := range f.Agents {
		if x.Label == label {
			return x.Label + ":" + x.Password, nil
		}
	}
	return "", fmt.Errorf("tunnel credential of %s: %w", label, ErrUnknownAgent)
}

func newPassword() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate tunnel password: %w", err)
	}
	return hex.EncodeToString(b), nil
}
