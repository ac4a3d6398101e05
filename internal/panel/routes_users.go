package panel

import (
	"context"
	"errors"
	"net/http"

	"golang.org/x/crypto/bcrypt"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/auth"
	"github.com/portlama/portlama/internal/invitations"
	"github.com/portlama/portlama/internal/manage"
	"github.com/portlama/portlama/internal/validate"
)

// UserDirectory is the auth server's users file as the panel edits it;
// *auth.UserStore is one.
type UserDirectory interface {
	List() ([]auth.UserInfo, error)
	Get(username string) (auth.UserInfo, error)
	Create(u auth.NewUser) (auth.UserInfo, error)
	Modify(username string, ch auth.UserChange) (auth.UserInfo, bool, error)
	Delete(username string) error
}

// TOTPManager hands out user TOTP secrets and ends login sessions through
// the auth server's management socket; *auth.ManageClient is one.
type TOTPManager interface {
	ResetTOTP(ctx context.Context, user string) (auth.TOTPEnrollment, error)
	DeleteTOTP(ctx context.Context, user string) (int, error)
	EndSessions(ctx context.Context, user string) (int, error)
}

// IPVhost switches the nginx vhost that serves the panel by IP
// (portlama-panel-ip): panel 2FA turns it off, disabling 2FA turns it back
// on. Each call includes nginx -t and a reload.
type IPVhost interface {
	Enable(ctx context.Context) error
	Disable(ctx context.Context) error
}

// StatePublisher writes the auth server's state files and waits until it
// serves them (*manage.Publisher; docs/api.md, "Changes in force").
type StatePublisher interface {
	Apply(ctx context.Context, write func() error) error
}

// AuthDeps are the dependencies of the users, invitations, panel 2FA and
// identity routes (Config.Auth). Every field is required.
type AuthDeps struct {
	Users       UserDirectory      // *auth.UserStore of the auth dir's users.yml
	State       StatePublisher     // every change of Users goes through it
	TOTP        TOTPManager        // *auth.ManageClient on the auth server's socket
	Invitations *invitations.Store // invitations.json
	IPVhost     IPVhost            // portlama-panel-ip on and off
}

func (d AuthDeps) missing() []string {
	var m []string
	if d.Users == nil {
		m = append(m, "Auth.Users")
	}
	if d.State == nil {
		m = append(m, "Auth.State")
	}
	if d.TOTP == nil {
		m = append(m, "Auth.TOTP")
	}
	if d.Invitations == nil {
		m = append(m, "Auth.Invitations")
	}
	if d.IPVhost == nil {
		m = append(m, "Auth.IPVhost")
	}
	return m
}

// authDeps returns Config.Auth.
func (s *Server) authDeps() *AuthDeps { return &s.cfg.Auth }

var (
	errUserNotFound = NewError(http.StatusNotFound, "User not found")
	errLastUser     = NewError(http.StatusBadRequest, "Cannot delete the last user")
)

// sessionsNotEnded is the warning when the auth server could not end a
// user's sessions.
func sessionsNotEnded(err error) string {
	return "Saved, but the auth server could not end the user's sessions (" + err.Error() + "); check that portlama-auth is running, then try again."
}

// passwordSchema is a user password (docs/api.md, "Users and identity": 8–128 characters).
func passwordSchema() *StringSchema {
	return String().Min(auth.MinPasswordLen).Max(auth.MaxPasswordLen).Check(auth.ValidatePassword)
}

func groupsSchema() *ArraySchema { return Array(String().Check(validate.GroupName)) }

// isHashError reports whether err comes from hashing a password.
func isHashError(err error) bool {
	return errors.Is(err, auth.ErrPasswordHash) || errors.Is(err, bcrypt.ErrPasswordTooLong)
}

// apiUser is a user of the users file as the API shows it.
func apiUser(u auth.UserInfo) api.User {
	groups := u.Groups
	if groups == nil {
		groups = []string{}
	}
	return api.User{Username: u.Username, DisplayName: u.DisplayName, Email: u.Email, Groups: groups}
}

func apiUsers(us []auth.UserInfo) []api.User {
	out := make([]api.User, 0, len(us))
	for _, u := range us {
		out = append(out, apiUser(u))
	}
	return out
}

// registerUsers: the users routes of docs/api.md, "Users and identity".
func (s *Server) registerUsers() {
	d := s.authDeps()

	s.Handle(Route{
		Method: http.MethodGet, Path: "/api/users",
		Access: AdminOnly, Gate: GateManagement,
		Handler: func(c *Ctx) error {
			users, err := d.Users.List()
			if err != nil {
				c.Log.Error("read users file", "err", err)
				users = []auth.UserInfo{}
			}
			return c.OK(api.UserList{Users: apiUsers(users)})
		},
	})

	s.Handle(Route{
		Method: http.MethodPost, Path: "/api/users",
		Access: AdminOnly, Gate: GateManagement,
		Body: Object(
			Required("username", String().Check(validate.Username)),
			Required("displayname", String().Check(validate.DisplayName)),
			Required("email", String().Check(validate.Email)),
			Required("password", passwordSchema()),
			Optional("groups", groupsSchema()),
		),
		Handler: func(c *Ctx) error {
			var body api.CreateUserRequest
			if err := c.Decode(&body); err != nil {
				return err
			}
			if body.Groups == nil {
				body.Groups = []string{}
			}
			if _, err := d.Users.Get(body.Username); err == nil {
				return NewError(http.StatusConflict, "Username already exists")
			} else if !errors.Is(err, auth.ErrUserNotFound) {
				return Failed("Failed to read user database", err)
			}
			var u auth.UserInfo
			warning, err := manage.Warning(d.State.Apply(c.R.Context(), func() error {
				var err error
				u, err = d.Users.Create(auth.NewUser{
					Username: body.Username, DisplayName: body.DisplayName, Email: body.Email,
					Password: body.Password, Groups: body.Groups,
				})
				return err
			}))
			switch {
			case errors.Is(err, auth.ErrUserExists):
				return NewError(http.StatusConflict, "Username already exists")
			case err != nil && isHashError(err):
				return Failed("Failed to hash password", err)
			case err != nil:
				return Failed("Failed to update user database", err)
			}
			c.Log.Info("user created", "user", u.Username)
			return c.JSON(http.StatusCreated, api.UserResponse{OK: true, User: apiUser(u), Warning: warning})
		},
	})

	usernameParam := map[string]func(string) error{"username": validate.Username}

	s.Handle(Route{
		Method: http.MethodPut, Path: "/api/users/{username}",
		Access: AdminOnly, Gate: GateManagement,
		Params: usernameParam,
		Body: Object(
			Optional("displayname", String().Check(validate.DisplayName)),
			Optional("email", String().Check(validate.Email)),
			Optional("password", passwordSchema()),
			Optional("groups", groupsSchema()),
		),
		Handler: func(c *Ctx) error {
			var body api.UpdateUserRequest
			if err := c.Decode(&body); err != nil {
				return err
			}
			if body.DisplayName == nil && body.Email == nil && body.Password == nil && body.Groups == nil {
				return ValidationError(Issue{Message: "At least one of displayname, email, password, groups is required"})
			}
			if body.Groups != nil && *body.Groups == nil {
				*body.Groups = []string{}
			}
			name := c.Param("username")
			var u auth.UserInfo
			var pwChanged bool
			warning, err := manage.Warning(d.State.Apply(c.R.Context(), func() error {
				var err error
				u, pwChanged, err = d.Users.Modify(name, auth.UserChange{
					DisplayName: body.DisplayName, Email: body.Email, Password: body.Password, Groups: body.Groups,
				})
				return err
			}))
			switch {
			case errors.Is(err, auth.ErrUserNotFound):
				return errUserNotFound
			case err != nil && isHashError(err):
				return Failed("Failed to hash password", err)
			case err != nil:
				return Failed("Failed to update user database", err)
			}
			if pwChanged {
				if n, err := d.TOTP.EndSessions(c.R.Context(), name); err != nil {
					c.Log.Error("end sessions after password change", "user", name, "err", err)
					warning = manage.JoinWarnings(warning, sessionsNotEnded(err))
				} else {
					c.Log.Info("password changed, sessions ended", "user", name, "sessions", n)
				}
			}
			return c.OK(api.UserResponse{OK: true, User: apiUser(u), Warning: warning})
		},
	})

	s.Handle(Route{
		Method: http.MethodDelete, Path: "/api/users/{username}",
		Access: AdminOnly, Gate: GateManagement,
		Params: usernameParam,
		Handler: func(c *Ctx) error {
			name := c.Param("username")
			warning, err := manage.Warning(d.State.Apply(c.R.Context(), func() error { return d.Users.Delete(name) }))
			switch {
			case errors.Is(err, auth.ErrUserNotFound):
				return errUserNotFound
			case errors.Is(err, auth.ErrLastUser):
				return errLastUser
			case err != nil:
				return Failed("Failed to update user database", err)
			}
			// The auth server no longer knows the user; ending the sessions
			// before answering leaves no signed-in request in flight.
			if n, err := d.TOTP.DeleteTOTP(c.R.Context(), name); err != nil {
				c.Log.Error("delete TOTP secret of deleted user", "user", name, "err", err)
				warning = manage.JoinWarnings(warning, sessionsNotEnded(err))
			} else {
				c.Log.Info("user deleted", "user", name, "sessions", n)
			}
			return c.OK(api.OK{OK: true, Warning: warning})
		},
	})

	s.Handle(Route{
		Method: http.MethodPost, Path: "/api/users/{username}/reset-totp",
		Access: AdminOnly, Gate: GateManagement,
		Params: usernameParam,
		Handler: func(c *Ctx) error {
			name := c.Param("username")
			if _, err := d.Users.Get(name); errors.Is(err, auth.ErrUserNotFound) {
				return errUserNotFound
			} else if err != nil {
				return Failed("Failed to read user database", err)
			}
			enr, err := d.TOTP.ResetTOTP(c.R.Context(), name)
			switch {
			case errors.Is(err, auth.ErrUserNotFound):
				return errUserNotFound
			case err != nil:
				return Failed("Failed to write TOTP configuration", err)
			}
			c.Log.Info("TOTP reset", "user", name)
			return c.OK(api.TOTPReset{OK: true, TOTPURI: enr.URI, TOTPQR: enr.QR})
		},
	})
}
