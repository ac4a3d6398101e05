package panel

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/coder/websocket"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/onboarding"
	"github.com/portlama/portlama/internal/validate"
)

// Provisioning is the onboarding provisioning job; *provision.Job is one.
type Provisioning interface {
	// Start persists PROVISIONING and starts a run; its errors have kinds
	// (409 before DNS is verified or while a run is active, 410 after
	// completion).
	Start() error
	// Subscribe returns the encoded snapshot frame and the frames that
	// follow it; cancel ends the subscription.
	Subscribe() (snapshot []byte, frames <-chan []byte, cancel func(), err error)
}

// registerOnboarding: the onboarding routes (docs/api.md, "Health and onboarding").
func (s *Server) registerOnboarding() {
	s.Handle(Route{
		Method: http.MethodGet, Path: "/api/onboarding/status",
		Access: AdminOnly, Gate: GateNone,
		Handler: func(c *Ctx) error {
			return c.OK(api.OnboardingStatus{Status: c.Panel.Onboarding.Status, Domain: c.Panel.Domain, IP: c.Panel.IP,
				HTTPSPort: s.cfg.Addrs.HTTPSPort, PanelIPURL: s.cfg.Addrs.PanelIPURL(c.Panel.IP)})
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

	s.Handle(Route{
		Method: http.MethodPost, Path: "/api/onboarding/provision",
		Access: AdminOnly, Gate: GateOnboarding,
		Handler: func(c *Ctx) error {
			if err := s.cfg.Provisioning.Start(); err != nil {
				return err
			}
			return c.JSON(http.StatusAccepted, api.ProvisionStarted{OK: true, Message: "Provisioning started"})
		},
	})

	s.Handle(Route{
		Method: http.MethodGet, Path: "/api/onboarding/provision/stream",
		Access: AdminOnly, Gate: GateOnboarding,
		Handler: s.provisionStream,
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

// provisionStream is WS /api/onboarding/provision/stream: the snapshot on
// connect, then every event until the client closes the socket. The
// cross-origin check already ran (middleware), so the upgrade skips
// websocket's own; the gate refused it with 410 after completion.
func (s *Server) provisionStream(c *Ctx) error {
	snap, frames, cancel, err := s.cfg.Provisioning.Subscribe()
	if err != nil {
		return err
	}
	defer cancel()
	conn, err := websocket.Accept(c.W, c.R, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		c.Log.Debug("provisioning stream upgrade", "err", err)
		return nil
	}
	defer conn.CloseNow()
	// Reading is only for the close handshake; the context ends when the
	// client goes away.
	ctx := conn.CloseRead(c.R.Context())
	write := func(b []byte) error {
		wctx, done := context.WithTimeout(ctx, 10*time.Second)
		defer done()
		return conn.Write(wctx, websocket.MessageText, b)
	}
	if err := write(snap); err != nil {
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			conn.Close(websocket.StatusNormalClosure, "")
			return nil
		case f := <-frames:
			if err := write(f); err != nil {
				return nil
			}
		}
	}
}
