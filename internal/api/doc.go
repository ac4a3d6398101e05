// Package api holds the wire types of the panel's REST API (docs/api.md):
// one Go struct per request body, response body and the error envelope of
// every route the panel serves, the capability set, tunnel types and access
// modes, and the timestamp format. The panel encodes these types, the typed
// client (internal/panelclient) decodes them, and the web UI's TypeScript
// types are generated from them.
//
// Rules that keep the types generatable: plain exported fields with json
// tags, string enums as named string types with constants, `omitempty` only
// where the API omits a key, pointers where the API answers null, and
// json.RawMessage only where a value's shape depends on the route (error
// details). The package imports nothing of the relay but internal/validate,
// so every other package may use it.
package api
