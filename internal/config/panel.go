package config

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
	"sync"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/store"
	"github.com/portlama/portlama/internal/validate"
)

// PanelConfigMode is the file mode of panel.json, restored on every rewrite
// (docs/architecture.md, "panel.json").
const PanelConfigMode = 0o640

// Onboarding states (docs/api.md, "Onboarding gate"), in order.
const (
	StatusFresh        = api.StatusFresh
	StatusDomainSet    = api.StatusDomainSet
	StatusDNSReady     = api.StatusDNSReady
	StatusProvisioning = api.StatusProvisioning
	StatusCompleted    = api.StatusCompleted
)

// Defaults of panel.json (docs/architecture.md, "panel.json").
const (
	DefaultMaxSiteSize      = 524288000
	DefaultAdminAuthMode    = "p12"
	DefaultRelayPortMin     = 20000
	DefaultRelayPortMax     = 29999
	DefaultACMEDirectoryURL = "https://acme-v02.api.letsencrypt.org/directory"
)

// reservedRelayPorts are the loopback ports the relay's own processes use;
// relayPortRange must not contain any of them.
var reservedRelayPorts = []int{3100, 9090, 9091, 9292}

// PanelConfig is the panel.json document (docs/architecture.md, "panel.json"). Keys the panel
// does not know are kept, in the top-level object and inside onboarding and
// panel2fa, and written back unchanged. Missing values get their defaults
// when the document is loaded.
type PanelConfig struct {
	IP             string       `json:"ip"`
	Domain         *string      `json:"domain"`
	Email          *string      `json:"email"`
	DataDir        string       `json:"dataDir"`
	ServerID       string       `json:"serverId,omitempty"`
	MaxSiteSize    int64        `json:"maxSiteSize"`
	AdminAuthMode  string       `json:"adminAuthMode"`
	Panel2FA       Panel2FA     `json:"panel2fa"`
	SessionSecret  *string      `json:"sessionSecret,omitempty"` // kept in panel-secrets.json, never in panel.json
	Onboarding     Onboarding   `json:"onboarding"`
	RelayPortRange PortRange    `json:"relayPortRange"`
	ACME           ACMESettings `json:"acme"`
	// AgentLimits bound what one agent can ask of the relay; absent
	// values are the defaults.
	AgentLimits AgentLimits `json:"agentLimits,omitzero"`
	extra       map[string]json.RawMessage
}

// Defaults of agentLimits: what a 512 MB VPS carries (docs/operations.md,
// "Limits").
const (
	DefaultAgentTunnels     = 50
	DefaultChangesPerMinute = 30
	DefaultChangeBurst      = 10
)

// AgentLimits are panel.json's per-agent limits. Zero means the default.
type AgentLimits struct {
	// Tunnels is the most tunnels one agent label may own (whoever
	// creates them).
	Tunnels int `json:"tunnels,omitempty"`
	// ChangesPerMinute and ChangeBurst bound the changes to the relay's
	// configuration (tunnels, re-key) an agent certificate may make:
	// ChangeBurst at once, then ChangesPerMinute. Admins are not limited
	// by them.
	ChangesPerMinute int `json:"changesPerMinute,omitempty"`
	ChangeBurst      int `json:"changeBurst,omitempty"`
}

// TunnelLimit is Tunnels or its default.
func (l AgentLimits) TunnelLimit() int { return orDefault(l.Tunnels, DefaultAgentTunnels) }

// ChangeRate is ChangesPerMinute or its default.
func (l AgentLimits) ChangeRate() int { return orDefault(l.ChangesPerMinute, DefaultChangesPerMinute) }

// Burst is ChangeBurst or its default.
func (l AgentLimits) Burst() int { return orDefault(l.ChangeBurst, DefaultChangeBurst) }

func orDefault(v, d int) int {
	if v > 0 {
		return v
	}
	return d
}

func (l AgentLimits) validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    int
	}{{"tunnels", l.Tunnels}, {"changesPerMinute", l.ChangesPerMinute}, {"changeBurst", l.ChangeBurst}} {
		if f.v < 0 || f.v > 100000 {
			errs = append(errs, fmt.Errorf("agentLimits.%s must be between 1 and 100000 (or absent for the default)", f.name))
		}
	}
	return errors.Join(errs...)
}

// Panel2FA is the panel's TOTP setting (docs/api.md, "Panel 2FA").
type Panel2FA struct {
	Enabled       bool    `json:"enabled"`
	Secret        *string `json:"secret,omitempty"` // kept in panel-secrets.json, never in panel.json
	SetupComplete bool    `json:"setupComplete"`
	extra         map[string]json.RawMessage
}

// Onboarding is the onboarding state (docs/api.md, "Onboarding gate").
type Onboarding struct {
	Status string `json:"status"`
	extra  map[string]json.RawMessage
}

// PortRange is an inclusive range of relay-side tunnel ports.
type PortRange struct {
	Min int `json:"min"`
	Max int `json:"max"`
}

// Contains reports whether port lies in the range.
func (r PortRange) Contains(port int) bool { return port >= r.Min && port <= r.Max }

// ACMESettings configure certificate issuance.
type ACMESettings struct {
	DirectoryURL string  `json:"directoryUrl"`
	DNSProvider  *string `json:"dnsProvider"`
	Wildcard     bool    `json:"wildcard"`
}

// DomainOrEmpty returns the base domain, or "" when none is set.
func (c PanelConfig) DomainOrEmpty() string {
	if c.Domain == nil {
		return ""
	}
	return *c.Domain
}

// EmailOrEmpty returns the ACME contact, or "" when none is set.
func (c PanelConfig) EmailOrEmpty() string {
	if c.Email == nil {
		return ""
	}
	return *c.Email
}

// SessionSecretOrEmpty returns the 2FA session secret (hex), or "".
func (c PanelConfig) SessionSecretOrEmpty() string {
	if c.SessionSecret == nil {
		return ""
	}
	return *c.SessionSecret
}

// Extra returns the top-level keys the panel does not know, as raw JSON.
// The returned map must not be modified.
func (c PanelConfig) Extra() map[string]json.RawMessage { return c.extra }

// ApplyDefaults fills unset values with the defaults of docs/architecture.md, "panel.json".
func (c *PanelConfig) ApplyDefaults() {
	if c.MaxSiteSize == 0 {
		c.MaxSiteSize = DefaultMaxSiteSize
	}
	if c.AdminAuthMode == "" {
		c.AdminAuthMode = DefaultAdminAuthMode
	}
	if c.Onboarding.Status == "" {
		c.Onboarding.Status = StatusFresh
	}
	if c.RelayPortRange == (PortRange{}) {
		c.RelayPortRange = PortRange{Min: DefaultRelayPortMin, Max: DefaultRelayPortMax}
	}
	if c.ACME.DirectoryURL == "" {
		c.ACME.DirectoryURL = DefaultACMEDirectoryURL
	}
}

// Validate checks the document against docs/architecture.md, "panel.json". The panel refuses
// to start on an invalid document.
func (c PanelConfig) Validate() error {
	var errs []error
	if c.IP == "" {
		errs = append(errs, errors.New("ip is required"))
	} else if a, err := netip.ParseAddr(c.IP); err != nil || !a.Is4() {
		errs = append(errs, fmt.Errorf("ip %q is not an IPv4 address", c.IP))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("dataDir is required"))
	}
	if c.ServerID != "" && !isUUID(c.ServerID) {
		errs = append(errs, fmt.Errorf("serverId %q is not a UUID", c.ServerID))
	}
	if c.Domain != nil {
		if err := validate.Domain(*c.Domain); err != nil || *c.Domain != strings.ToLower(*c.Domain) {
			errs = append(errs, fmt.Errorf("domain %q must be a lower-case domain name like example.com", *c.Domain))
		}
	}
	if c.Email != nil {
		if err := validate.Email(*c.Email); err != nil {
			errs = append(errs, fmt.Errorf("email %q is not a valid address", *c.Email))
		}
	}
	if c.MaxSiteSize <= 0 {
		errs = append(errs, errors.New("maxSiteSize must be positive"))
	}
	if c.AdminAuthMode != DefaultAdminAuthMode {
		errs = append(errs, fmt.Errorf("adminAuthMode must be %q", DefaultAdminAuthMode))
	}
	switch c.Onboarding.Status {
	case StatusFresh, StatusDomainSet, StatusDNSReady, StatusProvisioning, StatusCompleted:
	default:
		errs = append(errs, fmt.Errorf("onboarding.status %q is not a known state", c.Onboarding.Status))
	}
	if c.SessionSecret != nil {
		if b, err := hex.DecodeString(*c.SessionSecret); err != nil || len(b) == 0 {
			errs = append(errs, errors.New("sessionSecret must be a hex string"))
		}
	}
	if err := c.RelayPortRange.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.AgentLimits.validate(); err != nil {
		errs = append(errs, err)
	}
	if u, err := url.Parse(c.ACME.DirectoryURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		errs = append(errs, fmt.Errorf("acme.directoryUrl %q is not an http(s) URL", c.ACME.DirectoryURL))
	}
	if c.ACME.Wildcard && (c.ACME.DNSProvider == nil || *c.ACME.DNSProvider == "") {
		errs = append(errs, errors.New("acme.wildcard needs acme.dnsProvider"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid panel.json: %w", errors.Join(errs...))
	}
	return nil
}

// Validate checks 1024 ≤ min ≤ max ≤ 65535 and that the range holds none
// of the relay's own ports (3100, 9090, 9091, 9292).
func (r PortRange) Validate() error {
	if r.Min < 1024 || r.Max > 65535 || r.Min > r.Max {
		return fmt.Errorf("relayPortRange %d-%d must satisfy 1024 ≤ min ≤ max ≤ 65535", r.Min, r.Max)
	}
	for _, p := range reservedRelayPorts {
		if r.Contains(p) {
			return fmt.Errorf("relayPortRange %d-%d must not contain port %d, which the relay uses itself", r.Min, r.Max, p)
		}
	}
	return nil
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// The JSON (un)marshalling below keeps unknown keys. Each type is encoded
// through an alias (no methods, so no recursion), then merged with its
// extra keys.

type (
	panelConfigJSON PanelConfig
	panel2faJSON    Panel2FA
	onboardingJSON  Onboarding
)

// MarshalJSON writes the known fields and the kept unknown keys.
func (c PanelConfig) MarshalJSON() ([]byte, error) {
	return marshalKeepingExtra(panelConfigJSON(c), c.extra)
}

// UnmarshalJSON reads the known fields and keeps the unknown keys.
func (c *PanelConfig) UnmarshalJSON(data []byte) error {
	var v panelConfigJSON
	extra, err := unmarshalKeepingExtra(data, &v)
	if err != nil {
		return err
	}
	*c = PanelConfig(v)
	c.extra = extra
	return nil
}

// MarshalJSON writes the known fields and the kept unknown keys.
func (p Panel2FA) MarshalJSON() ([]byte, error) {
	return marshalKeepingExtra(panel2faJSON(p), p.extra)
}

// UnmarshalJSON reads the known fields and keeps the unknown keys.
func (p *Panel2FA) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		return nil
	}
	var v panel2faJSON
	extra, err := unmarshalKeepingExtra(data, &v)
	if err != nil {
		return err
	}
	*p = Panel2FA(v)
	p.extra = extra
	return nil
}

// MarshalJSON writes the known fields and the kept unknown keys.
func (o Onboarding) MarshalJSON() ([]byte, error) {
	return marshalKeepingExtra(onboardingJSON(o), o.extra)
}

// UnmarshalJSON reads the known fields and keeps the unknown keys.
func (o *Onboarding) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		return nil
	}
	var v onboardingJSON
	extra, err := unmarshalKeepingExtra(data, &v)
	if err != nil {
		return err
	}
	*o = Onboarding(v)
	o.extra = extra
	return nil
}

func marshalKeepingExtra(known any, extra map[string]json.RawMessage) ([]byte, error) {
	data, err := json.Marshal(known)
	if err != nil || len(extra) == 0 {
		return data, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	for k, v := range extra {
		if _, ok := m[k]; !ok {
			m[k] = v
		}
	}
	return json.Marshal(m)
}

func unmarshalKeepingExtra(data []byte, known any) (map[string]json.RawMessage, error) {
	if err := json.Unmarshal(data, known); err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	keys := jsonKeys(reflect.TypeOf(known).Elem())
	var extra map[string]json.RawMessage
	for k, v := range m {
		if keys[k] {
			continue
		}
		if extra == nil {
			extra = map[string]json.RawMessage{}
		}
		extra[k] = v
	}
	return extra, nil
}

var jsonKeyCache sync.Map // reflect.Type → map[string]bool

// jsonKeys returns the JSON names of the exported fields of struct type t.
func jsonKeys(t reflect.Type) map[string]bool {
	if v, ok := jsonKeyCache.Load(t); ok {
		return v.(map[string]bool)
	}
	keys := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		keys[name] = true
	}
	jsonKeyCache.Store(t, keys)
	return keys
}

// PanelSecretsName is the file beside panel.json that holds its secrets
// (mode 0600): panel.json is 0640, readable by more than the panel.
const PanelSecretsName = "panel-secrets.json"

// PanelSecretsMode is the file mode of panel-secrets.json.
const PanelSecretsMode = 0o600

// PanelSecrets is panel-secrets.json: the panel TOTP seed and the key of
// the 2FA session cookie. PanelStore merges them into PanelConfig on load
// and splits them off on write.
type PanelSecrets struct {
	Panel2FASecret *string `json:"panel2faSecret"`
	SessionSecret  *string `json:"sessionSecret"`
}

func secretsOf(c PanelConfig) PanelSecrets {
	return PanelSecrets{Panel2FASecret: c.Panel2FA.Secret, SessionSecret: c.SessionSecret}
}

// withSecrets puts the stored secrets into c. A value still in c (a
// panel.json written before the secrets moved out) is kept when the
// secrets file has none, so the migration loses nothing.
func withSecrets(c PanelConfig, s PanelSecrets) PanelConfig {
	if s.Panel2FASecret != nil {
		c.Panel2FA.Secret = s.Panel2FASecret
	}
	if s.SessionSecret != nil {
		c.SessionSecret = s.SessionSecret
	}
	return c
}

func stripSecrets(c *PanelConfig) {
	c.Panel2FA.Secret = nil
	c.SessionSecret = nil
}

func eqPtr(a, b *string) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

func (s PanelSecrets) equal(o PanelSecrets) bool {
	return eqPtr(s.Panel2FASecret, o.Panel2FASecret) && eqPtr(s.SessionSecret, o.SessionSecret)
}

// union is s with o's values where o has one.
func (s PanelSecrets) union(o PanelSecrets) PanelSecrets {
	if o.Panel2FASecret != nil {
		s.Panel2FASecret = o.Panel2FASecret
	}
	if o.SessionSecret != nil {
		s.SessionSecret = o.SessionSecret
	}
	return s
}

// PanelStore reads and writes panel.json with defaults, validation, kept
// unknown keys and mode 0640 on every rewrite, and its secrets in
// panel-secrets.json (0600) beside it.
//
// An update that adds a secret writes the secrets file before panel.json;
// one that removes a secret removes it only after panel.json is written. A
// crash in between therefore never leaves panel.json relying on a secret
// the secrets file lacks (2FA on without its seed would lock the admin out).
type PanelStore struct {
	doc     *store.Doc[PanelConfig]
	secrets *store.Doc[PanelSecrets]
}

// NewPanelStore returns the store for the panel.json at path; its secrets
// live in PanelSecretsName in the same directory.
func NewPanelStore(path string) *PanelStore {
	return &PanelStore{
		doc:     store.NewDoc[PanelConfig](path, PanelConfigMode),
		secrets: store.NewDoc[PanelSecrets](filepath.Join(filepath.Dir(path), PanelSecretsName), PanelSecretsMode),
	}
}

// Path returns the file path of panel.json.
func (s *PanelStore) Path() string { return s.doc.Path() }

// SecretsPath returns the file path of panel-secrets.json.
func (s *PanelStore) SecretsPath() string { return s.secrets.Path() }

// Load reads panel.json and its secrets, applies defaults and validates
// the result. A missing file fails validation (ip and dataDir are required).
func (s *PanelStore) Load() (PanelConfig, error) {
	sec, err := s.secrets.Load()
	if err != nil {
		return PanelConfig{}, err
	}
	c, err := s.doc.Load()
	if err != nil {
		return PanelConfig{}, err
	}
	c = withSecrets(c, sec)
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		return PanelConfig{}, fmt.Errorf("load %s: %w", s.doc.Path(), err)
	}
	return c, nil
}

// Update runs fn on the current document under the file lock and writes
// the result if fn succeeds and the result is valid. The document passed to
// fn has its defaults applied; an invalid stored document is an error and
// is never overwritten.
func (s *PanelStore) Update(fn func(*PanelConfig) error) (PanelConfig, error) {
	return s.update(fn, true)
}

// Init creates or completes panel.json without validating the stored
// document first: fn sets the required values (the installer sets ip and
// dataDir). The result must be valid.
func (s *PanelStore) Init(fn func(*PanelConfig) error) (PanelConfig, error) {
	return s.update(fn, false)
}

// update is a read-modify-write of both files under both locks (the
// secrets file's first, then panel.json's).
func (s *PanelStore) update(fn func(*PanelConfig) error, checkStored bool) (PanelConfig, error) {
	var out PanelConfig
	_, err := s.secrets.Update(func(sec *PanelSecrets) error {
		old := *sec
		var final PanelSecrets
		c, err := s.doc.Update(func(c *PanelConfig) error {
			legacy := c.Panel2FA.Secret != nil || c.SessionSecret != nil
			*c = withSecrets(*c, old)
			if checkStored {
				c.ApplyDefaults()
				if err := c.Validate(); err != nil {
					return fmt.Errorf("load %s: %w", s.doc.Path(), err)
				}
			}
			if err := fn(c); err != nil {
				return err
			}
			c.ApplyDefaults()
			if err := c.Validate(); err != nil {
				verb := "update"
				if !checkStored {
					verb = "initialise"
				}
				return fmt.Errorf("%s %s: %w", verb, s.doc.Path(), err)
			}
			final = secretsOf(*c)
			// Secrets first: every secret panel.json may rely on is on disk
			// before panel.json is replaced.
			if first := old.union(final); !first.equal(old) || legacy {
				data, err := store.Marshal(first)
				if err != nil {
					return err
				}
				if err := store.WriteFileAtomic(s.secrets.Path(), data, PanelSecretsMode); err != nil {
					return fmt.Errorf("write %s: %w", s.secrets.Path(), err)
				}
			}
			stripSecrets(c)
			return nil
		})
		if err != nil {
			return err
		}
		out = withSecrets(c, final)
		*sec = final // removed secrets go only now, after panel.json
		return nil
	})
	if err != nil {
		return PanelConfig{}, err
	}
	return out, nil
}

// Merge applies a partial update (a JSON object): onboarding and panel2fa
// are merged shallowly, every other key given replaces the stored one.
func (s *PanelStore) Merge(patch []byte) (PanelConfig, error) {
	var p map[string]json.RawMessage
	if err := json.Unmarshal(patch, &p); err != nil || p == nil {
		return PanelConfig{}, fmt.Errorf("merge into %s: the update must be a JSON object", s.doc.Path())
	}
	return s.Update(func(c *PanelConfig) error {
		merged, err := MergePanelConfig(*c, p)
		if err != nil {
			return err
		}
		*c = merged
		return nil
	})
}

// MergePanelConfig applies patch to c: onboarding and panel2fa are merged
// shallowly, every other key replaces the stored one.
func MergePanelConfig(c PanelConfig, patch map[string]json.RawMessage) (PanelConfig, error) {
	cur, err := json.Marshal(c)
	if err != nil {
		return c, fmt.Errorf("encode panel.json: %w", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(cur, &m); err != nil {
		return c, fmt.Errorf("decode panel.json: %w", err)
	}
	for k, v := range patch {
		if k == "onboarding" || k == "panel2fa" {
			var old, upd map[string]json.RawMessage
			if json.Unmarshal(m[k], &old) == nil && json.Unmarshal(v, &upd) == nil && old != nil && upd != nil {
				for kk, vv := range upd {
					old[kk] = vv
				}
				if v, err = json.Marshal(old); err != nil {
					return c, fmt.Errorf("merge %s: %w", k, err)
				}
			}
		}
		m[k] = v
	}
	data, err := json.Marshal(m)
	if err != nil {
		return c, fmt.Errorf("encode merged panel.json: %w", err)
	}
	var out PanelConfig
	if err := json.Unmarshal(data, &out); err != nil {
		return c, fmt.Errorf("merged panel.json has a wrong type: %w", err)
	}
	return out, nil
}
