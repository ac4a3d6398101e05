package panel

import (
	"mime"
	"net/http"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/sites"
	"github.com/portlama/portlama/internal/validate"
)

// siteCaller is the sites.Caller for the request's identity.
func siteCaller(id *Identity) sites.Caller {
	if id.IsAdmin() {
		return sites.Caller{Admin: true}
	}
	return sites.Caller{Label: id.Label, AllowedSites: id.AllowedSites}
}

// Schemas of the site routes (docs/api.md, "Static sites").
var (
	siteNameSchema     = String().Min(1).Max(100).Pattern(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	customDomainSchema = String().Max(validate.MaxHostnameLen).Pattern(`^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$`).Check(validate.CertName)

	createSiteSchema = Object(
		Required("name", siteNameSchema),
		Required("type", String().OneOf(string(api.SiteManaged), string(api.SiteCustom))),
		Optional("customDomain", customDomainSchema),
		Optional("spaMode", Bool()),
		Optional("autheliaProtected", Bool()),
	)
	patchSiteSchema = Object(
		Optional("spaMode", Bool()),
		Optional("autheliaProtected", Bool()),
		Optional("allowedUsers", allowedUsersSchema),
	)
	// The listing's path is at most 500 characters (contract); a file or
	// directory to delete may be as long as an uploaded one.
	siteFilesQuery = Object(
		Optional("path", String().Max(500)),
		Optional("recursive", String().OneOf("true", "false")),
	)
	siteUploadQuery      = Object(Optional("path", String().Max(500)))
	deleteSiteFileSchema = Object(Required("path", String().Min(1).Max(1024)))

	siteID = map[string]func(string) error{"id": validate.UUID}
)

// registerSites: the static site routes of docs/api.md, "Static sites".
func (s *Server) registerSites() {
	d := &s.cfg.Relay

	s.Handle(Route{
		Method: http.MethodGet, Path: "/api/sites",
		Access: AdminOrAgent, Capability: api.CapSitesRead, Gate: GateManagement,
		Handler: func(c *Ctx) error {
			list, err := d.Sites.List(siteCaller(c.Identity))
			if err != nil {
				return Failed("Failed to list sites", err)
			}
			return c.OK(api.SiteList{Sites: list})
		},
	})

	s.Handle(Route{
		Method: http.MethodPost, Path: "/api/sites",
		Access: AdminOnly, Gate: GateManagement,
		Body: createSiteSchema,
		Handler: func(c *Ctx) error {
			var b api.CreateSiteRequest
			if err := c.Decode(&b); err != nil {
				return err
			}
			res, err := d.Sites.Create(c.R.Context(), b)
			if err != nil {
				return err
			}
			out := api.SiteResponse{OK: true, Site: res.Site, Warning: res.Warning}
			if res.Site.Type == api.SiteCustom {
				out.Message = sites.MsgCustomCreated
			}
			return c.JSON(http.StatusCreated, out)
		},
	})

	s.Handle(Route{
		Method: http.MethodPatch, Path: "/api/sites/{id}",
		Access: AdminOnly, Gate: GateManagement,
		Params: siteID,
		Body:   patchSiteSchema,
		Handler: func(c *Ctx) error {
			var b api.UpdateSiteRequest
			if err := c.Decode(&b); err != nil {
				return err
			}
			res, err := d.Sites.Update(c.R.Context(), c.Param("id"), b)
			if err != nil {
				return err
			}
			out := api.SiteResponse{OK: true, Site: res.Site, Warning: res.Warning}
			if !res.Changed {
				out.Message = sites.MsgNoChanges
			}
			return c.OK(out)
		},
	})

	s.Handle(Route{
		Method: http.MethodDelete, Path: "/api/sites/{id}",
		Access: AdminOnly, Gate: GateManagement,
		Params: siteID,
		Handler: func(c *Ctx) error {
			warning, err := d.Sites.Delete(c.R.Context(), c.Param("id"))
			if err != nil {
				return err
			}
			return c.OK(api.SiteDeleted{OK: true, Warning: warning})
		},
	})

	s.Handle(Route{
		Method: http.MethodPost, Path: "/api/sites/{id}/verify-dns",
		Access: AdminOnly, Gate: GateManagement,
		Params: siteID,
		Handler: func(c *Ctx) error {
			res, err := d.Sites.VerifyDNS(c.R.Context(), c.Param("id"))
			if err != nil {
				return err
			}
			return c.OK(res)
		},
	})

	s.Handle(Route{
		Method: http.MethodGet, Path: "/api/sites/{id}/files",
		Access: AdminOrAgent, Capability: api.CapSitesRead, Gate: GateManagement,
		Params: siteID,
		Query:  siteFilesQuery,
		Handler: func(c *Ctx) error {
			var q struct {
				Path      string `json:"path"`
				Recursive string `json:"recursive"`
			}
			if err := c.DecodeQuery(&q); err != nil {
				return err
			}
			list, err := d.Sites.Files(siteCaller(c.Identity), c.Param("id"), q.Path, q.Recursive == "true")
			if err != nil {
				return err
			}
			return c.OK(list)
		},
	})

	s.Handle(Route{
		Method: http.MethodPost, Path: "/api/sites/{id}/files",
		Access: AdminOrAgent, Capability: api.CapSitesWrite, Gate: GateManagement,
		Params:  siteID,
		Query:   siteUploadQuery,
		RawBody: true,
		Handler: func(c *Ctx) error {
			var q struct {
				Path string `json:"path"`
			}
			if err := c.DecodeQuery(&q); err != nil {
				return err
			}
			caller := siteCaller(c.Identity)
			// 404 and 403 before the body is looked at.
			if _, err := d.Sites.Get(caller, c.Param("id")); err != nil {
				return err
			}
			if mt, _, err := mime.ParseMediaType(c.R.Header.Get("Content-Type")); err != nil || mt != "multipart/form-data" {
				return NewError(http.StatusBadRequest, "Upload failed: the body must be multipart/form-data")
			}
			mr, err := c.R.MultipartReader()
			if err != nil {
				return NewError(http.StatusBadRequest, "Upload failed: "+err.Error())
			}
			res, err := d.Sites.Upload(c.R.Context(), caller, c.Param("id"), q.Path, mr)
			if err != nil {
				return err
			}
			return c.OK(res)
		},
	})

	s.Handle(Route{
		Method: http.MethodDelete, Path: "/api/sites/{id}/files",
		Access: AdminOrAgent, Capability: api.CapSitesWrite, Gate: GateManagement,
		Params: siteID,
		Body:   deleteSiteFileSchema,
		Handler: func(c *Ctx) error {
			var b api.DeleteSiteFileRequest
			if err := c.Decode(&b); err != nil {
				return err
			}
			if err := d.Sites.DeleteFile(c.R.Context(), siteCaller(c.Identity), c.Param("id"), b.Path); err != nil {
				return err
			}
			return c.OK(api.OK{OK: true})
		},
	})
}
