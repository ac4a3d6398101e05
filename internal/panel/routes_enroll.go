package panel

import (
	"errors"
	"net/http"
	"strings"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/pki"
)

// checkCSRText is the schema rule of the enrollment CSR: PEM text
// containing a CERTIFICATE REQUEST block. The full check (docs/api.md, "Enrollment" step 2)
// runs after the token lookup and answers 400 Invalid CSR.
func checkCSRText(s string) error {
	if !strings.Contains(s, "BEGIN CERTIFICATE REQUEST") {
		return errors.New("csr must be a PEM certificate signing request (BEGIN CERTIFICATE REQUEST)")
	}
	return nil
}

var enrollSchema = Object(
	Required("token", String().Min(1)),
	Required("csr", String().Check(checkCSRText)),
)

// enrollError maps Manager.Enroll errors (docs/api.md, "Enrollment"): 4xx as listed,
// any server-side failure (logged) 500 Enrollment failed without details.
func enrollError(c *Ctx, err error) error {
	if status := statusOf(err); status != 0 && status < 500 {
		return agentError(err, "")
	}
	var csr *pki.CSRError
	if errors.As(err, &csr) {
		return agentError(err, "")
	}
	c.Log.Error("enrollment failed", "err", err)
	return NewError(http.StatusInternalServerError, "Enrollment failed")
}

// registerEnroll: public POST /api/enroll (docs/api.md, "Enrollment"). nginx rate
// limits it; the panel's own limit applies as for every route.
func (s *Server) registerEnroll() {
	d := &s.cfg.Relay
	s.Handle(Route{
		Method: http.MethodPost, Path: "/api/enroll",
		Access: Public, Gate: GateNone,
		Body: enrollSchema,
		Handler: func(c *Ctx) error {
			var b api.EnrollRequest
			if err := c.Decode(&b); err != nil {
				return err
			}
			enr, err := d.Agents.Enroll(c.R.Context(), b.Token, b.CSR)
			if err != nil {
				return enrollError(c, err)
			}
			return c.OK(api.Enrolled{
				OK: true, Cert: string(enr.CertPEM), CACert: string(enr.CACertPEM),
				Label: enr.Label, Serial: enr.Serial, ExpiresAt: api.FormatTime(enr.ExpiresAt),
			})
		},
	})
}
