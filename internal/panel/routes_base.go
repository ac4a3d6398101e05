package panel

import (
	"errors"
	"net/http"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/onboarding"
	"github.com/portlama/portlama/internal/validate"
)

// registerHealth: GET /api/health (contract §5).
func (s *Server) registerHealth() {
	s.Handle(Route{
		Method: http.MethodGet, Path: "/api/health",
		Access: AdminOrAgent, healthExempt: true, TwoFAExempt: true, Gate: GateNone,
		Handler: func(c *Ctx) error {
			return c.OK(api.Health{Status: "ok", Version: s.cfg.Version})
		},
	})
}

// registerOnboarding: the onboarding routes of contract §6 (provision comes later).
func (s *Server) registerOnboarding() {
	s.Handle(Route{
		Method: http.MethodGet, Path: "/api/onboarding/status",
		Access: AdminOnly, Gate: GateNone,
		Handler: func(c *Ctx) error {
			return c.OK(api.OnboardingStatus{Status: c.Panel.Onboarding.Status, Domain: c.Panel.Domain, IP: c.Panel.IP, HTTPSPort: s.cfg.Addrs.HTTPSPort})
		},
	})

	s.Handle(Route{
		Method: http.MethodPost, Path: "/api/onboarding/domain",
		Access: AdminOnly, Gate: GateOnboarding,
		Body: Object(
			Required("domain", String().Check(validate.Domain)),
			Required("email", String().Check(validate.Email)),
		),
		Handler: func(c *Ctx) error {
			var body api.SetDomainRequest
			if err := c.Decode(&body); err != nil {
				return err
			}
			res, err := s.onboarding.SetDomain(body.Domain, body.Email)
			if err != nil {
				return onboardingError(err)
			}
			return c.OK(res)
		},
	})

	s.Handle(Route{
		Method: http.MethodPost, Path: "/api/onboarding/verify-dns",
		Access: AdminOnly, Gate: GateOnboarding,
		Handler: func(c *Ctx) error {
			res, err := s.onboarding.VerifyDNS(c.R.Context())
			if err != nil {
				if statusOf(err) == 0 {
					return Failed("Failed to verify DNS", err)
				}
				return onboardingError(err)
			}
			return c.OK(res)
		},
	})
}

// onboardingError adds onboardingStatus to the 409 of an onboarding state
// refusal (the status comes from the error's kind like everywhere: 410 once
// completed, 409 otherwise, 400 for a field error).
func onboardingError(err error) error {
	var se *onboarding.StateError
	if errors.As(err, &se) && !se.Completed() {
		e := NewError(http.StatusConflict, se.Message)
		e.OnboardingStatus = se.Status
		return e
	}
	if errors.As(err, &se) {
		return errOnboardingDone
	}
	return err
}

// registerSystem: GET /api/system/stats (contract §13).
func (s *Server) registerSystem() {
	s.Handle(Route{
		Method: http.MethodGet, Path: "/api/system/stats",
		Access: AdminOrAgent, Capability: api.CapSystemRead, Gate: GateManagement,
		Handler: func(c *Ctx) error {
			st, err := s.stats.Stats(c.R.Context())
			if err != nil {
				return Failed("Failed to retrieve system stats", err)
			}
			return c.OK(api.SystemStats{
				CPU:    api.CPUStats{Usage: st.CPU.Usage, Cores: st.CPU.Cores},
				Memory: api.Usage(st.Memory),
				Disk:   api.Usage(st.Disk),
				Uptime: st.Uptime,
			})
		},
	})
}
