// Package agent is the client side of Portlama: the library behind the
// portlama-agent command. It enrolls an agent with a relay, keeps its files
// in a per-user directory, talks to the panel API with the agent's client
// certificate, keeps the agent's tunnels connected, and generates the
// service files that run it in the background.
//
// # Files
//
// Everything lives below one base directory (Home, by default ~/.portlama):
//
//	agents.json              registry: {"current":"<label>","agents":[{"label","panelUrl","enrolledAt"}]}
//	<label>/client.key       the agent's ECDSA P-256 private key (0600, never leaves the machine)
//	<label>/client.crt       the certificate the relay issued (CN=agent:<relay label>)
//	<label>/ca.crt           the relay CA (signs client certificates; in the demo also domain certificates)
//	<label>/panel.crt        the panel's TLS certificate as seen at enrollment
//	<label>/panel-ca.crt     extra trust anchors given with --ca-cert at enrollment (optional)
//	<label>/config.json      Profile: panel URL, relay label, serial, expiry, panel trust
//	<label>/agent.log        output of the launchd job (macOS only)
//
// Directories are 0700, keys and config 0600. Several labels live side by
// side; commands pick one with --label, else the registry's current one.
//
// # Panel TLS trust (pinning decision)
//
// The first call, POST /api/enroll, happens before the agent knows the relay
// CA, and the panel-IP vhost (https://<ip>:9292) serves a self-signed
// certificate. Setup therefore accepts the panel's certificate only when one
// of these holds:
//
//  1. its SHA-256 fingerprint equals --panel-fingerprint (hex, colons and a
//     "sha256:" prefix optional: the value a browser or
//     `openssl x509 -fingerprint -sha256` shows);
//  2. it chains, for the panel URL's host, to the system roots or to the
//     certificates in --ca-cert (a PEM file; the self-signed IP certificate
//     itself works).
//
// There is no silent trust-on-first-use. When neither holds, setup fails with
// an UntrustedPanelError that carries the presented fingerprint, and the
// message tells the user to compare it with the panel and re-run with
// --panel-fingerprint (the --json error event carries it as "fingerprint"
// so a desktop app can ask). The token is never sent over an unverified
// connection.
//
// After enrollment the trust is pinned in config.json (PanelTrust):
//   - mode "pin" (case 1): later calls accept exactly that certificate
//     (fingerprint match), nothing else. The IP certificate is valid for
//     ten years; if it is replaced, run setup again.
//   - mode "chain" (case 2): later calls verify the chain and host name
//     against the system roots, the relay CA from the enrollment response
//     and the --ca-cert anchors, so a renewed domain certificate keeps
//     working.
//
// The tunnel server (chiselServerUrl, https://tunnel.<d>) is always verified
// against the system roots plus the pinned relay CA, with the host name
// checked, and the agent presents its client certificate (nginx demands it).
// The tunnel server's SSH key is additionally checked with the fingerprint
// from agent-config. Nothing skips verification.
//
// # Setup progress events (NDJSON)
//
// With --json, setup writes one JSON object per line to stdout (Event):
//
//	{"step":"generate-key","status":"running","message":"Generating ECDSA P-256 key"}
//	{"step":"generate-key","status":"done","message":"Private key created (it never leaves this machine)"}
//	{"step":"create-csr","status":"running","message":"Creating certificate signing request"}
//	...
//	{"step":"check-health","status":"done","message":"Relay reachable (version 1.0.0); certificate accepted"}
//	{"step":"complete","status":"done","label":"home","panelUrl":"https://203.0.113.7:9292"}
//
// Steps, in order: generate-key, create-csr, enroll, save-config,
// check-health, then complete. "status" is "running", "done" or "error".
// On failure the last line is {"step":"<id>","status":"error","error":"<text>"}
// (plus "fingerprint" when the panel certificate was not trusted) and the
// command exits with status 1. Input errors (missing token, bad URL or
// label) are reported on generate-key, before anything is created. Messages
// are for humans; programs match on step and status. Without --json the
// same steps are printed as plain lines. check-health calls /api/health and
// GET /api/tunnels with the new certificate and the pinned panel trust, so
// a "done" there proves the whole identity works.
//
// # Tests
//
// Package agenttest holds a stand-in panel (real CSR signing, client
// certificate checks, contract error envelopes) used by this package's and
// the command's tests until end-to-end tests run against the real relay.
//
// # Runner
//
// Runner fetches GET /api/tunnels/agent-config with the client certificate
// and keeps one tunnel client (internal/tunnel) per relay — server URL,
// credential and fingerprint — whose single session carries every enabled
// tunnel as a chisel remote "R:127.0.0.1:<relayPort>:<targetHost>:<port>"
// (IPv6 hosts in brackets). A hundred tunnels are one WebSocket, one SSH
// session and one keep-alive.
//
// It polls agent-config every PollInterval and sets the client's remotes
// from it: the relay binds new tunnels and releases removed ones on the
// running session, every other tunnel is left alone (a download through
// one keeps running while another is created, disabled or deleted). When
// the server URL, the credentials or the fingerprint change, the client is
// stopped (and waited for) and a new one started. A failed poll keeps the
// running connection; before the first successful fetch, fetching is
// retried with backoff. With no enabled tunnels it connects nothing and
// keeps polling.
//
// The connection keeps itself up and acts on how a session ended:
// refused (credentials, certificate) → refetch agent-config, then back
// off; unverified (TLS or key fingerprint) → stop connecting and say so
// until agent-config brings another server or fingerprint; unreachable or
// lost → back off (MinBackoff doubling to MaxBackoff, reset after a session
// that stayed up HealthyAfter), refetch, reconnect. A tunnel the relay
// refuses or drops triggers one immediate refetch; a repeated refusal
// waits for the next poll.
//
// State: RunnerState has the connection's and every tunnel's state
// (connected, connecting, reconnecting or refused with the reason,
// unverified); with RunnerConfig.StateFile it is written to
// <home>/<label>/tunnels-state.json on every change and `portlama-agent
// status` shows it. Logs: "tunnel up" (fqdn, local target), "tunnel
// refused by the relay" and "tunnel down; reconnecting" (fqdn, reason),
// "tunnel connection refused" / "tunnel connection down" (reason, retry
// delay), "tunnel configuration changed" (added and removed fqdns) and
// "tunnel server settings changed" (which of server, credentials,
// fingerprint; never their values). Run returns nil when its context ends,
// after the connection has stopped.
package agent
