package tunnel

// The wire protocol is chisel's (chisel-v3): a WebSocket with subprotocol
// "chisel-v3" carrying SSH in binary messages; after authentication the
// client sends the global request "config" (JSON: Version, Remotes); for
// every connection to a reverse remote the server opens a "chisel" channel
// whose extra data is the remote's "host:port"; either side may send
// "ping", answered with "pong".
//
// Portlama's client adds, and only Portlama's server understands:
//
//   - config field "Portlama": 1 — the client controls its remotes with the
//     requests below; the server then answers config with the payload
//     {"portlama":1} (a stock client would read any payload as an error, so
//     it never gets one) and binds nothing from Remotes.
//   - client → server "portlama-bind" {"remotes":["R:…",…]}: bind each
//     remote, taking it over from another session of the same agent; the
//     answer's payload is {"results":[{"remote","ok","code","error"}]}, one
//     per remote in order; the request succeeds when every remote did.
//   - client → server "portlama-unbind" {"remotes":[…]}: release them.
//   - server → client "portlama-unbound" {"remote","code","error"} (no
//     reply wanted): the server dropped a binding (CodeRemoved: the ACL no
//     longer allows it; CodeMoved: another session took it over).
//   - server → client "portlama-migrate" (reply wanted): reconnect make-
//     before-break — open a new session, bind every remote there (taking
//     them over), then close the old session once its channels have ended.

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/jpillora/chisel/share/settings"
)

// SSH request and channel names.
const (
	chiselProtocol = "chisel-v3"
	reqConfig      = "config"
	reqPing        = "ping"
	reqBind        = "portlama-bind"
	reqUnbind      = "portlama-unbind"
	reqUnbound     = "portlama-unbound"
	reqMigrate     = "portlama-migrate"
	chanChisel     = "chisel"

	// extVersion is the version of the Portlama extensions.
	extVersion = 1
	// sshServerVersion and sshClientVersion are chisel's identification
	// strings.
	sshServerVersion = "SSH-" + chiselProtocol + "-server"
	sshClientVersion = "SSH-" + chiselProtocol + "-client"
)

// Limits on request payloads (a 1,000-tunnel agent fits easily).
const (
	maxPayload = 1 << 20
	maxRemotes = 4096
)

// configMsg is chisel's config request with Portlama's extension field;
// stock chisel servers ignore the unknown field.
type configMsg struct {
	Version  string
	Remotes  []*settings.Remote
	Portlama int `json:",omitempty"`
}

// parseConfig decodes a config request payload.
func parseConfig(b []byte) (configMsg, error) {
	var c configMsg
	if len(b) > maxPayload {
		return c, errors.New("config too large")
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return configMsg{}, errors.New("invalid config")
	}
	if len(c.Remotes) > maxRemotes {
		return configMsg{}, fmt.Errorf("more than %d remotes", maxRemotes)
	}
	if len(c.Version) > 64 {
		return configMsg{}, errors.New("invalid config")
	}
	return c, nil
}

type configReply struct {
	Portlama int `json:"portlama"`
}

// remotesMsg is the payload of portlama-bind and portlama-unbind.
type remotesMsg struct {
	Remotes []string `json:"remotes"`
}

// parseRemotesMsg decodes a bind or unbind payload: 1 to maxRemotes
// remote strings of bounded length (their syntax is checked per remote).
func parseRemotesMsg(b []byte) ([]string, error) {
	if len(b) > maxPayload {
		return nil, errors.New("request too large")
	}
	var m remotesMsg
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, errors.New("invalid request: expected {\"remotes\":[...]}")
	}
	if len(m.Remotes) == 0 || len(m.Remotes) > maxRemotes {
		return nil, fmt.Errorf("invalid request: 1 to %d remotes expected", maxRemotes)
	}
	for _, r := range m.Remotes {
		if len(r) > maxRemoteLen {
			return nil, fmt.Errorf("invalid request: a remote is longer than %d characters", maxRemoteLen)
		}
	}
	return m.Remotes, nil
}

// BindResult is the server's answer for one remote of a bind request.
type BindResult struct {
	Remote string `json:"remote"`
	OK     bool   `json:"ok"`
	Code   string `json:"code,omitempty"`
	Error  string `json:"error,omitempty"`
}

type bindReply struct {
	Results []BindResult `json:"results"`
}

// parseBindReply decodes the answer to a bind request for want remotes:
// exactly one result per remote, in order, each either ok or with a code.
func parseBindReply(b []byte, want []string) ([]BindResult, error) {
	if len(b) > maxPayload {
		return nil, errors.New("bind answer too large")
	}
	var r bindReply
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, errors.New("invalid bind answer")
	}
	if len(r.Results) != len(want) {
		return nil, fmt.Errorf("bind answer has %d results for %d remotes", len(r.Results), len(want))
	}
	for i, res := range r.Results {
		if res.Remote != want[i] {
			return nil, fmt.Errorf("bind answer %d is for %q, not %q", i, res.Remote, want[i])
		}
		if !res.OK && res.Code == "" {
			return nil, fmt.Errorf("bind answer for %q has neither ok nor a code", res.Remote)
		}
		if len(res.Error) > 1024 || len(res.Code) > 32 {
			return nil, errors.New("invalid bind answer")
		}
	}
	return r.Results, nil
}

// unboundMsg is the payload of portlama-unbound.
type unboundMsg struct {
	Remote string `json:"remote"`
	Code   string `json:"code"`
	Error  string `json:"error"`
}

func parseUnbound(b []byte) (unboundMsg, error) {
	var m unboundMsg
	if len(b) > 4096 {
		return m, errors.New("unbound notice too large")
	}
	if err := json.Unmarshal(b, &m); err != nil || m.Remote == "" || m.Code == "" {
		return unboundMsg{}, errors.New("invalid unbound notice")
	}
	return m, nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own plain structs are marshalled
	}
	return b
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func itoa(n int) string { return strconv.Itoa(n) }
