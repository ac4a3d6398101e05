package auth

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/portlama/portlama/internal/store"
	"github.com/portlama/portlama/internal/validate"
)

// AccessRule limits one host to users and groups (docs/architecture.md, "Auth server files"). Group
// admins is always admitted.
type AccessRule struct {
	Host   string   `json:"host"`
	Users  []string `json:"users"`
	Groups []string `json:"groups"`
}

// AccessRules is access-rules.json, written by the panel.
type AccessRules struct {
	Rules []AccessRule `json:"rules"`
	// Hosts are the names the relay serves (tunnels, sites). After sign-in
	// the portal sends the visitor only to one of them, the portal itself
	// or panel.<d>; a file without hosts (or none at all) admits only the
	// last two.
	Hosts []string `json:"hosts"`
}

// policy is the parsed access-rules.json.
type policy struct {
	rules ruleSet
	hosts map[string]bool
}

func newPolicy(ar AccessRules) (policy, error) {
	rs, err := newRuleSet(ar)
	if err != nil {
		return policy{}, err
	}
	p := policy{rules: rs, hosts: map[string]bool{}}
	for _, h := range ar.Hosts {
		p.hosts[strings.ToLower(h)] = true
	}
	return p, nil
}

// ruleSet is the parsed form used per request.
type ruleSet map[string]AccessRule

func newRuleSet(ar AccessRules) (ruleSet, error) {
	rs := ruleSet{}
	for i, r := range ar.Rules {
		h := strings.ToLower(r.Host)
		if h == "" {
			return nil, fmt.Errorf("rule %d has no host", i)
		}
		if old, ok := rs[h]; ok {
			// Two rules for one host: admit the union.
			r.Users = append(slices.Clone(old.Users), r.Users...)
			r.Groups = append(slices.Clone(old.Groups), r.Groups...)
		}
		rs[h] = r
	}
	return rs, nil
}

// allows reports whether user (with groups) may reach host. A host without
// a rule admits every two-factor user.
func (rs ruleSet) allows(host, user string, groups []string) bool {
	r, ok := rs[host]
	if !ok {
		return true
	}
	if slices.Contains(r.Users, user) {
		return true
	}
	for _, g := range groups {
		if g == AdminsGroup || slices.Contains(r.Groups, g) {
			return true
		}
	}
	return false
}

// ParseAccessRules decodes access-rules.json; every rule needs a host, and
// every entry of hosts is a host name.
func ParseAccessRules(data []byte) (AccessRules, error) {
	var ar AccessRules
	if len(strings.TrimSpace(string(data))) == 0 {
		return ar, nil
	}
	if err := json.Unmarshal(data, &ar); err != nil {
		return AccessRules{}, fmt.Errorf("parse access rules: %w", err)
	}
	for i, r := range ar.Rules {
		if r.Host == "" {
			return AccessRules{}, fmt.Errorf("parse access rules: rule %d has no host", i)
		}
	}
	for i, h := range ar.Hosts {
		if validate.FQDN(h) != nil {
			return AccessRules{}, fmt.Errorf("parse access rules: hosts[%d] %q is not a host name", i, h)
		}
	}
	return ar, nil
}

// WriteAccessRules validates rules and replaces access-rules.json in dir
// atomically (0600). The panel calls it whenever a restricted tunnel, a
// protected site or the set of hosts changes, then tells the auth server
// (ManageClient.Reload).
func WriteAccessRules(dir string, ar AccessRules) error {
	seen := map[string]bool{}
	for i := range ar.Rules {
		r := &ar.Rules[i]
		if err := validate.FQDN(r.Host); err != nil || r.Host != strings.ToLower(r.Host) {
			return fmt.Errorf("access rule %d: invalid host %q", i, r.Host)
		}
		if seen[r.Host] {
			return fmt.Errorf("access rule %d: duplicate host %q", i, r.Host)
		}
		seen[r.Host] = true
		for _, u := range r.Users {
			if err := validate.Username(u); err != nil {
				return fmt.Errorf("access rule for %s: %w", r.Host, err)
			}
		}
		for _, g := range r.Groups {
			if err := validate.GroupName(g); err != nil {
				return fmt.Errorf("access rule for %s: %w", r.Host, err)
			}
		}
		if r.Users == nil {
			r.Users = []string{}
		}
		if r.Groups == nil {
			r.Groups = []string{}
		}
	}
	if ar.Rules == nil {
		ar.Rules = []AccessRule{}
	}
	hosts := []string{}
	for i, h := range ar.Hosts {
		if err := validate.FQDN(h); err != nil || h != strings.ToLower(h) {
			return fmt.Errorf("access rules: hosts[%d]: invalid host %q", i, h)
		}
		if !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	slices.Sort(hosts)
	ar.Hosts = hosts
	data, err := store.Marshal(ar)
	if err != nil {
		return fmt.Errorf("encode access rules: %w", err)
	}
	if err := store.WriteFileAtomic(RulesFilePath(dir), data, 0o600); err != nil {
		return fmt.Errorf("write access rules: %w", err)
	}
	return nil
}
