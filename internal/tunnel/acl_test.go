package tunnel

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jpillora/chisel/share/settings"
)

// The interface internal/agents calls.
var _ interface {
	AddAgent(ctx context.Context, label string) error
	RemoveAgent(ctx context.Context, label string) error
} = (*ACL)(nil)

func TestACLOperations(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "acl.json")
	a := NewACL(path)

	f, err := a.Load()
	if err != nil || len(f.Agents) != 0 || f.Agents == nil {
		t.Fatalf("missing file: %+v, %v", f, err)
	}
	if err := a.AddAgent(ctx, "home"); err != nil {
		t.Fatal(err)
	}
	f, _ = a.Load()
	if len(f.Agents) != 1 || f.Agents[0].Label != "home" || !hex64Re.MatchString(f.Agents[0].Password) ||
		f.Agents[0].RelayPorts == nil || len(f.Agents[0].RelayPorts) != 0 {
		t.Fatalf("after AddAgent: %+v", f)
	}
	pw := f.Agents[0].Password
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("acl.json mode: %v, %v", fi.Mode(), err)
	}
	// Idempotent: password kept.
	if err := a.AddAgent(ctx, "home"); err != nil {
		t.Fatal(err)
	}
	if f, _ = a.Load(); len(f.Agents) != 1 || f.Agents[0].Password != pw {
		t.Fatalf("AddAgent not idempotent: %+v", f)
	}
	if err := a.AddAgent(ctx, "office"); err != nil {
		t.Fatal(err)
	}
	if f, _ = a.Load(); f.Agents[1].Password == pw {
		t.Fatal("two agents share a password")
	}
	if err := a.SetPorts(ctx, "home", []int{20003, 20001, 20003}); err != nil {
		t.Fatal(err)
	}
	f, _ = a.Load()
	if !slices.Equal(f.Agents[0].RelayPorts, []int{20001, 20003}) {
		t.Fatalf("ports = %v", f.Agents[0].RelayPorts)
	}
	if got := f.Agents[0].Pattern(); got != `^R:127\.0\.0\.1:(20001|20003)$` {
		t.Fatalf("pattern = %s", got)
	}
	if got := f.Agents[1].Pattern(); got != `^$` {
		t.Fatalf("pattern without ports = %s", got)
	}
	cred, err := a.Credential(ctx, "home")
	if err != nil || cred != "home:"+pw {
		t.Fatalf("Credential = %q, %v", cred, err)
	}

	// Denials.
	if err := a.SetPorts(ctx, "office", []int{20001}); err == nil {
		t.Fatal("SetPorts gave office a port home holds")
	}
	if err := a.SetPorts(ctx, "ghost", []int{20005}); !errors.Is(err, ErrUnknownAgent) {
		t.Fatalf("SetPorts unknown agent: %v", err)
	}
	if _, err := a.Credential(ctx, "ghost"); !errors.Is(err, ErrUnknownAgent) {
		t.Fatalf("Credential unknown agent: %v", err)
	}
	for _, p := range [][]int{{0}, {65536}, {-1}} {
		if err := a.SetPorts(ctx, "home", p); err == nil {
			t.Fatalf("SetPorts accepted %v", p)
		}
	}
	for _, l := range []string{"", "Home", "-x", "a:b", "a b", "!none", strings.Repeat("a", 64), "a\n"} {
		if err := a.AddAgent(ctx, l); err == nil {
			t.Fatalf("AddAgent accepted label %q", l)
		}
	}
	if f, _ = a.Load(); len(f.Agents) != 2 || !slices.Equal(f.Agents[0].RelayPorts, []int{20001, 20003}) {
		t.Fatalf("failed operations changed the file: %+v", f)
	}

	if err := a.RemoveAgent(ctx, "home"); err != nil {
		t.Fatal(err)
	}
	if err := a.RemoveAgent(ctx, "home"); err != nil {
		t.Fatalf("second RemoveAgent: %v", err)
	}
	if f, _ = a.Load(); len(f.Agents) != 1 || f.Agents[0].Label != "office" {
		t.Fatalf("after RemoveAgent: %+v", f)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := a.AddAgent(cctx, "late"); err == nil {
		t.Fatal("AddAgent ignored a cancelled context")
	}
}

func TestParseACLRejects(t *testing.T) {
	pw := strings.Repeat("ab", 32)
	for name, doc := range map[string]string{
		"not json":       `{`,
		"bad label":      `{"agents":[{"label":"A","password":"` + pw + `","relayPorts":[]}]}`,
		"short password": `{"agents":[{"label":"a","password":"abc","relayPorts":[]}]}`,
		"upper password": `{"agents":[{"label":"a","password":"` + strings.ToUpper(pw) + `","relayPorts":[]}]}`,
		"port zero":      `{"agents":[{"label":"a","password":"` + pw + `","relayPorts":[0]}]}`,
		"port too big":   `{"agents":[{"label":"a","password":"` + pw + `","relayPorts":[70000]}]}`,
		"duplicate":      `{"agents":[{"label":"a","password":"` + pw + `"},{"label":"a","password":"` + pw + `"}]}`,
		"shared port":    `{"agents":[{"label":"a","password":"` + pw + `","relayPorts":[1]},{"label":"b","password":"` + pw + `","relayPorts":[1]}]}`,
		"ports as text":  `{"agents":[{"label":"a","password":"` + pw + `","relayPorts":"1"}]}`,
	} {
		if _, err := ParseACL([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	f, err := ParseACL([]byte(`{"agents":[{"label":"a","password":"` + pw + `"}]}`))
	if err != nil || f.Agents[0].RelayPorts == nil {
		t.Fatalf("missing relayPorts: %+v, %v", f, err)
	}
}

func FuzzParseACL(f *testing.F) {
	pw := strings.Repeat("0f", 32)
	f.Add([]byte(`{"agents":[{"label":"home","password":"` + pw + `","relayPorts":[20001,20003]}]}`))
	f.Add([]byte(`{"agents":[{"label":"a","password":"` + pw + `","relayPorts":[]},{"label":"b-2","password":"` + pw + `","relayPorts":[65535]}]}`))
	f.Add([]byte(`{"agents":[]}`))
	f.Add([]byte(``))
	f.Add([]byte(`{"agents":[{"label":".*","password":"` + pw + `","relayPorts":[1]}]}`))
	f.Add([]byte(`{"agents":[{"label":"a","password":"` + pw + `","relayPorts":[1e3]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		acl, err := ParseACL(data)
		if err != nil {
			return
		}
		if err := acl.Validate(); err != nil {
			t.Fatalf("parsed ACL does not validate: %v", err)
		}
		for _, a := range acl.Agents {
			if !ValidLabel(a.Label) || a.RelayPorts == nil {
				t.Fatalf("bad agent after parse: %+v", a)
			}
			checkPattern(t, a)
		}
		// Round trip.
		out, err := json.Marshal(acl)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseACL(out)
		if err != nil || !reflect.DeepEqual(again, acl) {
			t.Fatalf("round trip: %+v, %v", again, err)
		}
	})
}

// checkPattern asserts the agent's chisel pattern is anchored, never empty
// and matches exactly "R:127.0.0.1:<p>" for its ports.
func checkPattern(t *testing.T, a ACLAgent) {
	t.Helper()
	pat := a.Pattern()
	if pat == "" || !strings.HasPrefix(pat, "^") || !strings.HasSuffix(pat, "$") {
		t.Fatalf("pattern %q not anchored", pat)
	}
	re := regexp.MustCompile(pat)
	if re.MatchString("") != (len(a.RelayPorts) == 0) {
		// ^$ matches only the empty address, which chisel never produces.
		if len(a.RelayPorts) != 0 {
			t.Fatalf("pattern %q matches the empty string", pat)
		}
	}
	for _, p := range a.RelayPorts {
		if !re.MatchString("R:127.0.0.1:" + strconv.Itoa(p)) {
			t.Fatalf("pattern %q misses own port %d", pat, p)
		}
		for _, bad := range []string{"R:0.0.0.0:", "R:127.0.0.10:", "R:127.0.0.1:1", "127.0.0.1:", "R:127x0x0x1:", "socks"} {
			addr := bad + strconv.Itoa(p)
			if re.MatchString(addr) && !slices.Contains(a.RelayPorts, atoiSuffix(addr)) {
				t.Fatalf("pattern %q matches %q", pat, addr)
			}
		}
	}
}

func atoiSuffix(addr string) int {
	i := strings.LastIndex(addr, ":")
	n, err := strconv.Atoi(addr[i+1:])
	if err != nil || !strings.HasPrefix(addr, "R:127.0.0.1:") || addr != "R:127.0.0.1:"+strconv.Itoa(n) {
		return -1
	}
	return n
}

// FuzzRemoteAccess checks the remote → port decision exactly as the server
// takes it for a stock client's configuration: chisel decodes the remote,
// checkSpec validates it and the port must be in the agent's list. Whatever
// the string, acceptance must mean "reverse TCP remote listening on
// 127.0.0.1 on one of the agent's ports".
func FuzzRemoteAccess(f *testing.F) {
	f.Add("R:127.0.0.1:20001:127.0.0.1:8080", uint16(20001), uint16(20003))
	f.Add("R:127.0.0.1:20003:[fd00::5]:8080", uint16(20001), uint16(20003))
	f.Add("R:127.0.0.1:20002:127.0.0.1:8080", uint16(20001), uint16(20003))
	f.Add("R:0.0.0.0:20001:127.0.0.1:8080", uint16(20001), uint16(0))
	f.Add("R:20001:127.0.0.1:8080", uint16(20001), uint16(0))
	f.Add("127.0.0.1:20001:127.0.0.1:3100", uint16(20001), uint16(0))
	f.Add("R:127.0.0.1:20001:socks", uint16(20001), uint16(0))
	f.Add("socks", uint16(0), uint16(0))
	f.Add("R:127.0.0.1:020001:x:1", uint16(20001), uint16(0))
	f.Add("R:127.0.0.1:20001/udp:127.0.0.1:53/udp", uint16(20001), uint16(0))
	f.Fuzz(func(t *testing.T, rem string, p1, p2 uint16) {
		var ports []int
		for _, p := range []uint16{p1, p2} {
			if p != 0 {
				ports = append(ports, int(p))
			}
		}
		spec, err := settings.DecodeRemote(rem)
		if err != nil {
			return
		}
		r, ref := checkSpec(spec)
		if ref != nil {
			if ref.code != CodeInvalid || !strings.HasPrefix(ref.msg, "access to '") {
				t.Fatalf("%q refused with %+v", rem, ref)
			}
			return
		}
		if !spec.Reverse || spec.LocalHost != "127.0.0.1" || spec.Socks || spec.Stdio || spec.LocalProto == "udp" {
			t.Fatalf("%q accepted: %+v", rem, spec)
		}
		if strconv.Itoa(r.RelayPort) != spec.LocalPort {
			t.Fatalf("%q: relay port %d from %q", rem, r.RelayPort, spec.LocalPort)
		}
		if containsPort(ports, r.RelayPort) != slices.Contains(ports, r.RelayPort) {
			t.Fatal("containsPort disagrees")
		}
		again, err := ParseRemote(r.String())
		if err != nil || again != r {
			t.Fatalf("canonical form %q of %q does not parse back: %+v %v", r.String(), rem, again, err)
		}
	})
}
