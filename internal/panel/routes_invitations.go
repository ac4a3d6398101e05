package panel

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/auth"
	"github.com/portlama/portlama/internal/invitations"
	"github.com/portlama/portlama/internal/manage"
	"github.com/portlama/portlama/internal/validate"
)

// authURL returns https://auth.<d>[:port]<path>, or nil without a domain.
func (s *Server) authURL(c *Ctx, path string) *string {
	d := c.Panel.DomainOrEmpty()
	if d == "" {
		return nil
	}
	u := s.cfg.Addrs.HostURL("auth", d) + path
	return &u
}

// registerInvitations: the admin invitation routes and the public
// invitation routes of docs/api.md, "Invitations".
func (s *Server) registerInvitations() {
	d := s.authDeps()

	s.Handle(Route{
		Method: http.MethodGet, Path: "/api/invitations",
		Access: AdminOnly, Gate: GateManagement,
		Handler: func(c *Ctx) error {
			list, err := d.Invitations.List()
			if err != nil {
				return Failed("Failed to read invitations", err)
			}
			return c.OK(api.InvitationList{Invitations: list})
		},
	})

	s.Handle(Route{
		Method: http.MethodPost, Path: "/api/invitations",
		Access: AdminOnly, Gate: GateManagement,
		Body: Object(
			Required("username", String().Check(validate.Username)),
			Required("email", String().Check(validate.Email)),
			Optional("groups", groupsSchema()),
			Optional("expiresInDays", Integer().Min(1).Max(30)),
		),
		Handler: func(c *Ctx) error {
			var body api.CreateInvitationRequest
			if err := c.Decode(&body); err != nil {
				return err
			}
			days := 7
			if body.ExpiresInDays != nil {
				days = *body.ExpiresInDays
			}
			if _, err := d.Users.Get(body.Username); err == nil {
				return NewError(http.StatusConflict, "Username already exists as an Authelia user")
			} else if !errors.Is(err, auth.ErrUserNotFound) {
				return Failed("Failed to save invitation", err)
			}
			inv, err := d.Invitations.Create(invitations.NewInvitation{
				Username: body.Username, Email: body.Email, Groups: body.Groups,
				ExpiresIn: time.Duration(days) * 24 * time.Hour,
			})
			switch {
			case errors.Is(err, invitations.ErrPending):
				return err // 409 with the contract's message
			case err != nil:
				return Failed("Failed to save invitation", err)
			}
			c.Log.Info("invitation created", "user", inv.Username, "id", inv.ID, "expiresAt", inv.ExpiresAt)
			// The token travels in the URL's fragment, which browsers never
			// send, so it stays out of request lines and logs (docs/api.md).
			return c.JSON(http.StatusCreated, api.CreateInvitationResponse{
				OK: true,
				Invitation: api.NewInvitation{
					ID: inv.ID, Username: inv.Username, Email: inv.Email, Groups: inv.Groups,
					CreatedAt: inv.CreatedAt, ExpiresAt: inv.ExpiresAt,
				},
				InviteURL: s.authURL(c, "/invite/#"+inv.Token),
				Token:     inv.Token,
			})
		},
	})

	s.Handle(Route{
		Method: http.MethodDelete, Path: "/api/invitations/{id}",
		Access: AdminOnly, Gate: GateManagement,
		Params: map[string]func(string) error{"id": validate.UUID},
		Handler: func(c *Ctx) error {
			err := d.Invitations.Revoke(strings.ToLower(c.Param("id")))
			switch {
			case errors.Is(err, invitations.ErrNotFound):
				return err // 404 Invitation not found
			case err != nil:
				return Failed("Failed to revoke invitation", err)
			}
			c.Log.Info("invitation revoked", "id", strings.ToLower(c.Param("id")))
			return c.OK(api.OK{OK: true})
		},
	})

	// The public routes take the token in the body, never in the path:
	// paths end up in logs, and a token is valid for up to 30 days.
	tokenSchema := String().Check(validate.Token)

	s.Handle(Route{
		Method: http.MethodPost, Path: "/api/invite/lookup",
		Access: Public, Gate: GateNone,
		Body: Object(Required("token", tokenSchema)),
		Handler: func(c *Ctx) error {
			var body api.InviteLookupRequest
			if err := c.Decode(&body); err != nil {
				return err
			}
			inv, err := d.Invitations.Lookup(body.Token)
			if err != nil {
				return err // 404 / 410 from the error's kind
			}
			return c.OK(api.InviteDetails{Username: inv.Username, Email: inv.Email, ExpiresAt: inv.ExpiresAt})
		},
	})

	s.Handle(Route{
		Method: http.MethodPost, Path: "/api/invite/accept",
		Access: Public, Gate: GateNone,
		Body: Object(Required("token", tokenSchema), Required("password", passwordSchema())),
		Handler: func(c *Ctx) error {
			var body api.InviteAcceptRequest
			if err := c.Decode(&body); err != nil {
				return err
			}
			inv, err := d.Invitations.Lookup(body.Token)
			if err != nil {
				return err
			}
			warning, err := manage.Warning(d.State.Apply(c.R.Context(), func() error {
				_, err := d.Users.Create(auth.NewUser{
					Username: inv.Username, DisplayName: inv.Username, Email: inv.Email,
					Password: body.Password, Groups: inv.Groups,
				})
				return err
			}))
			if warning != "" {
				// The invitee can do nothing about it; the admin's log says it.
				c.Log.Warn("invited user saved but not confirmed by the auth server", "user", inv.Username)
			}
			switch {
			case errors.Is(err, auth.ErrUserExists):
				return NewError(http.StatusConflict, "This username already exists")
			case err != nil && isHashError(err):
				return Failed("Failed to process password", err)
			case err != nil:
				return Failed("Failed to create user account", err)
			}
			var totpURI, totpQR *string
			if enr, err := d.TOTP.ResetTOTP(c.R.Context(), inv.Username); err != nil {
				c.Log.Error("give invited user a TOTP secret", "user", inv.Username, "err", err)
			} else {
				totpURI, totpQR = &enr.URI, &enr.QR
			}
			if err := d.Invitations.MarkUsed(inv.ID); err != nil {
				c.Log.Error("mark invitation used", "id", inv.ID, "err", err)
			}
			c.Log.Info("invitation accepted", "user", inv.Username, "id", inv.ID)
			return c.OK(api.InviteAcceptResponse{
				OK: true, Username: inv.Username, LoginURL: s.authURL(c, "/"),
				TOTPURI: totpURI, TOTPQR: totpQR,
			})
		},
	})
}
