package agents

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/portlama/portlama/internal/manage"
	"github.com/portlama/portlama/internal/pki"
	"github.com/portlama/portlama/internal/store"
)

// IssuedP12 is the outcome of IssueP12.
type IssuedP12 struct {
	Label     string
	Serial    string
	Password  string // the P12 password (32 hex characters); not stored
	P12       []byte // also written to pki/agents/<label>/client.p12
	ExpiresAt time.Time
}

// Enrollment is the outcome of Enroll and Rekey.
type Enrollment struct {
	Label     string
	CertPEM   []byte
	CACertPEM []byte
	Serial    string
	ExpiresAt time.Time
	// ReloadErr (Rekey only) is set when the previous serial was revoked
	// but nginx could not be tested or reloaded.
	ReloadErr error
}

// Revocation is the outcome of Revoke.
type Revocation struct {
	Label  string
	Serial string
	// ReloadErr is set when the revocation is complete but nginx could not
	// be tested or reloaded (the panel still refuses the certificate).
	ReloadErr error
	// Warning is set when the revocation is saved but the tunnel server
	// did not confirm that the agent's sessions and ports are closed.
	Warning string
}

// IssueP12 creates an agent with a relay-generated key (docs/api.md, "Certificates, agents, enrollment"
// "Agent P12"): key, certificate and P12 in pki/agents/<label>/, a registry
// entry with enrollmentMethod "p12", and tunnel credentials. Errors:
// *LabelError (ErrInvalidLabel, ErrExists), *CapabilityError. On failure
// nothing is kept.
func (m *Manager) IssueP12(ctx context.Context, label string, caps, sites []string) (*IssuedP12, error) {
	if !ValidLabel(label) {
		return nil, labelErr(label, ErrInvalidLabel)
	}
	norm, err := NormalizeCapabilities(caps)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()

	r, err := m.loadRegistry()
	if err != nil {
		return nil, err
	}
	if r.active(label) >= 0 {
		return nil, labelErr(label, ErrExists)
	}
	cred, err := m.pki.IssueClient(pki.AgentCN(label))
	if err != nil {
		return nil, wrap("issue agent certificate", err)
	}
	password, err := pki.NewHexPassword()
	if err != nil {
		return nil, err
	}
	p12, err := m.pki.EncodeP12(cred, password)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	dir := m.agentDir(label)
	if err := writeAgentFiles(dir, cred, p12); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	entry := Entry{
		Label:            label,
		Serial:           cred.Serial,
		Capabilities:     norm,
		AllowedSites:     cloneSites(sites),
		EnrollmentMethod: MethodP12,
		CreatedAt:        m.timestamp(),
		ExpiresAt:        pki.Timestamp(cred.NotAfter),
	}
	if err := m.addAgent(ctx, entry); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	m.log.Info("agent certificate issued", "label", label, "serial", cred.Serial, "method", MethodP12)
	return &IssuedP12{Label: label, Serial: cred.Serial, Password: password, P12: p12, ExpiresAt: cred.NotAfter}, nil
}

func writeAgentFiles(dir string, cred *pki.Credential, p12 []byte) error {
	// Leftovers of an earlier agent with this label are replaced.
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("clear agent directory: %w", err)
	}
	if err := os.MkdirAll(dir, pki.DirMode); err != nil {
		return fmt.Errorf("create agent directory: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{pki.ClientKeyFile, cred.KeyPEM, pki.KeyMode},
		{pki.ClientCertFile, cred.CertPEM, pki.CertMode},
		{pki.ClientP12File, p12, pki.KeyMode},
	} {
		if err := store.WriteFileAtomic(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return fmt.Errorf("write agent %s: %w", f.name, err)
		}
	}
	return nil
}

// addAgent creates tunnel credentials and appends entry to the registry;
// if the registry write fails the credentials are removed again.
func (m *Manager) addAgent(ctx context.Context, entry Entry) error {
	if err := m.tunnels.AddAgent(ctx, entry.Label); err != nil {
		return fmt.Errorf("create tunnel credentials: %w", err)
	}
	if _, err := m.registry.Update(func(r *Registry) error {
		if r.active(entry.Label) >= 0 {
			return labelErr(entry.Label, ErrExists)
		}
		r.Agents = append(r.Agents, entry)
		return nil
	}); err != nil {
		m.removeTunnelCredentials(ctx, entry.Label)
		return wrap("save agents registry", err)
	}
	return nil
}

func (m *Manager) removeTunnelCredentials(ctx context.Context, label string) {
	// Rollback must run even when the request's context is gone.
	if err := m.tunnels.RemoveAgent(context.WithoutCancel(ctx), label); err != nil {
		m.log.Error("remove tunnel credentials", "label", label, "err", err)
	}
}

// Enroll redeems an enrollment token with a CSR (docs/api.md, "Enrollment"). Errors,
// in the order checked: ErrInvalidToken, ErrTokenUsed, ErrTokenExpired;
// *pki.CSRError (the token stays usable); *LabelError ErrExists (the token
// stays usable). Then, all or nothing: the certificate is signed
// (`CN=agent:<label>, O=Portlama`, CSR subject ignored), tunnel credentials
// created, the registry entry appended (enrollmentMethod "hardware-bound",
// the token's capabilities and sites) and finally the token marked used.
func (m *Manager) Enroll(ctx context.Context, token, csrPEM string) (*Enrollment, error) {
	m.mu.Lock()
	defer m.mu.Unlock()

	tok, err := m.claimToken(token)
	if err != nil {
		return nil, err
	}
	csr, err := pki.ParseCSR(csrPEM)
	if err != nil {
		return nil, err
	}
	r, err := m.loadRegistry()
	if err != nil {
		return nil, err
	}
	if r.active(tok.Label) >= 0 {
		return nil, labelErr(tok.Label, ErrExists)
	}
	iss, err := m.pki.SignCSR(csr, pki.AgentCN(tok.Label))
	if err != nil {
		return nil, wrap("sign agent certificate", err)
	}
	entry := Entry{
		Label:            tok.Label,
		Serial:           iss.Serial,
		Capabilities:     filterCapabilities(tok.Capabilities),
		AllowedSites:     cloneSites(tok.AllowedSites),
		EnrollmentMethod: MethodHardwareBound,
		CreatedAt:        m.timestamp(),
		ExpiresAt:        pki.Timestamp(iss.NotAfter),
	}
	if err := m.addAgent(ctx, entry); err != nil {
		return nil, err
	}
	if err := m.markTokenUsed(token); err != nil {
		m.removeEntry(entry.Label, entry.Serial)
		m.removeTunnelCredentials(ctx, entry.Label)
		// The certificate exists and chains to the CA: revoke it, or it
		// would stay valid at nginx with no registry entry.
		if rerr := m.pki.Revoke(iss.Serial, pki.AgentCN(entry.Label)+" (enrollment rolled back)"); rerr != nil {
			m.log.Error("revoke certificate of a rolled-back enrollment", "label", entry.Label, "serial", iss.Serial, "err", rerr)
		}
		return nil, wrap("mark enrollment token used", err)
	}
	// An agent enrolled with a CSR has no P12 on disk; drop leftovers of an
	// earlier agent with the same label.
	if err := os.RemoveAll(m.agentDir(entry.Label)); err != nil {
		m.log.Warn("remove stale agent directory", "label", entry.Label, "err", err)
	}
	m.log.Info("agent enrolled", "label", entry.Label, "serial", iss.Serial)
	return &Enrollment{
		Label:     entry.Label,
		CertPEM:   iss.CertPEM,
		CACertPEM: m.pki.CACertPEM(),
		Serial:    iss.Serial,
		ExpiresAt: iss.NotAfter,
	}, nil
}

// removeEntry deletes the registry entry with label and serial (rollback).
func (m *Manager) removeEntry(label, serial string) {
	if _, err := m.registry.Update(func(r *Registry) error {
		kept := r.Agents[:0]
		for _, e := range r.Agents {
			if e.Label == label && pki.SerialsEqual(e.Serial, serial) {
				continue
			}
			kept = append(kept, e)
		}
		r.Agents = kept
		return nil
	}); err != nil {
		m.log.Error("remove registry entry during rollback", "label", label, "err", err)
	}
}

// Revoke revokes the non-revoked agent label (docs/api.md, "Certificates, agents, enrollment"): its serial is
// added to the revocation list (label `agent:<label>`) and the CRL
// regenerated, its tunnel credentials are removed, the registry entry is
// marked revoked, pki/agents/<label>/ is deleted, and nginx is reloaded.
// Its tunnels are disabled and its sessions closed before Revoke returns
// (TunnelCredentials.RevokeAgent).
// Unknown label: *LabelError (ErrNotFound). A failure part-way can be
// retried: the entry is marked revoked only after the revocation and the
// credential removal succeeded.
func (m *Manager) Revoke(ctx context.Context, label string) (*Revocation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()

	r, err := m.loadRegistry()
	if err != nil {
		return nil, err
	}
	i := r.active(label)
	if i < 0 {
		return nil, labelErr(label, ErrNotFound)
	}
	serial := r.Agents[i].Serial
	if err := m.pki.Revoke(serial, pki.AgentCN(label)); err != nil {
		return nil, err
	}
	warning, err := manage.Warning(m.tunnels.RevokeAgent(ctx, label))
	if err != nil {
		return nil, fmt.Errorf("end tunnel access of %s: %w", label, err)
	}
	if _, err := m.registry.Update(func(r *Registry) error {
		for i := range r.Agents {
			if r.Agents[i].Label == label && !r.Agents[i].Revoked && pki.SerialsEqual(r.Agents[i].Serial, serial) {
				r.Agents[i].Revoked = true
				r.Agents[i].RevokedAt = m.timestamp()
			}
		}
		return nil
	}); err != nil {
		return nil, wrap("mark agent revoked", err)
	}
	if ValidLabel(label) {
		if err := os.RemoveAll(m.agentDir(label)); err != nil {
			m.log.Warn("remove agent directory", "label", label, "err", err)
		}
	}
	m.log.Info("agent revoked", "label", label, "serial", serial)
	return &Revocation{Label: label, Serial: serial, ReloadErr: m.pki.Reload(ctx), Warning: warning}, nil
}

// Rekey issues a new certificate for the non-revoked agent label from a CSR
// (upgrade-cert, docs/api.md, "Certificates, agents, enrollment"): subject forced to `CN=agent:<label>,
// O=Portlama`, the entry keeps capabilities, sites and tunnel credentials and
// becomes "hardware-bound"; the previous serial is revoked (label
// `agent:<label> (re-keyed)`), the CRL regenerated and nginx reloaded; a P12
// left in pki/agents/<label>/ is deleted. Errors: *LabelError (ErrNotFound),
// *pki.CSRError. If the revocation fails the registry is restored.
func (m *Manager) Rekey(ctx context.Context, label, csrPEM string) (*Enrollment, error) {
	m.mu.Lock()
	defer m.mu.Unlock()

	r, err := m.loadRegistry()
	if err != nil {
		return nil, err
	}
	i := r.active(label)
	if i < 0 {
		return nil, labelErr(label, ErrNotFound)
	}
	old := r.Agents[i]
	csr, err := pki.ParseCSR(csrPEM)
	if err != nil {
		return nil, err
	}
	iss, err := m.pki.SignCSR(csr, pki.AgentCN(label))
	if err != nil {
		return nil, wrap("sign agent certificate", err)
	}
	replace := func(from, to Entry) error {
		_, err := m.registry.Update(func(r *Registry) error {
			i := r.active(label)
			if i < 0 || !pki.SerialsEqual(r.Agents[i].Serial, from.Serial) {
				return labelErr(label, ErrNotFound)
			}
			r.Agents[i].Serial = to.Serial
			r.Agents[i].ExpiresAt = to.ExpiresAt
			r.Agents[i].EnrollmentMethod = to.EnrollmentMethod
			return nil
		})
		return err
	}
	updated := old
	updated.Serial = iss.Serial
	updated.ExpiresAt = pki.Timestamp(iss.NotAfter)
	updated.EnrollmentMethod = MethodHardwareBound
	if err := replace(old, updated); err != nil {
		return nil, wrap("update agents registry", err)
	}
	if err := m.pki.Revoke(old.Serial, pki.AgentCN(label)+" (re-keyed)"); err != nil {
		if rerr := replace(updated, old); rerr != nil {
			m.log.Error("restore registry entry after failed re-key", "label", label, "err", rerr)
		}
		return nil, err
	}
	if ValidLabel(label) {
		if err := os.RemoveAll(m.agentDir(label)); err != nil && !errors.Is(err, os.ErrNotExist) {
			m.log.Warn("remove agent P12 after re-key", "label", label, "err", err)
		}
	}
	// A re-key usually means the old key may be compromised: new tunnel
	// credentials end every session opened with the old ones (the tunnel
	// server closes them) and leave the holder of the old key nothing to
	// reconnect with. The agent fetches the new credential from
	// agent-config. (The contract keeps the credentials; this is a
	// deliberate hardening.)
	m.removeTunnelCredentials(ctx, label)
	if err := m.tunnels.AddAgent(ctx, label); err != nil {
		m.log.Error("new tunnel credentials after re-key", "label", label, "err", err)
	}
	m.log.Info("agent re-keyed", "label", label, "serial", iss.Serial, "revoked", old.Serial)
	return &Enrollment{
		Label:     label,
		CertPEM:   iss.CertPEM,
		CACertPEM: m.pki.CACertPEM(),
		Serial:    iss.Serial,
		ExpiresAt: iss.NotAfter,
		ReloadErr: m.pki.Reload(ctx),
	}, nil
}
