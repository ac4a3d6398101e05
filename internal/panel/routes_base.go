package panel

import (
	"net/http"

	"github.com/portlama/portlama/internal/api"
)

// registerHealth: GET /api/health (docs/api.md, "Health and onboarding").
func (s *Server) registerHealth() {
	s.Handle(Route{
		Method: http.MethodGet, Path: "/api/health",
		Access: AdminOrAgent, healthExempt: true, TwoFAExempt: true, Gate: GateNone,
		Handler: func(c *Ctx) error {
			return c.OK(api.Health{Status: "ok", Version: s.cfg.Version})
		},
	})
}

// registerSystem: GET /api/system/stats (docs/api.md, "Health and onboarding").
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
