package panel

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/portlama/portlama/internal/auth"
	"github.com/portlama/portlama/internal/invitations"
	"github.com/portlama/portlama/internal/validate"
)

var (
	errInvitationNotFound = NewError(http.StatusNotFound, "Invitation not found")
	errInvitationUsed     = NewError(http.StatusGone, "This invitation has already been used")
	errInvitationExpired  = NewError(http.StatusGone, "This invitation has expired")
)

// invitationError maps invitations.Lookup errors to the answers of
// contract §10.2; other errors are returned unchanged (500).
func invitationError(err error) error {
	switch {
	case errors.Is(err, invitations.ErrNotFound):
		return errInvitationNotFound
	case errors.Is(err, invitations.ErrUsed):
		return errInvitationUsed
	case errors.Is(err, invitations.ErrExpired):
		return errInvitationExpired
	}
	return err
}

// authURL returns https://auth.<d><path>, with ":<port>" after the host
// when the relay's HTTPS port is not 443 (the demo), or nil without a
// domain.
func (s *Server) authURL(c *Ctx, path string) *string {
	d := c.Panel.DomainOrEmpty()
	if d == "" {
		return nil
	}
	host := "auth." + d
	if p := s.cfg.Addrs.HTTPSPort; p != 0 && p != 443 {
		host += ":" + strconv.Itoa(p)
	}
	u := "https://" + host + path
	return &u
}

// registerInvitations: the admin invitation routes and the public
// invitation routes of contract §10.
func (s *Server) registerInvitations() {
	d := s.authDeps()
	tokenParam := map[string]func(string) error{"token": validate.Token}

	s.Handle(Route{
		Method: http.MethodGet, Path: "/api/invitations",
		Access: AdminOnly, Gate: GateManagement,
		Handler: func(c *Ctx) error {
			list, err := d.Invitations.List()
			if err != nil {
				return Failed("Failed to read invitations", err)
			}
			return c.OK(map[string]any{"invitations": list})
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
			var body struct {
				Username      string   `json:"username"`
				Email         string   `json:"email"`
				Groups        []string `json:"groups"`
				ExpiresInDays *int     `json:"expiresInDays"`
			}
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
				return NewError(http.StatusConflict, "A pending invitation already exists for this username")
			case err != nil:
				return Failed("Failed to save invitation", err)
			}
			c.Log.Info("invitation created", "user", inv.Username, "id", inv.ID, "expiresAt", inv.ExpiresAt)
			return c.JSON(http.StatusCreated, map[string]any{
				"ok": true,
				"invitation": map[string]any{
					"id": inv.ID, "username": inv.Username, "email": inv.Email, "groups": inv.Groups,
					"createdAt": inv.CreatedAt, "expiresAt": inv.ExpiresAt,
				},
				"inviteUrl": s.authURL(c, "/invite/"+inv.Token),
				"token":     inv.Token,
			})
		},
	})

	s.Handle(Route{
		Method: http.MethodDelete, Path: "/api/invitations/{id}",
		Access: AdminOnly, Gate: GateManagement,
		Params: map[string]func(string) error{"id": validate.UUID},
		Handler: func(c *Ctx) error {
			err := d.Invitations.Revoke(c.Param("id"))
			switch {
			case errors.Is(err, invitations.ErrNotFound):
				return errInvitationNotFound
			case err != nil:
				return Failed("Failed to revoke invitation", err)
			}
			c.Log.Info("invitation revoked", "id", c.Param("id"))
			return c.OK(map[string]any{"ok": true})
		},
	})

	s.Handle(Route{
		Method: http.MethodGet, Path: "/api/invite/{token}",
		Access: Public, Gate: GateNone,
		Params: tokenParam,
		Handler: func(c *Ctx) error {
			inv, err := d.Invitations.Lookup(c.Param("token"))
			if err != nil {
				return invitationError(err)
			}
			return c.OK(map[string]any{"username": inv.Username, "email": inv.Email, "expiresAt": inv.ExpiresAt})
		},
	})

	s.Handle(Route{
		Method: http.MethodPost, Path: "/api/invite/{token}/accept",
		Access: Public, Gate: GateNone,
		Params: tokenParam,
		Body:   Object(Required("password", passwordSchema())),
		Handler: func(c *Ctx) error {
			var body struct {
				Password string `json:"password"`
			}
			if err := c.Decode(&body); err != nil {
				return err
			}
			inv, err := d.Invitations.Lookup(c.Param("token"))
			if err != nil {
				return invitationError(err)
			}
			_, err = d.Users.Create(auth.NewUser{
				Username: inv.Username, DisplayName: inv.Username, Email: inv.Email,
				Password: body.Password, Groups: inv.Groups,
			})
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
			return c.OK(map[string]any{
				"ok": true, "username": inv.Username, "loginUrl": s.authURL(c, "/"),
				"totpUri": totpURI, "totpQr": totpQR,
			})
		},
	})
}
