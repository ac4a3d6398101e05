// Package onboarding is the onboarding state machine of docs/api.md, "Onboarding gate" and docs/api.md, "Health and onboarding":
// setting the base domain and checking its DNS records. It works on
// panel.json through config.PanelStore and has no HTTP in it; the panel's
// handlers decode requests, call a Service and encode the result.
package onboarding

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/errkind"
	"github.com/portlama/portlama/internal/validate"
)

// StateError says an operation is not allowed in the current onboarding
// state. Message is the contract's error string; Status the current state.
type StateError struct {
	Message string
	Status  string
}

func (e *StateError) Error() string {
	return fmt.Sprintf("%s (onboarding status %s)", e.Message, e.Status)
}

// Completed reports whether the refusal is because onboarding is finished
// (the panel answers 410 then, 409 otherwise).
func (e *StateError) Completed() bool { return e.Status == config.StatusCompleted }

// Unwrap gives the error its kind: Gone once onboarding is completed,
// Conflict otherwise.
func (e *StateError) Unwrap() error {
	if e.Completed() {
		return errkind.Gone
	}
	return errkind.Conflict
}

// FieldError is a value that fails validation (a 400 in the panel).
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Unwrap gives the error its kind (errkind.Invalid).
func (e *FieldError) Unwrap() error { return errkind.Invalid }

// ErrorField names the request field.
func (e *FieldError) ErrorField() string { return e.Field }

// Error strings of docs/api.md, "Health and onboarding".
const (
	MsgCannotChangeDomain = "Cannot change domain in current state"
	MsgDomainNotSet       = "Domain must be set before DNS verification"
	MsgCompleted          = "Onboarding already completed"
)

// Service runs onboarding operations on panel.json.
type Service struct {
	Store    *config.PanelStore
	Resolver Resolver
}

// SetDomain validates domain and email, stores the domain lower-cased and
// moves FRESH or DOMAIN_SET to DOMAIN_SET. In any other state it returns a
// *StateError and changes nothing.
func (s *Service) SetDomain(domain, email string) (api.SetDomainResponse, error) {
	if err := validate.Domain(domain); err != nil {
		return api.SetDomainResponse{}, &FieldError{Field: "domain", Message: err.Error()}
	}
	if err := validate.Email(email); err != nil {
		return api.SetDomainResponse{}, &FieldError{Field: "email", Message: err.Error()}
	}
	d := strings.ToLower(domain)
	_, err := s.Store.Update(func(c *config.PanelConfig) error {
		switch c.Onboarding.Status {
		case config.StatusFresh, config.StatusDomainSet:
		case config.StatusCompleted:
			return &StateError{Message: MsgCompleted, Status: c.Onboarding.Status}
		default:
			return &StateError{Message: MsgCannotChangeDomain, Status: c.Onboarding.Status}
		}
		c.Domain = &d
		e := email
		c.Email = &e
		c.Onboarding.Status = config.StatusDomainSet
		return nil
	})
	if err != nil {
		return api.SetDomainResponse{}, err
	}
	return api.SetDomainResponse{OK: true, Domain: d, Email: email}, nil
}

// WildcardProbe is the label resolved to test for a wildcard record.
const WildcardProbe = "test-portlama-check"

// RequiredNames returns the names that must resolve to the relay: the
// domain itself and panel., auth. and tunnel. below it.
func RequiredNames(domain string) []string {
	return []string{domain, "panel." + domain, "auth." + domain, "tunnel." + domain}
}

// VerifyDNS resolves the required names and the wildcard probe. When every
// required name resolves to the relay's IP the state becomes DNS_READY; a
// failed check changes nothing. It needs state DOMAIN_SET or DNS_READY,
// else it returns a *StateError. DNS failures other than an empty answer
// are returned as errors.
func (s *Service) VerifyDNS(ctx context.Context) (api.DNSCheck, error) {
	c, err := s.Store.Load()
	if err != nil {
		return api.DNSCheck{}, err
	}
	if err := dnsAllowed(c); err != nil {
		return api.DNSCheck{}, err
	}
	domain, ip := c.DomainOrEmpty(), c.IP
	names := append(RequiredNames(domain), WildcardProbe+"."+domain)
	answers := make([][]string, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Go(func() { answers[i], errs[i] = s.Resolver.LookupA(ctx, n) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return api.DNSCheck{}, fmt.Errorf("verify DNS for %s: %w", domain, err)
	}
	for i := range answers {
		if answers[i] == nil {
			answers[i] = []string{}
		}
	}
	res := api.DNSCheck{
		Domain:              domain,
		ResolvedIPs:         answers[0],
		ExpectedIP:          ip,
		WildcardResolvedIPs: answers[4],
		WildcardOK:          slices.Contains(answers[4], ip),
		MissingNames:        []string{},
	}
	var elsewhere, unresolved []string
	for i, n := range names[:4] {
		if slices.Contains(answers[i], ip) {
			continue
		}
		res.MissingNames = append(res.MissingNames, n)
		if len(answers[i]) > 0 {
			elsewhere = append(elsewhere, fmt.Sprintf("%s → %s", n, strings.Join(answers[i], ", ")))
		} else {
			unresolved = append(unresolved, n)
		}
	}
	res.OK = len(res.MissingNames) == 0
	res.Message = dnsMessage(res, elsewhere, unresolved)
	if !res.OK {
		return res, nil
	}
	_, err = s.Store.Update(func(c *config.PanelConfig) error {
		if err := dnsAllowed(*c); err != nil {
			return err
		}
		if c.DomainOrEmpty() != domain || c.IP != ip {
			return &StateError{Message: "Domain changed during DNS verification; verify again", Status: c.Onboarding.Status}
		}
		c.Onboarding.Status = config.StatusDNSReady
		return nil
	})
	if err != nil {
		return api.DNSCheck{}, err
	}
	return res, nil
}

func dnsAllowed(c config.PanelConfig) error {
	switch c.Onboarding.Status {
	case config.StatusDomainSet, config.StatusDNSReady:
		if c.DomainOrEmpty() == "" {
			return &StateError{Message: MsgDomainNotSet, Status: c.Onboarding.Status}
		}
		return nil
	case config.StatusCompleted:
		return &StateError{Message: MsgCompleted, Status: c.Onboarding.Status}
	default:
		return &StateError{Message: MsgDomainNotSet, Status: c.Onboarding.Status}
	}
}

// dnsMessage tells the four outcomes of docs/api.md, "Health and onboarding" apart.
func dnsMessage(r api.DNSCheck, elsewhere, unresolved []string) string {
	switch {
	case r.OK && r.WildcardOK:
		return fmt.Sprintf("DNS is configured: %s, its service names and the wildcard *.%s all point to %s.", r.Domain, r.Domain, r.ExpectedIP)
	case r.OK:
		return fmt.Sprintf("DNS is configured for %s and its service names, but there is no wildcard record (*.%s → %s). Without it every tunnel and site needs its own A record.", r.Domain, r.Domain, r.ExpectedIP)
	case len(elsewhere) > 0:
		msg := fmt.Sprintf("Some names point to a different address: %s. Change their A records to point to %s.", strings.Join(elsewhere, "; "), r.ExpectedIP)
		if len(unresolved) > 0 {
			msg += fmt.Sprintf(" These names do not resolve yet: %s; add A records for them too.", strings.Join(unresolved, ", "))
		}
		return msg
	default:
		return fmt.Sprintf("These names do not resolve yet: %s. Add A records pointing to %s (a wildcard *.%s covers the subdomains). DNS changes can take a while to propagate; try again in a few minutes.", strings.Join(unresolved, ", "), r.ExpectedIP, r.Domain)
	}
}
