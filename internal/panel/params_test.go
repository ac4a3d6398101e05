package panel

import (
	"testing"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/validate"
)

func TestPathAndQueryValidation(t *testing.T) {
	h := newHarness(t, config.StatusCompleted)
	h.addAgent("home", "AB")
	h.srv.Handle(Route{
		Method: "DELETE", Path: "/api/test/items/{id}", Access: AdminOrAgent, Capability: api.CapTunnelsWrite, Gate: GateManagement,
		Params: map[string]func(string) error{"id": validate.UUID},
		Query:  Object(Optional("force", String().OneOf("true", "false"))),
		Handler: func(c *Ctx) error {
			var q struct {
				Force string `json:"force"`
			}
			if err := c.DecodeQuery(&q); err != nil {
				return err
			}
			return c.OK(map[string]string{"id": c.Param("id"), "force": q.Force})
		},
	})
	const id = "3f1c2a9e-4b7d-4c3e-9a1f-2b3c4d5e6f70"
	h.do("DELETE", "/api/test/items/"+id+"?force=true", "", adminHeaders()).expect(t, 200, `{"id":"`+id+`","force":"true"}`)
	r := h.do("DELETE", "/api/test/items/not-a-uuid?force=maybe", "", adminHeaders())
	r.expect(t, 400, "")
	if got := r.issuePaths(); len(got) != 2 || got[0] != `["id"]` || got[1] != `["force"]` {
		t.Fatalf("issues %v", got)
	}
	// Guard before schema: an agent without the capability gets 403 even for a bad id.
	h.do("DELETE", "/api/test/items/not-a-uuid", "", agentHeaders("home", "AB")).expect(t, 403,
		`{"error":"Insufficient certificate capability","details":{"required":"tunnels:write","granted":["tunnels:read"]}}`)
}

func TestHandleRejectsMalformedRoutes(t *testing.T) {
	h := newHarness(t, config.StatusFresh)
	ok := func(*Ctx) error { return nil }
	for name, rt := range map[string]Route{
		"no handler":     {Method: "GET", Path: "/api/x"},
		"not under /api": {Method: "GET", Path: "/x", Handler: ok},
		"unknown param":  {Method: "GET", Path: "/api/x/{id}", Params: map[string]func(string) error{"name": validate.UUID}, Handler: ok},
		"duplicate":      {Method: "GET", Path: "/api/health", Handler: ok},
		"body and raw":   {Method: "POST", Path: "/api/y", Body: Object(), RawBody: true, Handler: ok},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: Handle accepted %+v", name, rt)
				}
			}()
			h.srv.Handle(rt)
		}()
	}
}
