package panel

import (
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/pki"
	"github.com/portlama/portlama/internal/validate"
)

// Role is the caller's role, taken from the certificate's CN.
type Role string

// Roles (docs/api.md, "Identity resolution").
const (
	RoleAdmin Role = "admin"
	RoleAgent Role = "agent"
)

// Identity is the authenticated caller of a request.
type Identity struct {
	Role         Role
	Label        string   // agent label; "" for admin
	Serial       string   // certificate serial, normalised (upper-case hex, no leading zeros)
	Capabilities []string // agents: filtered against api.Capabilities(), always with tunnels:read
	AllowedSites []string // agents: sites the sites:* capabilities cover
}

// IsAdmin reports whether the caller holds the admin certificate.
func (id *Identity) IsAdmin() bool { return id != nil && id.Role == RoleAdmin }

// Can reports whether the caller may use capability c (admins can do all).
func (id *Identity) Can(c string) bool {
	if id == nil {
		return false
	}
	return id.Role == RoleAdmin || slices.Contains(id.Capabilities, c)
}

// Agent is a non-revoked entry of the agents registry.
type Agent struct {
	Label        string
	Serial       string // upper-case hex as nginx prints it
	Capabilities []string
	AllowedSites []string
}

// AgentDirectory looks up agents in the registry.
type AgentDirectory interface {
	// LookupAgent returns the non-revoked entry for label; ok is false when
	// there is none.
	LookupAgent(label string) (agent Agent, ok bool, err error)
}

// Revocations answers whether a certificate serial is revoked.
type Revocations interface {
	// IsRevoked reports whether serial (normalised: upper-case hex, no
	// leading zeros) is in the revocation list.
	IsRevoked(serial string) (bool, error)
}

// Header names nginx sets (docs/api.md, "Proof of origin" and "Headers nginx sets").
const (
	HeaderProxySecret  = "X-Portlama-Proxy-Secret"
	HeaderClientVerify = "X-SSL-Client-Verify"
	HeaderClientDN     = "X-SSL-Client-DN"
	HeaderClientSerial = "X-SSL-Client-Serial"
	HeaderRealIP       = "X-Real-IP"
)

// untrustedHeaders are dropped from requests that do not prove they came
// through nginx, so no handler can read a forged value.
var untrustedHeaders = []string{
	HeaderClientVerify, HeaderClientDN, HeaderClientSerial, "X-SSL-Client-Cert",
	"Remote-User", "Remote-Groups", "Remote-Name", "Remote-Email",
	HeaderRealIP, "X-Forwarded-For",
}

// ReadProxySecret reads the proxy secret file (64 hex characters, optional
// trailing newline).
func ReadProxySecret(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read proxy secret: %w", err)
	}
	s := strings.TrimSpace(string(data))
	if err := checkProxySecret(s); err != nil {
		return "", fmt.Errorf("proxy secret in %s: %w", path, err)
	}
	return s, nil
}

func checkProxySecret(s string) error {
	if b, err := hex.DecodeString(s); err != nil || len(b) != 32 {
		return fmt.Errorf("must be 64 hex characters")
	}
	return nil
}

// proven reports whether r carries the proxy secret (constant time).
func proven(r *http.Request, secret string) bool {
	if secret == "" {
		return false
	}
	got := r.Header.Get(HeaderProxySecret)
	return subtle.ConstantTimeCompare([]byte(got), []byte(secret)) == 1
}

// ParseClientDN reads the role and agent label from an RFC 2253 subject DN
// such as "CN=agent:home,O=Portlama". ok is false when the DN is malformed,
// has no CN or more than one, or the CN is neither "admin" nor
// "agent:<label>" with a valid label.
func ParseClientDN(dn string) (role Role, label string, ok bool) {
	cn, ok := pki.SubjectCN(dn)
	if !ok {
		return "", "", false
	}
	if cn == "admin" {
		return RoleAdmin, "", true
	}
	if l, found := strings.CutPrefix(cn, "agent:"); found && validate.AgentLabelParam(l) == nil {
		return RoleAgent, l, true
	}
	return "", "", false
}

// identify resolves the caller of a proven or unproven request
// (docs/api.md, "Identity resolution"). It returns the identity or the 403 to answer; err is an internal
// failure (500).
func (s *Server) identify(r *http.Request, isProven bool) (*Identity, *api.Error, error) {
	if !isProven || single(r.Header, HeaderClientVerify) != "SUCCESS" {
		return nil, errCertificateNeeded, nil
	}
	serial, ok := pki.ParseSerial(single(r.Header, HeaderClientSerial))
	if !ok {
		return nil, errCertificateNeeded, nil
	}
	revoked, err := s.cfg.Revocations.IsRevoked(serial)
	if err != nil {
		return nil, nil, fmt.Errorf("check revocation of %s: %w", serial, err)
	}
	if revoked {
		return nil, errRevoked, nil
	}
	role, label, ok := ParseClientDN(single(r.Header, HeaderClientDN))
	if !ok {
		return nil, errCertificateNeeded, nil
	}
	if role == RoleAdmin {
		return &Identity{Role: RoleAdmin, Serial: serial}, nil, nil
	}
	agent, found, err := s.cfg.Agents.LookupAgent(label)
	if err != nil {
		return nil, nil, fmt.Errorf("look up agent %s: %w", label, err)
	}
	if !found || agent.Label != label {
		return nil, errRevoked, nil
	}
	if !pki.SerialsEqual(agent.Serial, serial) {
		return nil, errRevoked, nil
	}
	return &Identity{
		Role:         RoleAgent,
		Label:        label,
		Serial:       serial,
		Capabilities: effectiveCapabilities(agent.Capabilities),
		AllowedSites: slices.Clone(agent.AllowedSites),
	}, nil, nil
}

// effectiveCapabilities keeps the known capabilities, always including
// tunnels:read, in contract order.
func effectiveCapabilities(granted []string) []string {
	out := []string{api.CapTunnelsRead}
	for _, c := range api.Capabilities()[1:] {
		if slices.Contains(granted, c) {
			out = append(out, c)
		}
	}
	return out
}

// single returns the value of header name when it occurs exactly once, else
// "" (nginx sets each identity header once; repeats are not trusted).
func single(h http.Header, name string) string {
	if v := h.Values(name); len(v) == 1 {
		return v[0]
	}
	return ""
}
