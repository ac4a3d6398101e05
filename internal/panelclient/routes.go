package panelclient

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/portlama/portlama/internal/api"
)

// Health calls GET /api/health; a status other than "ok" is an error.
func (c *Client) Health(ctx context.Context) (api.Health, error) {
	var h api.Health
	if err := c.do(ctx, http.MethodGet, "/api/health", nil, &h); err != nil {
		return api.Health{}, err
	}
	if h.Status != "ok" {
		return h, fmt.Errorf("relay health is %q", h.Status)
	}
	return h, nil
}

// OnboardingStatus calls GET /api/onboarding/status.
func (c *Client) OnboardingStatus(ctx context.Context) (api.OnboardingStatus, error) {
	var out api.OnboardingStatus
	return out, c.do(ctx, http.MethodGet, "/api/onboarding/status", nil, &out)
}

// SetDomain calls POST /api/onboarding/domain.
func (c *Client) SetDomain(ctx context.Context, r api.SetDomainRequest) (api.SetDomainResponse, error) {
	var out api.SetDomainResponse
	return out, c.do(ctx, http.MethodPost, "/api/onboarding/domain", r, &out)
}

// VerifyDNS calls POST /api/onboarding/verify-dns.
func (c *Client) VerifyDNS(ctx context.Context) (api.DNSCheck, error) {
	var out api.DNSCheck
	return out, c.do(ctx, http.MethodPost, "/api/onboarding/verify-dns", struct{}{}, &out)
}

// SystemStats calls GET /api/system/stats.
func (c *Client) SystemStats(ctx context.Context) (api.SystemStats, error) {
	var out api.SystemStats
	return out, c.do(ctx, http.MethodGet, "/api/system/stats", nil, &out)
}

// AgentConfig calls GET /api/tunnels/agent-config and validates the answer
// (api.AgentConfig.Validate) before anything uses it for chisel.
func (c *Client) AgentConfig(ctx context.Context) (*api.AgentConfig, error) {
	var cfg api.AgentConfig
	if err := c.do(ctx, http.MethodGet, "/api/tunnels/agent-config", nil, &cfg); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid agent-config: %w", err)
	}
	return &cfg, nil
}

// MacPlist calls GET /api/tunnels/mac-plist?format=json.
func (c *Client) MacPlist(ctx context.Context) (api.MacPlist, error) {
	var out api.MacPlist
	return out, c.do(ctx, http.MethodGet, "/api/tunnels/mac-plist?format=json", nil, &out)
}

// MacPlistFile calls GET /api/tunnels/mac-plist (the plist XML).
func (c *Client) MacPlistFile(ctx context.Context) ([]byte, error) {
	data, _, err := c.send(ctx, http.MethodGet, "/api/tunnels/mac-plist", nil)
	return data, err
}

// ListTunnels calls GET /api/tunnels (newest first).
func (c *Client) ListTunnels(ctx context.Context) ([]api.Tunnel, error) {
	var out api.TunnelList
	if err := c.do(ctx, http.MethodGet, "/api/tunnels", nil, &out); err != nil {
		return nil, err
	}
	return out.Tunnels, nil
}

// CreateTunnel calls POST /api/tunnels.
func (c *Client) CreateTunnel(ctx context.Context, r api.CreateTunnelRequest) (api.Tunnel, error) {
	var out api.TunnelResponse
	return out.Tunnel, c.do(ctx, http.MethodPost, "/api/tunnels", r, &out)
}

// UpdateTunnel calls PATCH /api/tunnels/:id.
func (c *Client) UpdateTunnel(ctx context.Context, id string, r api.UpdateTunnelRequest) (api.Tunnel, error) {
	var out api.TunnelResponse
	return out.Tunnel, c.do(ctx, http.MethodPatch, "/api/tunnels/"+url.PathEscape(id), r, &out)
}

// SetTunnelEnabled calls PATCH /api/tunnels/:id with {"enabled": enabled}.
func (c *Client) SetTunnelEnabled(ctx context.Context, id string, enabled bool) (api.Tunnel, error) {
	return c.UpdateTunnel(ctx, id, api.UpdateTunnelRequest{Enabled: &enabled})
}

// DeleteTunnel calls DELETE /api/tunnels/:id.
func (c *Client) DeleteTunnel(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/api/tunnels/"+url.PathEscape(id), nil, nil)
}

// AgentPanelStatus calls GET /api/tunnels/agent-panel-status.
func (c *Client) AgentPanelStatus(ctx context.Context) (api.AgentPanelStatus, error) {
	var out api.AgentPanelStatus
	return out, c.do(ctx, http.MethodGet, "/api/tunnels/agent-panel-status", nil, &out)
}

// ExposePanel calls POST /api/tunnels/expose-panel.
func (c *Client) ExposePanel(ctx context.Context, port int) (api.Tunnel, error) {
	var out api.TunnelResponse
	return out.Tunnel, c.do(ctx, http.MethodPost, "/api/tunnels/expose-panel", api.ExposePanelRequest{Port: port}, &out)
}

// RetractPanel calls DELETE /api/tunnels/retract-panel.
func (c *Client) RetractPanel(ctx context.Context) error {
	return c.do(ctx, http.MethodDelete, "/api/tunnels/retract-panel", nil, nil)
}

// ListUsers calls GET /api/users.
func (c *Client) ListUsers(ctx context.Context) ([]api.User, error) {
	var out api.UserList
	return out.Users, c.do(ctx, http.MethodGet, "/api/users", nil, &out)
}

// CreateUser calls POST /api/users.
func (c *Client) CreateUser(ctx context.Context, r api.CreateUserRequest) (api.User, error) {
	var out api.UserResponse
	return out.User, c.do(ctx, http.MethodPost, "/api/users", r, &out)
}

// UpdateUser calls PUT /api/users/:username.
func (c *Client) UpdateUser(ctx context.Context, username string, r api.UpdateUserRequest) (api.User, error) {
	var out api.UserResponse
	return out.User, c.do(ctx, http.MethodPut, "/api/users/"+url.PathEscape(username), r, &out)
}

// DeleteUser calls DELETE /api/users/:username.
func (c *Client) DeleteUser(ctx context.Context, username string) error {
	return c.do(ctx, http.MethodDelete, "/api/users/"+url.PathEscape(username), nil, nil)
}

// ResetTOTP calls POST /api/users/:username/reset-totp.
func (c *Client) ResetTOTP(ctx context.Context, username string) (api.TOTPReset, error) {
	var out api.TOTPReset
	return out, c.do(ctx, http.MethodPost, "/api/users/"+url.PathEscape(username)+"/reset-totp", struct{}{}, &out)
}

// ListInvitations calls GET /api/invitations.
func (c *Client) ListInvitations(ctx context.Context) ([]api.Invitation, error) {
	var out api.InvitationList
	return out.Invitations, c.do(ctx, http.MethodGet, "/api/invitations", nil, &out)
}

// CreateInvitation calls POST /api/invitations.
func (c *Client) CreateInvitation(ctx context.Context, r api.CreateInvitationRequest) (api.CreateInvitationResponse, error) {
	var out api.CreateInvitationResponse
	return out, c.do(ctx, http.MethodPost, "/api/invitations", r, &out)
}

// RevokeInvitation calls DELETE /api/invitations/:id.
func (c *Client) RevokeInvitation(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/api/invitations/"+url.PathEscape(id), nil, nil)
}

// LookupInvite calls the public POST /api/invite/lookup.
func (c *Client) LookupInvite(ctx context.Context, token string) (api.InviteDetails, error) {
	var out api.InviteDetails
	return out, c.do(ctx, http.MethodPost, "/api/invite/lookup", api.InviteLookupRequest{Token: token}, &out)
}

// AcceptInvite calls the public POST /api/invite/accept.
func (c *Client) AcceptInvite(ctx context.Context, token, password string) (api.InviteAcceptResponse, error) {
	var out api.InviteAcceptResponse
	return out, c.do(ctx, http.MethodPost, "/api/invite/accept", api.InviteAcceptRequest{Token: token, Password: password}, &out)
}

// TwoFAStatus calls GET /api/settings/2fa.
func (c *Client) TwoFAStatus(ctx context.Context) (api.TwoFAStatus, error) {
	var out api.TwoFAStatus
	return out, c.do(ctx, http.MethodGet, "/api/settings/2fa", nil, &out)
}

// SetupTwoFA calls POST /api/settings/2fa/setup.
func (c *Client) SetupTwoFA(ctx context.Context) (api.TwoFASetup, error) {
	var out api.TwoFASetup
	return out, c.do(ctx, http.MethodPost, "/api/settings/2fa/setup", struct{}{}, &out)
}

// ConfirmTwoFA calls POST /api/settings/2fa/confirm; the client keeps the
// session cookie it sets.
func (c *Client) ConfirmTwoFA(ctx context.Context, code string) error {
	return c.do(ctx, http.MethodPost, "/api/settings/2fa/confirm", api.TwoFACode{Code: code}, nil)
}

// VerifyTwoFA calls POST /api/settings/2fa/verify; the client keeps the
// session cookie it sets (see TwoFASession).
func (c *Client) VerifyTwoFA(ctx context.Context, code string) error {
	return c.do(ctx, http.MethodPost, "/api/settings/2fa/verify", api.TwoFACode{Code: code}, nil)
}

// DisableTwoFA calls POST /api/settings/2fa/disable.
func (c *Client) DisableTwoFA(ctx context.Context, code string) error {
	return c.do(ctx, http.MethodPost, "/api/settings/2fa/disable", api.TwoFACode{Code: code}, nil)
}

// Self calls GET /api/identity/self.
func (c *Client) Self(ctx context.Context) (api.Self, error) {
	var out api.Self
	return out, c.do(ctx, http.MethodGet, "/api/identity/self", nil, &out)
}

// DirectoryUsers calls GET /api/identity/users.
func (c *Client) DirectoryUsers(ctx context.Context) ([]api.User, error) {
	var out api.UserList
	return out.Users, c.do(ctx, http.MethodGet, "/api/identity/users", nil, &out)
}

// DirectoryUser calls GET /api/identity/users/:username.
func (c *Client) DirectoryUser(ctx context.Context, username string) (api.User, error) {
	var out api.UserLookup
	return out.User, c.do(ctx, http.MethodGet, "/api/identity/users/"+url.PathEscape(username), nil, &out)
}

// Groups calls GET /api/identity/groups.
func (c *Client) Groups(ctx context.Context) ([]string, error) {
	var out api.GroupList
	return out.Groups, c.do(ctx, http.MethodGet, "/api/identity/groups", nil, &out)
}

// Certs calls GET /api/certs.
func (c *Client) Certs(ctx context.Context) ([]api.Cert, error) {
	var out api.CertList
	return out.Certs, c.do(ctx, http.MethodGet, "/api/certs", nil, &out)
}

// RotateAdmin calls POST /api/certs/mtls/rotate. The certificate this
// client presents stops working: use the new P12 from the answer.
func (c *Client) RotateAdmin(ctx context.Context) (api.AdminRotation, error) {
	var out api.AdminRotation
	return out, c.do(ctx, http.MethodPost, "/api/certs/mtls/rotate", struct{}{}, &out)
}

// AdminP12 calls GET /api/certs/mtls/download.
func (c *Client) AdminP12(ctx context.Context) ([]byte, error) {
	data, _, err := c.send(ctx, http.MethodGet, "/api/certs/mtls/download", nil)
	return data, err
}

// AdminAuthMode calls GET /api/certs/admin/auth-mode.
func (c *Client) AdminAuthMode(ctx context.Context) (api.AdminAuthMode, error) {
	var out api.AdminAuthMode
	return out, c.do(ctx, http.MethodGet, "/api/certs/admin/auth-mode", nil, &out)
}

// CreateAgentCert calls POST /api/certs/agent (a P12 for the agent).
func (c *Client) CreateAgentCert(ctx context.Context, r api.NewAgentRequest) (api.AgentP12, error) {
	var out api.AgentP12
	return out, c.do(ctx, http.MethodPost, "/api/certs/agent", r, &out)
}

// ListAgents calls GET /api/certs/agent.
func (c *Client) ListAgents(ctx context.Context) ([]api.Agent, error) {
	var out api.AgentList
	return out.Agents, c.do(ctx, http.MethodGet, "/api/certs/agent", nil, &out)
}

// AgentP12 calls GET /api/certs/agent/:label/download.
func (c *Client) AgentP12(ctx context.Context, label string) ([]byte, error) {
	data, _, err := c.send(ctx, http.MethodGet, "/api/certs/agent/"+url.PathEscape(label)+"/download", nil)
	return data, err
}

// RevokeAgent calls DELETE /api/certs/agent/:label.
func (c *Client) RevokeAgent(ctx context.Context, label string) error {
	return c.do(ctx, http.MethodDelete, "/api/certs/agent/"+url.PathEscape(label), nil, nil)
}

// SetAgentCapabilities calls PATCH /api/certs/agent/:label/capabilities
// and returns the stored list.
func (c *Client) SetAgentCapabilities(ctx context.Context, label string, caps []api.Capability) ([]api.Capability, error) {
	var out api.CapabilitiesResponse
	err := c.do(ctx, http.MethodPatch, "/api/certs/agent/"+url.PathEscape(label)+"/capabilities", api.CapabilitiesRequest{Capabilities: caps}, &out)
	return out.Capabilities, err
}

// SetAgentAllowedSites calls PATCH /api/certs/agent/:label/allowed-sites
// and returns the stored list.
func (c *Client) SetAgentAllowedSites(ctx context.Context, label string, sites []string) ([]string, error) {
	var out api.AllowedSitesResponse
	err := c.do(ctx, http.MethodPatch, "/api/certs/agent/"+url.PathEscape(label)+"/allowed-sites", api.AllowedSitesRequest{AllowedSites: sites}, &out)
	return out.AllowedSites, err
}

// UpgradeCert calls POST /api/certs/agent/upgrade-cert (re-key).
func (c *Client) UpgradeCert(ctx context.Context, csrPEM []byte) (api.Rekeyed, error) {
	var out api.Rekeyed
	return out, c.do(ctx, http.MethodPost, "/api/certs/agent/upgrade-cert", api.CSRRequest{CSR: string(csrPEM)}, &out)
}

// CreateEnrollmentToken calls POST /api/certs/agent/enroll.
func (c *Client) CreateEnrollmentToken(ctx context.Context, r api.NewAgentRequest) (api.EnrollmentToken, error) {
	var out api.EnrollmentToken
	return out, c.do(ctx, http.MethodPost, "/api/certs/agent/enroll", r, &out)
}

// RevokeEnrollmentToken calls DELETE /api/certs/agent/enroll/:label; it
// reports whether a pending token was removed.
func (c *Client) RevokeEnrollmentToken(ctx context.Context, label string) (bool, error) {
	var out api.TokenRevoked
	err := c.do(ctx, http.MethodDelete, "/api/certs/agent/enroll/"+url.PathEscape(label), nil, &out)
	return out.Revoked, err
}

// Enroll calls the public POST /api/enroll with a one-time token and a CSR.
// An answer without the certificate, CA or label is an error.
func (c *Client) Enroll(ctx context.Context, token string, csrPEM []byte) (api.Enrolled, error) {
	var out api.Enrolled
	if err := c.do(ctx, http.MethodPost, "/api/enroll", api.EnrollRequest{Token: token, CSR: string(csrPEM)}, &out); err != nil {
		return api.Enrolled{}, err
	}
	if !out.OK || out.Cert == "" || out.CACert == "" || out.Label == "" {
		return api.Enrolled{}, fmt.Errorf("enroll: the relay's answer lacks the certificate, CA or label")
	}
	return out, nil
}

// RevokeSelf calls POST /api/certs/agent/revoke-self: the calling agent's
// certificate is revoked (its next request is refused).
func (c *Client) RevokeSelf(ctx context.Context) (api.AgentRevoked, error) {
	var out api.AgentRevoked
	return out, c.do(ctx, http.MethodPost, "/api/certs/agent/revoke-self", struct{}{}, &out)
}
