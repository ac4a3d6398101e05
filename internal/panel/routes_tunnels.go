package panel

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/portlama/portlama/internal/acme"
	"github.com/portlama/portlama/internal/agents"
	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/errkind"
	"github.com/portlama/portlama/internal/pki"
	"github.com/portlama/portlama/internal/sites"
	"github.com/portlama/portlama/internal/system"
	"github.com/portlama/portlama/internal/tunnels"
	"github.com/portlama/portlama/internal/validate"
)

// RelayDeps are the relay services behind the tunnel (docs/api.md, "Tunnels"),
// certificate and agent (docs/api.md, "Certificates, agents, enrollment") and enrollment (docs/api.md, "Enrollment") routes. Every field
// is required: New refuses a panel with one missing.
type RelayDeps struct {
	Tunnels *tunnels.Service // tunnels.json and its side effects
	Sites   *sites.Service   // sites.json, site roots and their side effects (routes_sites.go)
	Agents  *agents.Manager  // agents registry, tokens, enrollment
	PKI     *pki.PKI         // CA, admin credential, revocation
	Certs   *acme.Store      // TLS certificate store (GET /api/certs)

	// Credential returns the agent's tunnel credential "<label>:<password>"
	// (tunnel.ACL.Credential).
	Credential func(ctx context.Context, label string) (string, error)
	// Fingerprint returns the tunnel server's key fingerprint
	// (relay.Services.Fingerprint).
	Fingerprint func() (string, error)
	// ServerURL returns the URL agents connect tunnels to for the base
	// domain, e.g. https://tunnel.<d>:443 (relay.Services.TunnelServerURL).
	ServerURL func(domain string) string
	// RenewCert forces the renewal of one certificate and reloads nginx
	// (relay.Services.RenewCertificate); reloadErr is a failed test or
	// reload after a successful renewal.
	RenewCert func(ctx context.Context, name string) (notAfter time.Time, reloadErr, err error)
	// Timers reports the renewal timer (auto-renew-status).
	Timers system.TimerReporter
	// Presence is the tunnel server's status: who is connected, which
	// ports are bound (the lists' connection state).
	Presence TunnelStatus
}

func (d RelayDeps) missing() []string {
	var m []string
	for name, nilDep := range map[string]bool{
		"Tunnels": d.Tunnels == nil, "Sites": d.Sites == nil, "Agents": d.Agents == nil, "PKI": d.PKI == nil, "Certs": d.Certs == nil,
		"Credential": d.Credential == nil, "Fingerprint": d.Fingerprint == nil, "ServerURL": d.ServerURL == nil,
		"RenewCert": d.RenewCert == nil, "Timers": d.Timers == nil, "Presence": d.Presence == nil,
	} {
		if nilDep {
			m = append(m, "Relay."+name)
		}
	}
	return m
}

// errAgentLabelRequired answers admin callers of agent-only tunnel routes.
func errAgentLabelRequired(status int) *api.Error {
	return NewError(status, "Agent label is required (must use agent certificate)")
}

// tunnelCaller is the tunnels.Caller for the request's identity.
func tunnelCaller(id *Identity) tunnels.Caller {
	if id.IsAdmin() {
		return tunnels.Caller{Admin: true}
	}
	return tunnels.Caller{Label: id.Label, Capabilities: id.Capabilities}
}

// failedAs replaces the message of an anticipated failure (expose /
// retract panel); other errors are returned unchanged.
func failedAs(err error, msg string) error {
	if ke, ok := errkind.As(err); ok && ke.Kind == errkind.Failed {
		return Failed(msg, ke.Cause)
	}
	return err
}

// Body schemas of the tunnel routes (docs/api.md, "Creating a tunnel" and "Tunnels").
var (
	tunnelPortSchema    = Integer().Min(validate.MinPort).Max(validate.MaxPort)
	accessModeSchema    = String().OneOf(string(api.AccessAuthenticated), string(api.AccessRestricted), string(api.AccessPublic))
	allowedUsersSchema  = Array(String().Check(validate.Username)).Max(100).Unique()
	allowedGroupsSchema = Array(String().Check(validate.GroupName)).Max(100).Unique()

	createTunnelSchema = Object(
		Required("subdomain", String().Check(validate.Subdomain)),
		Required("port", tunnelPortSchema),
		Optional("targetHost", String().Check(validate.TargetHost)),
		Optional("description", String().Max(200)),
		Optional("type", String().OneOf(string(api.TypeApp), string(api.TypePanel))),
		Optional("agentLabel", String().Check(validate.TunnelAgentLabel)),
		Optional("accessMode", accessModeSchema),
		Optional("allowedUsers", allowedUsersSchema),
		Optional("allowedGroups", allowedGroupsSchema),
	)
	patchTunnelSchema = Object(
		Optional("enabled", Bool()),
		Optional("accessMode", accessModeSchema),
		Optional("allowedUsers", allowedUsersSchema),
		Optional("allowedGroups", allowedGroupsSchema),
	)
	exposePanelSchema = Object(Required("port", tunnelPortSchema))
)

// registerTunnels: the tunnel routes of docs/api.md, "Tunnels". The fixed paths are
// literal patterns, so they win over /api/tunnels/{id}.
func (s *Server) registerTunnels() {
	d := &s.cfg.Relay

	s.Handle(Route{
		Method: http.MethodGet, Path: "/api/tunnels/agent-config",
		Access: AdminOrAgent, Capability: api.CapTunnelsRead, Gate: GateManagement,
		Handler: func(c *Ctx) error {
			cfg, err := s.agentConfig(c, "Failed to generate agent config")
			if err != nil {
				return err
			}
			c.W.Header().Set("Cache-Control", "no-store")
			return c.OK(cfg)
		},
	})

	s.Handle(Route{
		Method: http.MethodGet, Path: "/api/tunnels/mac-plist",
		Access: AdminOrAgent, Capability: api.CapTunnelsRead, Gate: GateManagement,
		Query: Object(Optional("format", String())),
		Handler: func(c *Ctx) error {
			var q struct {
				Format string `json:"format"`
			}
			if err := c.DecodeQuery(&q); err != nil {
				return err
			}
			cfg, err := s.agentConfig(c, "Failed to generate Mac plist")
			if err != nil {
				return err
			}
			plist := tunnels.MacPlist(cfg.ChiselArgs)
			c.W.Header().Set("Cache-Control", "no-store")
			if q.Format == "json" {
				return c.OK(api.MacPlist{Plist: plist, Instructions: tunnels.MacPlistInstructions()})
			}
			c.W.Header().Set("Content-Type", "application/x-plist")
			c.W.Header().Set("Content-Disposition", `attachment; filename="com.portlama.chisel.plist"`)
			c.W.WriteHeader(http.StatusOK)
			_, err = c.W.Write([]byte(plist))
			if err != nil {
				c.Log.Debug("write plist", "err", err)
			}
			return nil
		},
	})

	s.Handle(Route{
		Method: http.MethodGet, Path: "/api/tunnels",
		Access: AdminOrAgent, Capability: api.CapTunnelsRead, Gate: GateManagement,
		Handler: func(c *Ctx) error {
			list, err := d.Tunnels.List(tunnelCaller(c.Identity))
			if err != nil {
				return Failed("Failed to list tunnels", err)
			}
			if by, ok := s.presence(c.R.Context()); ok {
				withTunnelPresence(list, by)
			}
			return c.OK(api.TunnelList{Tunnels: list})
		},
	})

	s.Handle(Route{
		Method: http.MethodPost, Path: "/api/tunnels", Reconfigures: true,
		Access: AdminOrAgent, Capability: api.CapTunnelsWrite, Gate: GateManagement,
		Body: createTunnelSchema,
		Handler: func(c *Ctx) error {
			var b api.CreateTunnelRequest
			if err := c.Decode(&b); err != nil {
				return err
			}
			res, err := d.Tunnels.Create(c.R.Context(), tunnelCaller(c.Identity), b)
			if err != nil {
				return err
			}
			return c.JSON(http.StatusCreated, api.TunnelResponse{OK: true, Tunnel: res.Tunnel, Warning: res.Warning})
		},
	})

	s.Handle(Route{
		Method: http.MethodPatch, Path: "/api/tunnels/{id}", Reconfigures: true,
		Access: AdminOrAgent, Capability: api.CapTunnelsWrite, Gate: GateManagement,
		Params: map[string]func(string) error{"id": validate.UUID},
		Body:   patchTunnelSchema,
		Handler: func(c *Ctx) error {
			var b api.UpdateTunnelRequest
			if err := c.Decode(&b); err != nil {
				return err
			}
			if b.Enabled == nil && b.AccessMode == nil && b.AllowedUsers == nil && b.AllowedGroups == nil {
				return ValidationError(Issue{Path: []any{}, Message: "Provide at least one of enabled, accessMode, allowedUsers, allowedGroups"})
			}
			res, err := d.Tunnels.Update(c.R.Context(), tunnelCaller(c.Identity), strings.ToLower(c.Param("id")), b)
			if err != nil {
				return err
			}
			return c.OK(api.TunnelResponse{OK: true, Tunnel: res.Tunnel, Warning: res.Warning})
		},
	})

	s.Handle(Route{
		Method: http.MethodDelete, Path: "/api/tunnels/{id}", Reconfigures: true,
		Access: AdminOrAgent, Capability: api.CapTunnelsWrite, Gate: GateManagement,
		Params: map[string]func(string) error{"id": validate.UUID},
		Handler: func(c *Ctx) error {
			warning, err := d.Tunnels.Delete(c.R.Context(), tunnelCaller(c.Identity), strings.ToLower(c.Param("id")))
			if err != nil {
				return err
			}
			return c.OK(api.OK{OK: true, Warning: warning})
		},
	})

	s.registerAgentPanel()
}

// registerAgentPanel: the agent panel tunnel routes (docs/api.md, "Tunnels").
func (s *Server) registerAgentPanel() {
	d := &s.cfg.Relay

	s.Handle(Route{
		Method: http.MethodGet, Path: "/api/tunnels/agent-panel-status",
		Access: AdminOrAgent, Capability: api.CapPanelExpose, Gate: GateManagement,
		Handler: func(c *Ctx) error {
			var status api.AgentPanelStatus
			if c.Identity.IsAdmin() {
				return c.OK(status)
			}
			t, found, err := s.panelTunnel(c.Identity.Label)
			if err != nil {
				return err
			}
			if found {
				status = api.AgentPanelStatus{Enabled: t.IsEnabled(), FQDN: &t.FQDN, Port: &t.Port}
			}
			return c.OK(status)
		},
	})

	s.Handle(Route{
		Method: http.MethodPost, Path: "/api/tunnels/expose-panel", Reconfigures: true,
		Access: AdminOrAgent, Capability: api.CapPanelExpose, Gate: GateManagement,
		Body: exposePanelSchema,
		Handler: func(c *Ctx) error {
			if c.Identity.IsAdmin() {
				return errAgentLabelRequired(http.StatusBadRequest)
			}
			var b api.ExposePanelRequest
			if err := c.Decode(&b); err != nil {
				return err
			}
			label := c.Identity.Label
			existing, found, err := s.panelTunnel(label)
			if err != nil {
				return err
			}
			if found {
				e := NewError(http.StatusConflict, "Agent panel tunnel already exists")
				e.Tunnel = &existing
				return e
			}
			res, err := d.Tunnels.Create(c.R.Context(), tunnelCaller(c.Identity), tunnels.CreateRequest{
				Subdomain:   "agent-" + label,
				Port:        b.Port,
				TargetHost:  "127.0.0.1",
				Description: "Agent management panel for " + label,
				Type:        api.TypePanel,
				AgentLabel:  label,
			})
			if err != nil {
				return failedAs(err, "Failed to expose agent panel")
			}
			return c.JSON(http.StatusCreated, api.TunnelResponse{OK: true, Tunnel: res.Tunnel, Warning: res.Warning})
		},
	})

	s.Handle(Route{
		Method: http.MethodDelete, Path: "/api/tunnels/retract-panel", Reconfigures: true,
		Access: AdminOrAgent, Capability: api.CapPanelExpose, Gate: GateManagement,
		Handler: func(c *Ctx) error {
			if c.Identity.IsAdmin() {
				return errAgentLabelRequired(http.StatusBadRequest)
			}
			t, found, err := s.panelTunnel(c.Identity.Label)
			if err != nil {
				return err
			}
			if !found {
				return NewError(http.StatusNotFound, "No panel tunnel found for this agent")
			}
			warning, err := d.Tunnels.Delete(c.R.Context(), tunnelCaller(c.Identity), t.ID)
			if err != nil {
				if errors.Is(err, errkind.NotFound) {
					return NewError(http.StatusNotFound, "No panel tunnel found for this agent")
				}
				return failedAs(err, "Failed to retract agent panel")
			}
			return c.OK(api.OK{OK: true, Warning: warning})
		},
	})
}

// panelTunnel finds the agent's own panel tunnel (agent-<label>).
func (s *Server) panelTunnel(label string) (api.Tunnel, bool, error) {
	list, err := s.cfg.Relay.Tunnels.List(tunnels.Caller{Label: label})
	if err != nil {
		return api.Tunnel{}, false, err
	}
	for _, t := range list {
		if t.Type == api.TypePanel && t.Subdomain == "agent-"+label {
			return t, true, nil
		}
	}
	return api.Tunnel{}, false, nil
}

// agentConfig builds the calling agent's configuration (docs/api.md, "Tunnels");
// failMsg is the route's 500 message.
func (s *Server) agentConfig(c *Ctx, failMsg string) (api.AgentConfig, error) {
	d := &s.cfg.Relay
	if c.Identity.IsAdmin() {
		return api.AgentConfig{}, errAgentLabelRequired(http.StatusBadRequest)
	}
	domain := c.Panel.DomainOrEmpty()
	if domain == "" {
		return api.AgentConfig{}, NewError(http.StatusBadRequest, "Domain not configured")
	}
	label := c.Identity.Label
	enabled, err := d.Tunnels.EnabledFor(label)
	if err != nil {
		return api.AgentConfig{}, Failed(failMsg, err)
	}
	cred, err := d.Credential(c.R.Context(), label)
	if err != nil {
		return api.AgentConfig{}, Failed(failMsg, err)
	}
	password, ok := strings.CutPrefix(cred, label+":")
	if !ok || password == "" {
		return api.AgentConfig{}, Failed(failMsg, errors.New("tunnel credential has an unexpected form"))
	}
	fp, err := d.Fingerprint()
	if err != nil {
		return api.AgentConfig{}, Failed(failMsg, err)
	}
	return tunnels.BuildAgentConfig(domain, d.ServerURL(domain), label, password, fp, enabled), nil
}
