// Package tunnel runs the relay's tunnel server and the agent's tunnel
// client, both built on the chisel packages (github.com/jpillora/chisel
// v1.12.0, subpackages server, client and share/*), and maintains the
// tunnel server's access list (<TunnelDir>/acl.json, contract §17.8).
//
// Client side (the agent): build a Client with NewClient from the values of
// GET /api/tunnels/agent-config, call Run. Run connects once and returns when
// the session ends; it never retries by itself. Inspect its error with
// errors.Is against ErrRefused (credentials or remotes refused: refetch the
// configuration), ErrUnverified (server certificate or key fingerprint did
// not verify) or ErrConnection (network trouble or session lost: back off
// and retry).
//
// Server side (the relay): RunServer serves the chisel protocol on
// 127.0.0.1:9090 in reverse-only mode with one user per agent from acl.json,
// reloads acl.json within a second of a change and closes the live sessions
// of an agent that lost a port or was removed.
//
// ACL side (the panel): ACL edits acl.json (AddAgent, RemoveAgent, SetPorts).
package tunnel

// GCPercent is the garbage-collection target the tunnel processes (the
// tunnel server and the agent) run with unless GOGC is set: chisel allocates
// a buffer per WebSocket message, and at Go's default of 100 the collector
// costs about a quarter of a download's CPU. At 400 a 100 MiB transfer
// needs ~25% less CPU (test/bench); the live heap of a tunnel process is a
// few MiB, so the extra headroom is small. MemoryLimit caps it.
const (
	GCPercent   = 400
	MemoryLimit = 256 << 20
)
