package panel

import (
	"errors"
	"net/http"

	"github.com/portlama/portlama/internal/onboarding"
	"github.com/portlama/portlama/internal/validate"
)

// registerHealth: GET /api/health (contract §5).
func (s *Server) registerHealth() {
	s.Handle(Route{
		Method: http.MethodGet, Path: "/api/health",
		Access: AdminOrAgent, healthExempt: true, TwoFAExempt: true, Gate: GateNone,
		Handler: func(c *Ctx) error {
			return c.OK(map[string]string{"status": "ok", "version": s.cfg.Version})
		},
	})
}

// registerOnboarding: the onboarding routes of contract §6 (provision comes later).
func (s *Server) registerOnboarding() {
	s.Handle(Route{
		Method: http.MethodGet, Path: "/api/onboarding/status",
		Access: AdminOnly, Gate: GateNone,
		Handler: func(c *Ctx) error {
			return c.OK(onboarding.Status{Status: c.Panel.Onboarding.Status, Domain: c.Panel.Domain, IP: c.Panel.IP})
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
			var body struct {
				Domain string `json:"domain"`
				Email  string `json:"email"`
			}
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
				var se *onboarding.StateError
				if errors.As(err, &se) {
					return onboardingError(err)
				}
				return Failed("Failed to verify DNS", err)
			}
			return c.OK(res)
		},
	})
}

// onboardingError maps onboarding errors to API errors: 410 once
// completed, 409 with onboardingStatus for other state refusals, 400 for a
// field error; anything else is returned unchanged (500).
func onboardingError(err error) error {
	var se *onboarding.StateError
	if errors.As(err, &se) {
		if se.Completed() {
			return errOnboardingDone
		}
		return NewError(http.StatusConflict, se.Message).With("onboardingStatus", se.Status)
	}
	var fe *onboarding.FieldError
	if errors.As(err, &fe) {
		return ValidationError(Issue{Path: []any{fe.Field}, Message: fe.Message})
	}
	return err
}

// registerSystem: GET /api/system/stats (contract §13).
func (s *Server) registerSystem() {
	s.Handle(Route{
		Method: http.MethodGet, Path: "/api/system/stats",
		Access: AdminOrAgent, Capability: CapSystemRead, Gate: GateManagement,
		Handler: func(c *Ctx) error {
			st, err := s.stats.Stats(c.R.Context())
			if err != nil {
				return Failed("Failed to retrieve system stats", err)
			}
			return c.OK(st)
		},
	})
}
