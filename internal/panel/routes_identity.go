package panel

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/auth"
)

// identityUsername checks the :username parameter of the identity routes:
// 1–100 characters of ^[a-zA-Z0-9_.-]+$ (docs/api.md, "Users and identity").
func identityUsername(s string) error {
	if len(s) >= 1 && len(s) <= 100 {
		ok := true
		for i := 0; i < len(s); i++ {
			c := s[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
				ok = false
				break
			}
		}
		if ok {
			return nil
		}
	}
	return errors.New("username must be 1–100 characters of letters, digits, '_', '.' and '-'")
}

// splitGroups splits a comma-joined Remote-Groups value, dropping empty
// items and surrounding spaces.
func splitGroups(v string) []string {
	out := []string{}
	for _, g := range strings.Split(v, ",") {
		if g = strings.TrimSpace(g); g != "" {
			out = append(out, g)
		}
	}
	return out
}

// registerIdentity: the identity routes of docs/api.md, "Users and identity".
func (s *Server) registerIdentity() {
	d := s.authDeps()

	s.Handle(Route{
		Method: http.MethodGet, Path: "/api/identity/self",
		Access: AdminOnly, Gate: GateManagement,
		Handler: func(c *Ctx) error {
			// Remote-* headers survive only on requests proven to come from
			// nginx (others have them removed), and the mTLS vhosts blank
			// them, so through the panel vhosts this always answers 400.
			user := single(c.R.Header, "Remote-User")
			if user == "" {
				return NewError(http.StatusBadRequest, "Identity headers not present — this endpoint requires an Authelia-protected vhost")
			}
			return c.OK(api.Self{
				Username:    user,
				DisplayName: single(c.R.Header, "Remote-Name"),
				Email:       single(c.R.Header, "Remote-Email"),
				Groups:      splitGroups(single(c.R.Header, "Remote-Groups")),
			})
		},
	})

	s.Handle(Route{
		Method: http.MethodGet, Path: "/api/identity/users",
		Access: AdminOrAgent, Capability: api.CapIdentityQuery, Gate: GateManagement,
		Handler: func(c *Ctx) error {
			users, err := d.Users.List()
			if err != nil {
				return Failed("Failed to read user database", err)
			}
			return c.OK(api.UserList{Users: apiUsers(users)})
		},
	})

	s.Handle(Route{
		Method: http.MethodGet, Path: "/api/identity/users/{username}",
		Access: AdminOrAgent, Capability: api.CapIdentityQuery, Gate: GateManagement,
		Params: map[string]func(string) error{"username": identityUsername},
		Handler: func(c *Ctx) error {
			u, err := d.Users.Get(c.Param("username"))
			switch {
			case errors.Is(err, auth.ErrUserNotFound):
				return errUserNotFound
			case err != nil:
				return Failed("Failed to read user database", err)
			}
			return c.OK(api.UserLookup{User: apiUser(u)})
		},
	})

	s.Handle(Route{
		Method: http.MethodGet, Path: "/api/identity/groups",
		Access: AdminOrAgent, Capability: api.CapIdentityQuery, Gate: GateManagement,
		Handler: func(c *Ctx) error {
			users, err := d.Users.List()
			if err != nil {
				return Failed("Failed to read user database", err)
			}
			groups := []string{}
			for _, u := range users {
				groups = append(groups, u.Groups...)
			}
			slices.Sort(groups)
			return c.OK(api.GroupList{Groups: slices.Compact(groups)})
		},
	})
}
