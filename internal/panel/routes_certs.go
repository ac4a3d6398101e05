package panel

import (
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io/fs"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/portlama/portlama/internal/acme"
	"github.com/portlama/portlama/internal/agent"
	"github.com/portlama/portlama/internal/agents"
	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/pki"
	"github.com/portlama/portlama/internal/system"
	"github.com/portlama/portlama/internal/validate"
)

// rotateWarning is the warning of POST /api/certs/mtls/rotate (docs/api.md, "Certificates, agents, enrollment").
const rotateWarning = "Your current browser certificate is now invalid. Download and import the new certificate before closing this page."

// expiringSoonDays: a certificate with at most this many days left is
// "expiringSoon".
const expiringSoonDays = 30

// checkCapability is the schema check of one capability (docs/api.md, "Roles, capabilities, pipeline"); its
// message `Invalid capability: <c>` is part of the API (docs/api.md, "Validation semantics").
func checkCapability(c string) error {
	if !api.IsCapability(c) {
		return errors.New("Invalid capability: " + c)
	}
	return nil
}

// Agent certificate body schemas (docs/api.md, "Certificates, agents, enrollment").
var (
	capabilitiesSchema = Array(String().Check(checkCapability))
	allowedSitesSchema = Array(String().Min(1).Max(100).Pattern(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`))
	agentLabelParams   = map[string]func(string) error{"label": validate.AgentLabelParam}

	newAgentSchema = Object(
		Required("label", String().Check(validate.AgentLabel)),
		Optional("capabilities", capabilitiesSchema),
		Optional("allowedSites", allowedSitesSchema),
	)
	csrSchema = Object(Required("csr", String().Min(1)))
)

// decodeNewAgent decodes and checks a new-agent body; capabilities default
// to ["tunnels:read"] and must contain tunnels:read.
func decodeNewAgent(c *Ctx) (label string, caps, sites []string, err error) {
	var b api.NewAgentRequest
	if err := c.Decode(&b); err != nil {
		return "", nil, nil, err
	}
	caps = []string{api.CapTunnelsRead}
	if b.Capabilities != nil {
		caps = *b.Capabilities
		if !slices.Contains(caps, api.CapTunnelsRead) {
			return "", nil, nil, ValidationError(Issue{Path: []any{"capabilities"}, Message: "Must contain tunnels:read"})
		}
	}
	sites = b.AllowedSites
	if sites == nil {
		sites = []string{}
	}
	return b.Label, caps, sites, nil
}

// agentError answers a refused CSR with 400 Invalid CSR and the reason as
// details (docs/api.md, "Certificates, agents, enrollment" and "Enrollment") and replaces the message of an
// unanticipated failure with the route's failMsg ("" keeps 500 Internal
// server error). The status of every other domain error comes from its
// kind (statusOf).
func agentError(err error, failMsg string) error {
	var csr *pki.CSRError
	switch {
	case errors.As(err, &csr):
		return NewError(http.StatusBadRequest, "Invalid CSR").WithDetails(csr.Reason)
	case statusOf(err) != 0:
		return err
	case failMsg != "":
		return Failed(failMsg, err)
	}
	return err
}

// optTime is t in the API's format, or nil for the zero time.
func optTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	v := api.FormatTime(t)
	return &v
}

func (s *Server) certEntry(typ string, domain *string, notAfter time.Time, path string) api.Cert {
	days := int(math.Floor(notAfter.Sub(s.now()).Hours() / 24))
	return api.Cert{
		Type: typ, Domain: domain, ExpiresAt: api.FormatTime(notAfter), DaysUntilExpiry: days,
		Path: path, ExpiringSoon: days <= expiringSoonDays,
	}
}

// agentView is an entry of GET /api/certs/agent.
func agentView(e agents.Entry, now time.Time) api.Agent {
	return api.Agent{
		Label: e.Label, Serial: e.Serial, Capabilities: e.Capabilities, AllowedSites: e.AllowedSites,
		EnrollmentMethod: e.EnrollmentMethod, CreatedAt: e.CreatedAt, ExpiresAt: e.ExpiresAt,
		Revoked: e.Revoked, RevokedAt: e.RevokedAt, ExpiringSoon: e.ExpiringSoon(now),
	}
}

// ipCertFingerprint is the fingerprint of the panel-IP vhost's self-signed
// certificate, which an agent enrolling by IP pins; "" when it cannot be
// read (the answer is still useful without it).
func (s *Server) ipCertFingerprint(c *Ctx) string {
	data, err := os.ReadFile(filepath.Join(s.cfg.Layout.PKIDir(), pki.SelfSignedCertFile))
	if err != nil {
		c.Log.Warn("read the panel IP certificate", "err", err)
		return ""
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "CERTIFICATE" {
		c.Log.Warn("the panel IP certificate is not PEM")
		return ""
	}
	return agent.Fingerprint(b.Bytes)
}

// registerCerts: the certificate and agent certificate routes of
// docs/api.md, "Certificates, agents, enrollment".
func (s *Server) registerCerts() {
	d := &s.cfg.Relay

	s.Handle(Route{
		Method: http.MethodGet, Path: "/api/certs",
		Access: AdminOnly, Gate: GateManagement,
		Handler: func(c *Ctx) error {
			certs := []api.Cert{}
			if d.Certs != nil {
				names, err := d.Certs.Names()
				if err != nil {
					c.Log.Warn("list certificate store", "err", err)
				}
				for _, name := range names {
					na, err := d.Certs.NotAfter(name)
					if err != nil {
						c.Log.Warn("read certificate", "name", name, "err", err)
						continue
					}
					certs = append(certs, s.certEntry(api.CertLetsEncrypt, &name, na, d.Certs.Paths(name).Cert))
				}
			}
			if d.PKI != nil {
				if ca := d.PKI.CACert(); ca != nil {
					certs = append(certs, s.certEntry(api.CertMTLSCA, nil, ca.NotAfter, d.PKI.Path(pki.CACertFile)))
				}
				if admin, err := d.PKI.AdminCert(); err != nil {
					c.Log.Warn("read admin certificate", "err", err)
				} else {
					certs = append(certs, s.certEntry(api.CertMTLSClient, nil, admin.NotAfter, d.PKI.Path(pki.ClientCertFile)))
				}
			}
			slices.SortStableFunc(certs, func(a, b api.Cert) int { return a.DaysUntilExpiry - b.DaysUntilExpiry })
			return c.OK(api.CertList{Certs: certs})
		},
	})

	s.Handle(Route{
		Method: http.MethodGet, Path: "/api/certs/auto-renew-status",
		Access: AdminOnly, Gate: GateManagement,
		Handler: func(c *Ctx) error {
			ts, err := d.Timers.TimerStatus(c.R.Context(), system.UnitRenewTimer)
			if err != nil {
				c.Log.Warn("renewal timer status", "err", err)
			}
			return c.OK(api.AutoRenewStatus{Active: ts.Active, NextRun: optTime(ts.NextRun), LastRun: optTime(ts.LastRun)})
		},
	})

	renew := func(c *Ctx, name string) error {
		if err := validate.CertName(name); err != nil {
			return ValidationError(Issue{Path: []any{"domain"}, Message: err.Error()})
		}
		na, reloadErr, err := d.RenewCert(c.R.Context(), name)
		switch {
		case errors.Is(err, acme.ErrNoCertificate):
			return NewError(http.StatusNotFound, "Certificate not found")
		case err != nil:
			return Failed("Certificate renewal failed", err)
		}
		res := api.CertRenewed{OK: true, Domain: name, NewExpiry: optTime(na)}
		if reloadErr != nil {
			c.Log.Error("nginx reload after certificate renewal", "name", name, "err", reloadErr)
			res.Warning = "The certificate was renewed but nginx could not be reloaded: " + reloadErr.Error()
		}
		return c.OK(res)
	}
	// POST /api/certs/{domain}/renew would conflict with
	// /api/certs/agent/{label} (both match /api/certs/agent/renew, and
	// net/http panics on such a pair). It is registered as
	// /api/certs/{domain}/{action}, which every literal /api/certs/x/y
	// route and /api/certs/agent/{label} are more specific than; any
	// action but renew is 404. The literal /api/certs/agent/renew serves
	// both meanings of that one path: POST renews the certificate "agent"
	// (not a certificate name: 400), DELETE revokes the agent "renew".
	s.Handle(Route{
		Method: http.MethodPost, Path: "/api/certs/{domain}/{action}",
		Access: AdminOnly, Gate: GateManagement,
		Handler: func(c *Ctx) error {
			if c.Param("action") != "renew" {
				return errNotFound
			}
			return renew(c, c.Param("domain"))
		},
	})
	s.Handle(Route{
		Method: http.MethodPost, Path: "/api/certs/agent/renew",
		Access: AdminOnly, Gate: GateManagement,
		Handler: func(c *Ctx) error { return renew(c, "agent") },
	})

	s.Handle(Route{
		Method: http.MethodPost, Path: "/api/certs/mtls/rotate",
		Access: AdminOnly, Gate: GateManagement,
		Handler: func(c *Ctx) error {
			rot, err := d.PKI.RotateAdmin(c.R.Context(), pki.LabelAdminRotated)
			if err != nil {
				return Failed("Failed to rotate mTLS certificate", err)
			}
			warning := rotateWarning
			if rot.ReloadErr != nil {
				c.Log.Error("nginx reload after admin rotation", "err", rot.ReloadErr)
				warning += " nginx could not be reloaded, so it may still accept the previous certificate until its next reload."
			}
			return c.OK(api.AdminRotation{
				OK:          true,
				P12Password: rot.Password,
				P12:         base64.StdEncoding.EncodeToString(rot.P12),
				ExpiresAt:   api.FormatTime(rot.ExpiresAt),
				Warning:     warning,
			})
		},
	})

	s.Handle(Route{
		Method: http.MethodGet, Path: "/api/certs/mtls/download",
		Access: AdminOnly, Gate: GateManagement,
		Handler: func(c *Ctx) error {
			data, err := os.ReadFile(d.PKI.Path(pki.ClientP12File))
			if errors.Is(err, fs.ErrNotExist) {
				return NewError(http.StatusNotFound, "No client certificate found")
			}
			if err != nil {
				return err
			}
			return sendP12(c, "client.p12", data)
		},
	})

	s.Handle(Route{
		Method: http.MethodGet, Path: "/api/certs/admin/auth-mode",
		Access: AdminOnly, Gate: GateManagement,
		Handler: func(c *Ctx) error {
			return c.OK(api.AdminAuthMode{AdminAuthMode: "p12"})
		},
	})

	s.registerAgentCerts()
}

// sendP12 answers with a PKCS#12 bundle as an attachment.
func sendP12(c *Ctx, filename string, data []byte) error {
	h := c.W.Header()
	h.Set("Content-Type", "application/x-pkcs12")
	h.Set("Content-Disposition", `attachment; filename="`+filename+`"`)
	h.Set("Content-Length", strconv.Itoa(len(data)))
	h.Set("Cache-Control", "no-store")
	c.W.WriteHeader(http.StatusOK)
	if _, err := c.W.Write(data); err != nil {
		c.Log.Debug("write P12", "err", err)
	}
	return nil
}

// registerAgentCerts: /api/certs/agent... (docs/api.md, "Certificates, agents, enrollment").
//
// net/http patterns cannot hold both /api/certs/agent/enroll/{label} and
// /api/certs/agent/{label}/download (a path like .../enroll/download matches
// both), so token revocation is served by /api/certs/agent/{group}/{label}
// plus the literal patterns it would collide with; likewise revoking the
// agents called "enroll" and "upgrade-cert".
func (s *Server) registerAgentCerts() {
	d := &s.cfg.Relay

	s.Handle(Route{
		Method: http.MethodPost, Path: "/api/certs/agent",
		Access: AdminOnly, Gate: GateManagement,
		Body: newAgentSchema,
		Handler: func(c *Ctx) error {
			label, caps, sites, err := decodeNewAgent(c)
			if err != nil {
				return err
			}
			iss, err := d.Agents.IssueP12(c.R.Context(), label, caps, sites)
			if err != nil {
				return agentError(err, "Failed to create agent certificate")
			}
			return c.OK(api.AgentP12{
				OK: true, Label: iss.Label, P12Password: iss.Password,
				Serial: iss.Serial, ExpiresAt: api.FormatTime(iss.ExpiresAt),
			})
		},
	})

	s.Handle(Route{
		Method: http.MethodGet, Path: "/api/certs/agent",
		Access: AdminOnly, Gate: GateManagement,
		Handler: func(c *Ctx) error {
			entries, err := d.Agents.List()
			if err != nil {
				return Failed("Failed to list agent certificates", err)
			}
			now := s.now()
			out := make([]api.Agent, 0, len(entries))
			for _, e := range entries {
				out = append(out, agentView(e, now))
			}
			if by, ok := s.presence(c.R.Context()); ok {
				withAgentPresence(out, by)
			}
			return c.OK(api.AgentList{Agents: out})
		},
	})

	s.Handle(Route{
		Method: http.MethodGet, Path: "/api/certs/agent/{label}/download",
		Access: AdminOnly, Gate: GateManagement,
		Params: agentLabelParams,
		Handler: func(c *Ctx) error {
			label := c.Param("label")
			data, err := d.Agents.AgentP12(label)
			if err != nil {
				return agentError(err, "")
			}
			return sendP12(c, label+".p12", data)
		},
	})

	revokeAgent := func(c *Ctx, label string) error {
		rev, err := d.Agents.Revoke(c.R.Context(), label)
		if err != nil {
			return agentError(err, "Failed to revoke agent certificate")
		}
		if rev.ReloadErr != nil {
			c.Log.Error("nginx reload after agent revocation", "label", label, "err", rev.ReloadErr)
		}
		return c.OK(api.AgentRevoked{OK: true, Label: label, Warning: rev.Warning})
	}
	s.Handle(Route{
		Method: http.MethodDelete, Path: "/api/certs/agent/{label}",
		Access: AdminOnly, Gate: GateManagement,
		Params:  agentLabelParams,
		Handler: func(c *Ctx) error { return revokeAgent(c, c.Param("label")) },
	})

	// PATCH …/capabilities and …/allowed-sites: one list replaced as a
	// whole; the answer echoes the stored list.
	s.Handle(Route{
		Method: http.MethodPatch, Path: "/api/certs/agent/{label}/capabilities",
		Access: AdminOnly, Gate: GateManagement,
		Params: agentLabelParams,
		Body:   Object(Required("capabilities", capabilitiesSchema)),
		Handler: func(c *Ctx) error {
			var b api.CapabilitiesRequest
			if err := c.Decode(&b); err != nil {
				return err
			}
			label := c.Param("label")
			list, err := d.Agents.UpdateCapabilities(label, b.Capabilities)
			if err != nil {
				return agentError(err, "Failed to update capabilities")
			}
			return c.OK(api.CapabilitiesResponse{OK: true, Label: label, Capabilities: list})
		},
	})
	s.Handle(Route{
		Method: http.MethodPatch, Path: "/api/certs/agent/{label}/allowed-sites",
		Access: AdminOnly, Gate: GateManagement,
		Params: agentLabelParams,
		Body:   Object(Required("allowedSites", allowedSitesSchema)),
		Handler: func(c *Ctx) error {
			var b api.AllowedSitesRequest
			if err := c.Decode(&b); err != nil {
				return err
			}
			label := c.Param("label")
			list, err := d.Agents.UpdateAllowedSites(label, b.AllowedSites)
			if err != nil {
				return agentError(err, "Failed to update allowed sites")
			}
			return c.OK(api.AllowedSitesResponse{OK: true, Label: label, AllowedSites: list})
		},
	})

	s.Handle(Route{
		Method: http.MethodPost, Path: "/api/certs/agent/upgrade-cert", Reconfigures: true,
		Access: AdminOrAgent, Gate: GateManagement,
		Body: csrSchema,
		Handler: func(c *Ctx) error {
			if c.Identity.IsAdmin() {
				return errAgentLabelRequired(http.StatusForbidden)
			}
			var b api.CSRRequest
			if err := c.Decode(&b); err != nil {
				return err
			}
			enr, err := d.Agents.Rekey(c.R.Context(), c.Identity.Label, b.CSR)
			if err != nil {
				return agentError(err, "Failed to upgrade agent certificate")
			}
			if enr.ReloadErr != nil {
				c.Log.Error("nginx reload after agent re-key", "label", enr.Label, "err", enr.ReloadErr)
			}
			return c.OK(api.Rekeyed{
				OK: true, Cert: string(enr.CertPEM), CACert: string(enr.CACertPEM),
				Serial: enr.Serial, ExpiresAt: api.FormatTime(enr.ExpiresAt),
			})
		},
	})

	// An agent revokes its own certificate (the home app's "remove
	// server"): agent certificates only, and only the caller's own label,
	// so nothing in the request names what is revoked.
	s.Handle(Route{
		Method: http.MethodPost, Path: "/api/certs/agent/revoke-self",
		Access: AgentOnly, Gate: GateManagement,
		Handler: func(c *Ctx) error { return revokeAgent(c, c.Identity.Label) },
	})

	s.Handle(Route{
		Method: http.MethodPost, Path: "/api/certs/agent/enroll",
		Access: AdminOnly, Gate: GateManagement,
		Body: newAgentSchema,
		Handler: func(c *Ctx) error {
			label, caps, sites, err := decodeNewAgent(c)
			if err != nil {
				return err
			}
			tok, err := d.Agents.CreateToken(label, caps, sites)
			if err != nil {
				return agentError(err, "Failed to create enrollment token")
			}
			return c.OK(api.EnrollmentToken{OK: true, Token: tok.Token, Label: tok.Label, ExpiresAt: tok.ExpiresAt,
				PanelFingerprint: s.ipCertFingerprint(c)})
		},
	})

	// DELETE /api/certs/agent/enroll/{label}.
	revokeToken := func(c *Ctx, group, label string) error {
		if group != "enroll" {
			return errNotFound
		}
		if err := validate.AgentLabelParam(label); err != nil {
			return ValidationError(Issue{Path: []any{"label"}, Message: err.Error()})
		}
		revoked, err := d.Agents.RevokeToken(label)
		if err != nil {
			return Failed("Failed to revoke enrollment token", err)
		}
		return c.OK(api.TokenRevoked{OK: true, Revoked: revoked})
	}
	s.Handle(Route{
		Method: http.MethodDelete, Path: "/api/certs/agent/{group}/{label}",
		Access: AdminOnly, Gate: GateManagement,
		Handler: func(c *Ctx) error { return revokeToken(c, c.Param("group"), c.Param("label")) },
	})
	for _, suffix := range []string{"download", "capabilities", "allowed-sites"} {
		s.Handle(Route{
			Method: http.MethodDelete, Path: "/api/certs/agent/{label}/" + suffix,
			Access: AdminOnly, Gate: GateManagement,
			Handler: func(c *Ctx) error { return revokeToken(c, c.Param("label"), suffix) },
		})
	}
	for _, label := range []string{"enroll", "upgrade-cert", "renew"} {
		s.Handle(Route{
			Method: http.MethodDelete, Path: "/api/certs/agent/" + label,
			Access: AdminOnly, Gate: GateManagement,
			Handler: func(c *Ctx) error { return revokeAgent(c, label) },
		})
	}
}
