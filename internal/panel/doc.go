// Package panel is the relay's HTTP API (`portlama panel`, contract
// api-contract.md). It owns the request pipeline — proof of origin,
// identity, panel 2FA, onboarding gate, body parsing, role and capability
// guard, schema validation — so that a route is a declaration plus a short
// handler that decodes, calls a plain Go package and encodes.
//
// # Starting the server
//
//	secret, err := panel.ReadProxySecret(layout.ProxySecretFile())
//	srv, err := panel.New(panel.Config{
//		Layout: layout, Addrs: addrs, ProxySecret: secret, Version: version,
//		Logger: logger, Revocations: revs, Agents: agents,
//		// optional: Now, Resolver (DNS for verify-dns), Stats, RateLimit, PanelStore
//	})
//	err = srv.ListenAndServe(ctx) // or srv.Serve(ctx, listener); graceful shutdown when ctx ends
//
// New validates panel.json (the panel refuses to start on an invalid
// document, e.g. a bad relayPortRange) and gives it a serverId if missing.
// *Server is an http.Handler, so tests can wrap it in httptest.NewServer.
//
// # What runs for every request (outer middleware, middleware.go)
//
//  1. panic recovery → 500 {"error":"Internal server error"} (logged, never sent)
//  2. proof of origin: X-Portlama-Proxy-Secret compared in constant time;
//     the header is then removed. Without proof, X-SSL-Client-*, Remote-*,
//     X-Real-IP and X-Forwarded-For are deleted from the request, so no
//     handler can ever read a forged value.
//  3. rate limit: 100/min per client address (X-Real-IP only when proven,
//     loopback exempt) → 429
//  4. CORS for the allowed origins and cross-origin refusal of POST, PUT,
//     PATCH, DELETE and WebSocket upgrades with a foreign Origin → 403
//  5. routing: unmatched /api paths (and wrong methods) → 404
//     {"error":"Not found"}; other paths → the web UI (internal/webui).
//
// # What runs for each route (route.go, docs/api.md, "Order of checks" order)
//
//  1. identity (403 mTLS certificate required / Certificate has been
//     revoked) — skipped for Access: Public
//  2. panel 2FA session (401 2fa_required) — admins only, when
//     panel2fa.enabled, unless TwoFAExempt
//  3. onboarding gate: GateManagement → 503 until COMPLETED,
//     GateOnboarding → 410 once COMPLETED, GateNone
//  4. JSON body parsing: >1 MiB → 413, non-JSON content type → 415,
//     malformed → 400 Invalid JSON body (skipped with RawBody)
//  5. role and capability guard (403 Insufficient certificate scope /
//     capability)
//  6. schema validation of Params, Query and Body → 400 Validation failed
//     with details.issues[{path,message}]; no type coercion; unknown keys
//     dropped
//  7. the handler
//
// # Adding a route
//
// Put the routes of one area in their own file (routes_tunnels.go,
// routes_certs.go, ...) as a method registerX on *Server, and add one line
// s.registerX() to registerRoutes in server.go. If the area needs a
// dependency (a tunnel store, an nginx writer, the auth manage client), add
// a field to Config — an interface defined here when the implementation
// lives in another package — and default or require it in New.
//
//	func (s *Server) registerTunnels() {
//		s.Handle(Route{
//			Method: http.MethodPatch, Path: "/api/tunnels/{id}",
//			Access:     AdminOrAgent,              // AdminOnly | AdminOrAgent | AgentOnly | Public
//			Capability: api.CapTunnelsWrite,           // checked for agents; admins pass every guard
//			Gate:       GateManagement,            // 503 until onboarding is COMPLETED
//			Params:     map[string]func(string) error{"id": validate.UUID},
//			Body: Object(
//				Optional("enabled", Bool()),                          // "true" is refused, not coerced
//				Optional("port", Integer().Min(1024).Max(65535)),     // 8080.5 and "8080" refused
//				Optional("targetHost", String().Check(validate.TargetHost)),
//				Optional("allowedUsers", Array(String().Check(validate.Username)).Unique()),
//				Optional("agentLabel", Nullable(String().Check(validate.TunnelAgentLabel))),
//			),
//			Handler: func(c *Ctx) error {
//				var body struct {
//					Enabled *bool  `json:"enabled"`
//					Port    *int   `json:"port"`
//				}
//				if err := c.Decode(&body); err != nil { // only declared keys reach the struct
//					return err
//				}
//				id := c.Param("id")                  // already validated
//				if !c.Identity.IsAdmin() && owner != c.Identity.Label { ... }
//				t, err := s.tunnels.Update(c.R.Context(), id, ...)
//				if err != nil {
//					return err // a domain error's kind picks the status (statusOf)
//				}
//				return c.OK(api.TunnelResponse{OK: true, Tunnel: t}) // always an internal/api type
//			},
//		})
//	}
//
// Handler rules:
//   - Return c.OK(v) / c.JSON(status, v) with a type of internal/api for
//     success; for a failure return the domain package's error (its
//     errkind kind picks the status, in errors.go's one table) or an
//     *api.Error (NewError(status, msg), .WithDetails(d), the typed extra
//     keys such as OnboardingStatus, Failed(msg, err) for "Failed to …"
//     500s). Any other error becomes 500 Internal server error and is
//     logged; never put secrets into error text.
//   - c.Identity is the caller (Role, Label, Serial, Capabilities,
//     AllowedSites); nil only on Public routes. c.Panel is panel.json as
//     loaded for this request; change it through s.panel.Update or Merge
//     (config.PanelStore), never by writing the file.
//   - Routes without a Body schema accept an empty body or {} (keys
//     ignored). A route with a Body schema and no body → 400 Validation
//     failed. Query: a *ObjectSchema over the first value of each key, as
//     strings; decode with c.DecodeQuery.
//   - Multipart uploads and streams: RawBody: true, then read c.R.Body
//     yourself (wrap it in http.MaxBytesReader with your own limit).
//   - WebSockets: the cross-origin check already ran; do the upgrade in the
//     handler after the gate and guard have passed.
//   - Path patterns are net/http patterns; several methods may share a path.
//     Registering the same method and path twice panics.
//
// Tests: harness_test.go starts a real server (httptest) with an in-memory
// revocation list and agent directory, a real DNS server and an injectable
// clock; adminHeaders() / agentHeaders(label, serial) build the headers
// nginx would send, and result.expect(t, status, exactJSON) checks bodies.
// Every route needs at least one test that expects denial.
package panel
