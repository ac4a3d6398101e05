package api

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

func FuzzRemote(f *testing.F) {
	f.Add(20000, "127.0.0.1", 8080)
	f.Add(20001, "fd00::5", 65535)
	f.Add(1, "example.com", 1024)
	f.Fuzz(func(t *testing.T, relay int, host string, port int) {
		r := AgentTunnel{RelayPort: relay, TargetHost: host, Port: port}.Remote()
		if !strings.HasPrefix(r, "R:127.0.0.1:"+strconv.Itoa(relay)+":") {
			t.Fatalf("remote %q does not bind the relay port on loopback", r)
		}
		if !strings.HasSuffix(r, ":"+strconv.Itoa(port)) {
			t.Fatalf("remote %q does not end in the local port", r)
		}
	})
}

func TestRemoteAndLocal(t *testing.T) {
	for _, c := range []struct {
		t             AgentTunnel
		remote, local string
	}{
		{AgentTunnel{RelayPort: 20000, Port: 8080}, "R:127.0.0.1:20000:127.0.0.1:8080", "127.0.0.1:8080"},
		{AgentTunnel{RelayPort: 20001, TargetHost: "fd00::5", Port: 8081}, "R:127.0.0.1:20001:[fd00::5]:8081", "[fd00::5]:8081"},
		{AgentTunnel{RelayPort: 20002, TargetHost: "nas.lan", Port: 9000}, "R:127.0.0.1:20002:nas.lan:9000", "nas.lan:9000"},
	} {
		if got := c.t.Remote(); got != c.remote {
			t.Errorf("Remote() = %q, want %q", got, c.remote)
		}
		if got := c.t.Local(); got != c.local {
			t.Errorf("Local() = %q, want %q", got, c.local)
		}
	}
}

// The error envelope keeps the contract's keys, and errors.Is matches on
// status and message.
func TestErrorEnvelope(t *testing.T) {
	e := NewError(400, MsgValidation).WithDetails(ValidationDetails{Issues: []Issue{{Path: []any{"port"}, Message: "Expected integer"}}})
	data, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != `{"details":{"issues":[{"path":["port"],"message":"Expected integer"}]},"error":"Validation failed"}` {
		t.Fatalf("envelope %s", data)
	}
	var back Error
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	back.Status = 400
	var d ValidationDetails
	if !back.DecodeDetails(&d) || d.Issues[0].Path[0] != "port" {
		t.Fatalf("details %+v", d)
	}
	if !back.Is(ErrValidation) || back.Is(ErrNotFound) || !back.Is(&Error{Status: 400}) || back.Is(&Error{Status: 404}) {
		t.Fatal("Is does not match on status and message")
	}
	withKeys, _ := json.Marshal(&Error{Status: 503, Message: MsgOnboardingPending, OnboardingStatus: StatusFresh})
	if string(withKeys) != `{"error":"Onboarding not complete","onboardingStatus":"FRESH"}` {
		t.Fatalf("route key: %s", withKeys)
	}
	if s := NewError(500, "Failed to x").WithDetails("step: boom").DetailText(); s != "step: boom" {
		t.Fatalf("DetailText %q", s)
	}
}
