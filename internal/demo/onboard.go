package demo

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/panelclient"
)

// onboard walks the onboarding a user clicks through, through the API:
// domain and e-mail, the DNS check, provisioning with its live progress.
// A directory that is onboarded already gets its services back.
func (s *Stack) onboard(ctx context.Context) error {
	pc, err := s.Panel()
	if err != nil {
		return err
	}
	st, err := pc.OnboardingStatus(ctx)
	if err != nil {
		return err
	}
	if st.Status == config.StatusCompleted {
		s.progress("The relay in %s is onboarded already; starting its services ...", s.opts.Dir)
		return s.restore(ctx)
	}
	d := s.opts.Domain
	if st.Status == config.StatusFresh || st.Status == config.StatusDomainSet {
		s.progress("Onboarding 1/3 - domain: %s, ACME contact admin@%s", d, d)
		if _, err := pc.SetDomain(ctx, api.SetDomainRequest{Domain: d, Email: "admin@" + d}); err != nil {
			return err
		}
	}
	if st.Status != config.StatusDNSReady && st.Status != config.StatusProvisioning {
		s.progress("Onboarding 2/3 - DNS check (the local DNS server answers for %s):", d)
		res, err := pc.VerifyDNS(ctx)
		if err != nil {
			return err
		}
		s.progress("  %s", res.Message)
		if !res.OK {
			return fmt.Errorf("DNS check failed: missing %s", strings.Join(res.MissingNames, ", "))
		}
	}
	s.progress("Onboarding 3/3 - provisioning:")
	res, err := RunProvisioning(ctx, pc, func(f api.ProvisionFrame) {
		switch {
		case f.Type == api.FrameState:
		case f.Status == api.TaskRunning:
			s.progress("  [%d/%d] %s ...", f.Progress.Current, f.Progress.Total, f.Title)
		case f.Status == api.TaskDone && f.Task != api.TaskComplete:
			s.progress("        done: %s", f.Message)
		case f.Status == api.TaskError:
			s.progress("  %s", f.Message)
		}
	})
	if err != nil {
		return err
	}
	s.Onboarding = res
	s.progress("  Provisioning complete: %s (client certificate), %s", res.PanelURL, res.AuthURL)
	if res.AdminPassword != nil {
		s.Info.PortalAdmin = &User{Username: res.AdminUsername, Password: *res.AdminPassword}
	}
	s.Info.AuthURL = res.AuthURL + "/"
	s.Info.AuthResolve = fmt.Sprintf("auth.%s:%d:127.0.0.1", d, s.Info.HTTPSPort)
	if s.Pebble != nil {
		if err := s.TrustACMERoot(ctx); err != nil {
			return err
		}
	}
	return nil
}

// restore starts a completed relay's services. Pebble forgets everything
// when it stops, so with ACME the certificates are issued anew by the
// running one.
func (s *Stack) restore(ctx context.Context) error {
	if s.Pebble != nil {
		names, err := s.Services.Certs.Names()
		if err != nil {
			return err
		}
		for _, n := range names {
			if _, err := s.Services.Certs.Renew(ctx, n); err != nil {
				return err
			}
		}
		if err := s.TrustACMERoot(ctx); err != nil {
			return err
		}
	}
	if err := s.Services.Provisioner.Restore(ctx); err != nil {
		return err
	}
	s.Info.AuthURL = s.Relay.Addrs.HostURL("auth", s.opts.Domain) + "/"
	s.Info.AuthResolve = fmt.Sprintf("auth.%s:%d:127.0.0.1", s.opts.Domain, s.Info.HTTPSPort)
	return nil
}

// RunProvisioning subscribes to the provisioning stream, starts the job
// and passes every frame to onFrame until the completion or failure frame;
// it returns the result (with the one-time admin password) or the
// failure. A job already running is followed, not started twice.
func RunProvisioning(ctx context.Context, pc *panelclient.Client, onFrame func(api.ProvisionFrame)) (api.ProvisionResult, error) {
	stream, err := pc.OpenProvisionStream(ctx)
	if err != nil {
		return api.ProvisionResult{}, err
	}
	defer stream.Close()
	snap, _, err := stream.Next(ctx)
	if err != nil {
		return api.ProvisionResult{}, fmt.Errorf("provisioning stream: %w", err)
	}
	onFrame(snap)
	if !snap.IsRunning {
		if _, err := pc.StartProvisioning(ctx); err != nil {
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Message != api.MsgProvisionBusy {
				return api.ProvisionResult{}, err
			}
		}
	}
	for {
		f, raw, err := stream.Next(ctx)
		if err != nil {
			return api.ProvisionResult{}, fmt.Errorf("provisioning stream: %w", err)
		}
		onFrame(f)
		switch {
		case f.Task == api.TaskComplete && f.Status == api.TaskDone:
			if f.Result == nil {
				return api.ProvisionResult{}, fmt.Errorf("completion frame without a result: %s", raw)
			}
			return *f.Result, nil
		case f.Status == api.TaskError:
			return api.ProvisionResult{}, &ProvisionError{Task: f.Task, Message: f.Message, Detail: strings.Trim(string(f.Error), `"`)}
		}
	}
}

// ProvisionError is a failed provisioning run.
type ProvisionError struct {
	Task, Message, Detail string
}

func (e *ProvisionError) Error() string { return e.Message + " (" + e.Task + "): " + e.Detail }
