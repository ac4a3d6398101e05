package tunnel

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/jpillora/chisel/share/settings"
)

// Refusal codes of a bind answer and of an unbind notice: values the client
// acts on (the message beside them is for people).
const (
	// CodeDenied: the agent's ACL does not allow this relay port.
	CodeDenied = "denied"
	// CodeInvalid: not a reverse TCP remote 127.0.0.1:<port> → host:port.
	CodeInvalid = "invalid"
	// CodeBusy: the relay could not listen on the port (something else
	// holds it).
	CodeBusy = "busy"
	// CodeMoved: another session of the same agent took the port over.
	CodeMoved = "moved"
	// CodeRemoved: the ACL no longer allows the port (tunnel disabled,
	// deleted or re-ported).
	CodeRemoved = "removed"
)

// Remote is a reverse tunnel remote as the tunnel server accepts it: the
// relay listens on 127.0.0.1:RelayPort and hands each connection to the
// agent, which connects it to Target.
type Remote struct {
	RelayPort int
	// Target is "host:port" on the agent's side (an IPv6 host in
	// brackets), exactly the extra data of the channels the relay opens.
	Target string
}

// String is the canonical chisel form: R:127.0.0.1:<port>:<host>:<port>.
func (r Remote) String() string {
	return "R:127.0.0.1:" + strconv.Itoa(r.RelayPort) + ":" + r.Target
}

// userAddr is what chisel matches ACLs against and quotes in refusals.
func (r Remote) userAddr() string { return "R:127.0.0.1:" + strconv.Itoa(r.RelayPort) }

// refusal is a rejected remote: a code and chisel's own text for it (a
// stock client shows "server: <msg>").
type refusal struct {
	code, msg string
}

func (r *refusal) Error() string { return r.msg }

func denied(addr string) string { return fmt.Sprintf("access to '%s' denied", addr) }

// ParseRemote decodes a chisel remote string and checks that it is one the
// tunnel server can accept: reverse, TCP, listening on exactly 127.0.0.1
// with a canonical port, to a plain host or bracketed IPv6 address and
// port. Whether the agent may use the port is the server's ACL decision.
func ParseRemote(s string) (Remote, error) {
	if len(s) > maxRemoteLen {
		return Remote{}, fmt.Errorf("tunnel remote is longer than %d characters", maxRemoteLen)
	}
	spec, err := settings.DecodeRemote(s)
	if err != nil {
		return Remote{}, fmt.Errorf("tunnel remote %q: %v", s, err)
	}
	r, ref := checkSpec(spec)
	if ref != nil {
		return Remote{}, fmt.Errorf("tunnel remote %q: %s", s, ref.msg)
	}
	return r, nil
}

// maxRemoteLen bounds a remote string (a 253-character host name fits).
const maxRemoteLen = 300

// checkSpec validates a decoded chisel remote (from a stock client's config
// or from ParseRemote). Everything that is not a reverse TCP remote on
// 127.0.0.1 is refused with the text chisel uses for an ACL denial.
func checkSpec(r *settings.Remote) (Remote, *refusal) {
	if r == nil {
		return Remote{}, &refusal{CodeInvalid, "invalid remote"}
	}
	addr := r.UserAddr()
	bad := func() (Remote, *refusal) {
		a := addr
		if r.LocalProto == "udp" || r.RemoteProto == "udp" {
			a += "/udp"
		}
		return Remote{}, &refusal{CodeInvalid, denied(a)}
	}
	if !r.Reverse || r.Socks || r.Stdio {
		return bad()
	}
	if !tcpProto(r.LocalProto) || !tcpProto(r.RemoteProto) {
		return bad()
	}
	if r.LocalHost != "127.0.0.1" {
		return bad()
	}
	port, ok := canonicalPort(r.LocalPort)
	if !ok {
		return bad()
	}
	if _, ok := canonicalPort(r.RemotePort); !ok || !validTargetHost(r.RemoteHost) {
		return bad()
	}
	return Remote{RelayPort: port, Target: r.RemoteHost + ":" + r.RemotePort}, nil
}

func tcpProto(p string) bool { return p == "" || p == "tcp" }

// canonicalPort accepts 1–65535 written without sign or leading zeros.
func canonicalPort(s string) (int, bool) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != s {
		return 0, false
	}
	return n, true
}

// validTargetHost accepts a DNS name or IPv4 address (letters, digits,
// dots, hyphens; not only digits, which chisel's remote syntax would read
// as a port) or an IPv6 address in brackets without a zone.
func validTargetHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	if strings.HasPrefix(h, "[") {
		inner, ok := strings.CutSuffix(h[1:], "]")
		if !ok {
			return false
		}
		a, err := netip.ParseAddr(inner)
		return err == nil && a.Is6() && a.Zone() == ""
	}
	digits := true
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return false
		}
		digits = digits && c >= '0' && c <= '9'
	}
	return !digits
}
