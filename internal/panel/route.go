package panel

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/config"
)

// Access says who may call a route (contract notation: pub, A, A+ag, ag).
type Access int

// Access levels.
const (
	// AdminOnly: admin certificate only (A). Agents get 403
	// "Insufficient certificate scope".
	AdminOnly Access = iota
	// AdminOrAgent: admin, or an agent holding Route.Capability (A+ag).
	// With an empty Capability any agent passes.
	AdminOrAgent
	// AgentOnly: agent certificate only (ag); admins get 403
	// "Insufficient certificate scope". Capability applies as above.
	AgentOnly
	// Public: no certificate needed (pub). No identity, 2FA or role check
	// runs; the gate and body steps still do.
	Public
)

// Gate is the onboarding gate of a route (docs/api.md, "Onboarding gate").
type Gate int

// Gates.
const (
	// GateNone: never gated (health, onboarding status, public routes).
	GateNone Gate = iota
	// GateOnboarding: onboarding routes; 410 once COMPLETED. Finer state
	// rules (409) belong to the handler, after validation.
	GateOnboarding
	// GateManagement: management routes; 503 until COMPLETED.
	GateManagement
)

// BodyLimit is the largest accepted JSON body (docs/api.md, "Placement and transport").
const BodyLimit = 1 << 20

// Route describes one API endpoint. Register it with Server.Handle; the
// pipeline then runs, in the order of docs/api.md, "Order of checks": identity (403) → 2FA
// (401) → gate (503/410) → body parsing (400/413/415) → role and capability
// guard (403) → schema validation of path parameters, query and body (400)
// → Handler.
type Route struct {
	Method string // GET, POST, PUT, PATCH, DELETE
	Path   string // net/http pattern path, e.g. "/api/tunnels/{id}"

	Access     Access
	Capability string // for AdminOrAgent / AgentOnly; "" = none needed
	Gate       Gate

	// TwoFAExempt exempts the route from the panel 2FA session
	// (only /api/settings/2fa and /api/settings/2fa/verify).
	TwoFAExempt bool

	// Reconfigures marks a route that changes what nginx or a daemon
	// serves (a reload): an agent's calls count against its change rate
	// (panel.json agentLimits; admins are not counted).
	Reconfigures bool

	// Params validates path parameters by name (e.g. "id": validate.UUID).
	Params map[string]func(string) error
	// Query validates the query string: each key's first value as a JSON
	// string. nil = query ignored.
	Query *ObjectSchema
	// Body is the JSON body schema. nil = the route takes no body: an empty
	// body or any JSON object ({}) is accepted and ignored.
	Body *ObjectSchema
	// RawBody skips body parsing (multipart uploads, streams); the handler
	// reads Ctx.R.Body itself.
	RawBody bool

	Handler func(*Ctx) error

	// healthExempt: /api/health skips identity when it has no query string.
	healthExempt bool
}

// Ctx is the state of one request passed to a route handler.
type Ctx struct {
	W        http.ResponseWriter
	R        *http.Request
	Identity *Identity          // nil on Public routes
	Panel    config.PanelConfig // panel.json as loaded for this request
	Log      *slog.Logger

	body  any // cleaned body (only declared keys)
	query any
}

// Decode fills v (a pointer to a struct with json tags) from the validated
// body: only declared keys, integers as int64.
func (c *Ctx) Decode(v any) error { return remarshal(c.body, v) }

// DecodeQuery fills v from the validated query string.
func (c *Ctx) DecodeQuery(v any) error { return remarshal(c.query, v) }

func remarshal(from, to any) error {
	if from == nil {
		from = map[string]any{}
	}
	data, err := json.Marshal(from)
	if err != nil {
		return fmt.Errorf("re-encode validated body: %w", err)
	}
	if err := json.Unmarshal(data, to); err != nil {
		return fmt.Errorf("decode validated body: %w", err)
	}
	return nil
}

// Param returns the path parameter name (already validated by Route.Params).
func (c *Ctx) Param(name string) string { return c.R.PathValue(name) }

// JSON answers with status and v as JSON. Handlers return its result.
func (c *Ctx) JSON(status int, v any) error {
	writeJSON(c.W, status, v)
	return nil
}

// OK answers 200 with v as JSON.
func (c *Ctx) OK(v any) error { return c.JSON(http.StatusOK, v) }

// Handle registers rt. It panics on a malformed route (a programming error
// found by the first test that constructs a Server).
func (s *Server) Handle(rt Route) {
	if rt.Handler == nil || rt.Method == "" || !strings.HasPrefix(rt.Path, "/api/") {
		panic(fmt.Sprintf("panel: bad route %s %s", rt.Method, rt.Path))
	}
	if rt.Body != nil && rt.RawBody {
		panic(fmt.Sprintf("panel: route %s %s has both Body and RawBody", rt.Method, rt.Path))
	}
	for name := range rt.Params {
		if !strings.Contains(rt.Path, "{"+name+"}") && !strings.Contains(rt.Path, "{"+name+"...}") {
			panic(fmt.Sprintf("panel: route %s %s validates parameter %q that is not in its path", rt.Method, rt.Path, name))
		}
	}
	byMethod, ok := s.routes[rt.Path]
	if !ok {
		byMethod = map[string]*Route{}
		s.routes[rt.Path] = byMethod
		s.mux.HandleFunc(rt.Path, func(w http.ResponseWriter, r *http.Request) {
			route, ok := byMethod[r.Method]
			if !ok && r.Method == http.MethodHead {
				route, ok = byMethod[http.MethodGet]
			}
			if !ok {
				writeError(w, errNotFound)
				return
			}
			s.serveRoute(w, r, route)
		})
	}
	if _, dup := byMethod[rt.Method]; dup {
		panic(fmt.Sprintf("panel: route %s %s registered twice", rt.Method, rt.Path))
	}
	r := rt
	byMethod[rt.Method] = &r
}

// serveRoute runs the pipeline of docs/api.md, "Order of checks" for one route.
func (s *Server) serveRoute(w http.ResponseWriter, r *http.Request, rt *Route) {
	c := &Ctx{W: w, R: r, Log: s.log}
	fail := func(e *api.Error) { writeError(w, e) }
	internal := func(err error) {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, errInternal)
	}

	// 1. Identity (403).
	needIdentity := rt.Access != Public && !(rt.healthExempt && r.URL.RawQuery == "")
	if needIdentity {
		id, deny, err := s.identify(r, isProven(r))
		if err != nil {
			internal(err)
			return
		}
		if deny != nil {
			fail(deny)
			return
		}
		c.Identity = id
	}

	// panel.json for the 2FA check, the gate and the handler. /api/health
	// never reads it, so it answers even when the document is broken.
	var cfg config.PanelConfig
	if !rt.healthExempt {
		var err error
		if cfg, err = s.panel.Load(); err != nil {
			internal(err)
			return
		}
		c.Panel = cfg
	}

	// 2. Panel 2FA session (401), admins only.
	if c.Identity.IsAdmin() && cfg.Panel2FA.Enabled && !rt.TwoFAExempt {
		if deny := checkTwoFA(w, r, cfg.SessionSecretOrEmpty(), c.Identity.Serial, s.now()); deny != nil {
			fail(deny)
			return
		}
	}

	// 3. Onboarding gate (503 / 410).
	switch rt.Gate {
	case GateOnboarding:
		if cfg.Onboarding.Status == config.StatusCompleted {
			fail(errOnboardingDone)
			return
		}
	case GateManagement:
		if cfg.Onboarding.Status != config.StatusCompleted {
			fail(onboardingIncomplete(cfg.Onboarding.Status))
			return
		}
	}

	// 4. Body parsing (400 / 413 / 415).
	var body any
	var hasBody bool
	if !rt.RawBody {
		var perr *api.Error
		body, hasBody, perr = readJSONBody(r)
		if perr != nil {
			fail(perr)
			return
		}
	}

	// 5. Role and capability guard (403).
	if needIdentity {
		if deny := guard(rt, c.Identity); deny != nil {
			fail(deny)
			return
		}
	}

	// 5b. An agent's changes are rate limited (429 with Retry-After), so
	// one agent cannot keep nginx and the daemons reloading.
	if deny := s.limitAgentChange(w, rt, c.Identity, cfg.AgentLimits); deny != nil {
		fail(deny)
		return
	}

	// 6. Schema validation of path parameters, query and body (400).
	var issues []api.Issue
	for _, name := range slices.Sorted(maps.Keys(rt.Params)) {
		if err := rt.Params[name](r.PathValue(name)); err != nil {
			issues = append(issues, api.Issue{Path: []any{name}, Message: err.Error()})
		}
	}
	if rt.Query != nil {
		q := map[string]any{}
		for k, v := range r.URL.Query() {
			if len(v) > 0 {
				q[k] = v[0]
			}
		}
		var qi []api.Issue
		c.query, qi = Validate(rt.Query, q)
		issues = append(issues, qi...)
	}
	if !rt.RawBody {
		switch {
		case rt.Body != nil && !hasBody:
			issues = append(issues, api.Issue{Path: []any{}, Message: "Request body is required"})
		case rt.Body != nil:
			var bi []api.Issue
			c.body, bi = Validate(rt.Body, body)
			issues = append(issues, bi...)
		case hasBody:
			if _, ok := body.(map[string]any); !ok && body != nil {
				issues = append(issues, api.Issue{Path: []any{}, Message: "This route takes no body; send none or {}"})
			}
		}
	}
	if len(issues) > 0 {
		fail(ValidationError(issues...))
		return
	}

	// 7. Handler.
	if err := rt.Handler(c); err != nil {
		apiErr := apiError(err)
		if apiErr == nil {
			internal(err)
			return
		}
		if apiErr.Status >= 500 {
			s.log.Warn("request failed", "method", r.Method, "path", r.URL.Path, "status", apiErr.Status, "error", apiErr.Message, "cause", err)
		}
		fail(apiErr)
	}
}

// guard is the role and capability check of docs/api.md, "Roles, capabilities, pipeline".
func guard(rt *Route, id *Identity) *api.Error {
	switch rt.Access {
	case AdminOnly:
		if id.Role != RoleAdmin {
			return scopeError([]string{"admin"}, id.Role)
		}
		return nil
	case AgentOnly:
		if id.Role != RoleAgent {
			return scopeError([]string{"agent"}, id.Role)
		}
	case AdminOrAgent:
		if id.Role == RoleAdmin {
			return nil
		}
	}
	if rt.Capability != "" && !id.Can(rt.Capability) {
		granted := id.Capabilities
		if granted == nil {
			granted = []string{}
		}
		return NewError(http.StatusForbidden, api.MsgCapability).
			WithDetails(api.CapabilityDetails{Required: rt.Capability, Granted: granted})
	}
	return nil
}

func scopeError(required []string, current Role) *api.Error {
	return NewError(http.StatusForbidden, api.MsgScope).
		WithDetails(api.ScopeDetails{Required: required, Current: string(current)})
}

// readJSONBody reads and parses a JSON body. present is false for an empty
// body. Errors: 413 over BodyLimit, 415 for a non-JSON content type, 400
// for malformed JSON.
func readJSONBody(r *http.Request) (v any, present bool, e *api.Error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, false, nil
	}
	if r.ContentLength > BodyLimit {
		return nil, false, errTooLarge
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, BodyLimit+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, false, errTooLarge
		}
		return nil, false, errInvalidJSON
	}
	if len(data) > BodyLimit {
		return nil, false, errTooLarge
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, false, nil
	}
	if !isJSONContentType(r.Header.Get("Content-Type")) {
		return nil, false, errUnsupportedMedia
	}
	v, err = ParseJSON(data)
	if err != nil {
		return nil, false, errInvalidJSON
	}
	return v, true, nil
}

func isJSONContentType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}

// ParseJSON decodes exactly one JSON value (numbers as json.Number); any
// trailing data is an error.
func ParseJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after JSON value")
	}
	return v, nil
}

// limitAgentChange takes a token of the agent's change bucket for a route
// that reconfigures the relay; admins and other routes are not limited. An
// empty bucket sets Retry-After and answers 429.
func (s *Server) limitAgentChange(w http.ResponseWriter, rt *Route, id *Identity, lim config.AgentLimits) *api.Error {
	if id == nil || id.Role != RoleAgent || !rt.Reconfigures {
		return nil
	}
	perMinute := lim.ChangeRate()
	ok, retry := s.agentChanges.Take(id.Label, lim.Burst(), float64(perMinute)/60, s.now())
	if ok {
		return nil
	}
	secs := int(math.Ceil(retry.Seconds()))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	return NewError(http.StatusTooManyRequests, fmt.Sprintf(
		"Too many changes from agent '%s': at most %d at once and %d a minute. Try again in %d seconds.",
		id.Label, lim.Burst(), perMinute, secs))
}
