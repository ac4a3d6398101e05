package homeui

import (
	"context"
	"errors"
	"net/http"

	"github.com/portlama/portlama/internal/agent"
	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/cloud/digitalocean"
	"github.com/portlama/portlama/internal/cloud/launch"
)

// The cloud routes drive launch.Service (docs/home.md, provisioning).
func (s *Server) cloudRoutes(mux *http.ServeMux) {
	s.handle(mux, "GET /api/home/cloud", s.getCloud)
	s.handle(mux, "PUT /api/home/cloud/token", s.setCloudToken)
	s.handle(mux, "GET /api/home/cloud/options", s.cloudOptions)
	s.handle(mux, "POST /api/home/cloud/provision", s.cloud(func(ctx context.Context, r *http.Request) error {
		var b api.HomeProvisionRequest
		if err := decode(r, &b); err != nil {
			return err
		}
		if err := agent.ValidateLabel(b.Name); err != nil {
			return badRequest("Name: %v", err)
		}
		// The job outlives the request: it is bounded by the server's
		// life, not by the browser's connection.
		return s.cfg.Cloud.Start(s.baseCtx(ctx), launch.Request{Name: b.Name, Region: b.Region, Size: b.Size})
	}))
	s.handle(mux, "POST /api/home/cloud/resume", s.cloud(func(ctx context.Context, r *http.Request) error {
		return s.cfg.Cloud.Resume(s.baseCtx(ctx))
	}))
	s.handle(mux, "POST /api/home/cloud/destroy", s.cloud(func(ctx context.Context, r *http.Request) error {
		return s.cfg.Cloud.Destroy(ctx)
	}))
	s.handle(mux, "POST /api/home/cloud/close-port-22", s.cloud(func(ctx context.Context, r *http.Request) error {
		return s.cfg.Cloud.ClosePort22(ctx)
	}))
	s.handle(mux, "POST /api/home/cloud/finish", s.cloud(func(ctx context.Context, r *http.Request) error {
		return s.cfg.Cloud.Finish(ctx)
	}))
}

// baseCtx is the context background jobs run in: the server's, carrying
// no request deadline.
func (s *Server) baseCtx(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

var errNoCloud = &httpError{http.StatusServiceUnavailable, "Provisioning is not available in this build (no relay binary to upload)."}

// cloud wraps an action: it answers the job's state after fn.
func (s *Server) cloud(fn func(context.Context, *http.Request) error) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if s.cfg.Cloud == nil {
			return errNoCloud
		}
		if err := fn(r.Context(), r); err != nil {
			return cloudError(err)
		}
		return s.getCloud(w, r)
	}
}

// cloudError maps the service's refusals to 4xx.
func cloudError(err error) error {
	var he *httpError
	var ae *digitalocean.APIError
	var saved *launch.JobSavedError
	switch {
	case errors.As(err, &saved):
		return &httpError{http.StatusConflict, err.Error()}
	case errors.As(err, &he):
		return err
	case errors.Is(err, launch.ErrBusy):
		return &httpError{http.StatusConflict, err.Error()}
	case errors.Is(err, launch.ErrNoToken), errors.Is(err, launch.ErrNoJob):
		return &httpError{http.StatusConflict, err.Error()}
	case errors.As(err, &ae) && ae.Status == http.StatusUnauthorized:
		return &httpError{http.StatusBadRequest, err.Error()}
	case errors.As(err, &ae) && ae.Status < 500:
		return &httpError{http.StatusBadRequest, err.Error()}
	case errors.As(err, &ae):
		return &httpError{http.StatusBadGateway, err.Error()}
	}
	var fe *launch.FailedError
	if errors.As(err, &fe) {
		return &httpError{http.StatusBadGateway, err.Error()}
	}
	return &httpError{http.StatusBadRequest, err.Error()}
}

func (s *Server) getCloud(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Cloud == nil {
		return errNoCloud
	}
	p, err := s.cfg.Cloud.Progress()
	if err != nil {
		return err
	}
	out := api.HomeCloud{TokenSaved: s.cfg.Cloud.HasToken(), Steps: launch.Steps, Running: p.Running, Events: []api.HomeProvisionEvent{}, Error: p.Error}
	if st := p.State; st != nil {
		out.Job = &api.HomeProvisionJob{
			Name: st.Request.Name, Region: st.Request.Region, Size: st.Request.Size, Step: st.Step, Error: st.Error,
			DropletID: st.DropletID, IP: st.IP, PanelURL: st.PanelURL, PriceHourly: st.PriceHourly, PriceMonthly: st.PriceMonthly,
			Port22Closed: st.Port22Closed,
		}
	}
	for _, e := range p.Events {
		v := api.HomeProvisionEvent{Step: e.Step, Status: e.Status, Message: e.Message}
		if e.Install != nil {
			v.Task, v.TaskStatus = e.Install.Task, e.Install.Status
			if v.Message == "" {
				v.Message = e.Install.Title
				if e.Install.Message != "" {
					v.Message += ": " + e.Install.Message
				}
				if e.Install.Error != "" {
					v.Message += ": " + e.Install.Error
				}
			}
		}
		out.Events = append(out.Events, v)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) setCloudToken(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Cloud == nil {
		return errNoCloud
	}
	var b api.HomeCloudTokenRequest
	if err := decode(r, &b); err != nil {
		return err
	}
	acct, err := s.cfg.Cloud.SetToken(r.Context(), b.Token)
	if err != nil {
		return cloudError(err)
	}
	writeJSON(w, http.StatusOK, api.HomeCloudAccount{Email: acct.Email})
	return nil
}

func (s *Server) cloudOptions(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Cloud == nil {
		return errNoCloud
	}
	choices, err := s.cfg.Cloud.Options(r.Context())
	if err != nil {
		return cloudError(err)
	}
	out := api.HomeCloudOptions{Regions: []api.HomeCloudRegion{}}
	for _, c := range choices {
		reg := api.HomeCloudRegion{Slug: c.Region.Slug, Name: c.Region.Name, Suggested: c.Suggestion, Sizes: []api.HomeCloudSize{}}
		for _, sz := range c.Sizes {
			reg.Sizes = append(reg.Sizes, api.HomeCloudSize{Slug: sz.Slug, MemoryMB: sz.Memory, VCPUs: sz.VCPUs, DiskGB: sz.Disk, PriceMonthly: sz.PriceMonthly, PriceHourly: sz.PriceHourly})
		}
		out.Regions = append(out.Regions, reg)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
