// Package tunnel is the relay's tunnel transport: the tunnel server
// (`portlama tunnel-server`), the agent's tunnel client, and the tunnel
// server's access list (<TunnelDir>/acl.json, docs/architecture.md, "Tunnel server files").
//
// The protocol is chisel's, so a stock `chisel client` keeps working (see
// protocol.go); the session layer is ours, built on x/crypto/ssh, gorilla's
// WebSocket and chisel's exported share/settings (remote syntax) and
// share/ccrypto (key format, fingerprint).
//
// # Server (the relay)
//
// Server listens on 127.0.0.1:9090 behind nginx's tunnel.<d> vhost. Every
// request must carry HeaderSecret (the secret in <TunnelDir>/proxy-secret,
// compared in constant time) and the verified client certificate in
// HeaderClientVerify and HeaderClientDN; otherwise it is answered 403
// before any upgrade. The SSH password must be the ACL password of the
// certificate's own agent (CN=agent:<label>). Every remote is checked:
// reverse, TCP, 127.0.0.1, a relay port in the agent's ACL; client-opened
// channels are all refused.
//
// Each relay port an agent binds is a binding: a listener owned by one of
// the agent's sessions, kept in a registry by (agent, port). A session of
// the same agent binding the port again takes it over without closing it
// (reconnects after a dead path, migrations). Reload applies acl.json:
// bindings whose port left their agent's list are closed with their
// connections, sessions of removed agents or changed passwords are closed,
// nothing else is touched; when Reload returns, the change is in force.
// The management socket <TunnelDir>/manage.sock serves POST /v1/reload
// (manage.ReloadHandler), GET /v1/status (Status) and POST /v1/migrate
// (MigrateAll); ManageClient is the panel's client. acl.json is also
// polled, slowly, as a fallback.
//
// # Client (the agent)
//
// Client is one session per agent and relay carrying all the agent's
// remotes; SetRemotes binds and releases remotes on the live session with
// Portlama's portlama-bind/portlama-unbind requests, each answered per
// remote. Run connects (TLS verified against the given config, the server
// key against the chisel fingerprint) and returns a *Error whose Kind says
// what to do: refused (refetch agent-config, back off), unverified (stop),
// unreachable or lost (back off, retry). The relay may ask for a
// make-before-break reconnect (portlama-migrate), which Run performs
// without closing a port. The client accepts the relay's connections only
// for targets of remotes it has bound.
package tunnel
