package panel

import (
	"errors"
	"net/http"
	"strings"

	"github.com/portlama/portlama/internal/agents"
	"github.com/portlama/portlama/internal/pki"
)

// checkCSRText is the schema rule of the enrollment CSR: PEM text
// containing a CERTIFICATE REQUEST block. The full check (§11.4 step 2)
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

// enrollError maps Manager.Enroll errors (contract §11.4): 4xx as listed,
// any server-side failure (logged) 500 Enrollment failed without details.
func enrollError(c *Ctx, err error) error {
	var le *agents.LabelError
	var csr *pki.CSRError
	switch {
	case errors.Is(err, agents.ErrInvalidToken), errors.Is(err, agents.ErrTokenUsed), errors.Is(err, agents.ErrTokenExpired):
		return NewError(http.StatusUnauthorized, err.Error())
	case errors.As(err, &csr):
		return NewError(http.StatusBadRequest, "Invalid CSR").WithDetails(csr.Reason)
	case errors.As(err, &le) && errors.Is(err, agents.ErrExists):
		return NewError(http.StatusConflict, le.Error())
	}
	c.Log.Error("enrollment failed", "err", err)
	return NewError(http.StatusInternalServerError, "Enrollment failed")
}

// registerEnroll: public POST /api/enroll (contract §11.4). nginx rate
// limits it; the panel's own limit applies as for every route.
func (s *Server) registerEnroll() {
	d := &s.cfg.Relay
	s.Handle(Route{
		Method: http.MethodPost, Path: "/api/enroll",
		Access: Public, Gate: GateNone,
		Body: enrollSchema,
		Handler: func(c *Ctx) error {
			var b struct {
				Token string `json:"token"`
				CSR   string `json:"csr"`
			}
			if err := c.Decode(&b); err != nil {
				return err
			}
			if d.Agents == nil {
				return errNotWired
			}
			enr, err := d.Agents.Enroll(c.R.Context(), b.Token, b.CSR)
			if err != nil {
				return enrollError(c, err)
			}
			return c.OK(map[string]any{
				"ok": true, "cert": string(enr.CertPEM), "caCert": string(enr.CACertPEM),
				"label": enr.Label, "serial": enr.Serial, "expiresAt": timestamp(enr.ExpiresAt),
			})
		},
	})
}
