package auth

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/portlama/portlama/internal/store"
	"github.com/portlama/portlama/internal/validate"
)

// AccessRule limits one host to users and groups (contract §17.9). Group
// admins is always admitted.
type AccessRule struct {
	Host   string   `json:"host"`
	Users  []string `json:"users"`
	Groups []string `json:"groups"`
}

// AccessRules is access-rules.json, written by the panel.
type AccessRules struct {
	Rules []AccessRule `json:"rules"`
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

// ParseAccessRules decodes access-rules.json; every rule needs a host.
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
	return ar, nil
}

// WriteAccessRules validates rules and replaces access-rules.json in dir
// atomically (0600). The panel calls it whenever a restricted tunnel or a
// protected site changes; the auth server picks the file up within a second.
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
	data, err := store.Marshal(ar)
	if err != nil {
		return fmt.Errorf("encode access rules: %w", err)
	}
	if err := store.WriteFileAtomic(RulesFilePath(dir), data, 0o600); err != nil {
		return fmt.Errorf("write access rules: %w", err)
	}
	return nil
}
