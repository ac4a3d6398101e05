package discover

import (
	"bufio"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// parseLsof parses the table of `lsof -nP -iTCP -sTCP:LISTEN` (macOS):
//
//	COMMAND   PID USER   FD   TYPE             DEVICE SIZE/OFF NODE NAME
//	node    12345 me   23u  IPv6 0x1c2e7b1a2d3f4e60      0t0  TCP [::1]:5173 (LISTEN)
//
// lsof escapes spaces in COMMAND as \x20, so the columns split on blanks;
// NAME is the second-to-last column. Lines that do not parse are skipped.
func parseLsof(r io.Reader) []Listener {
	var out []Listener
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 9 || f[len(f)-1] != "(LISTEN)" || f[len(f)-3] != "TCP" {
			continue
		}
		pid, err := strconv.Atoi(f[1])
		if err != nil || pid <= 0 {
			continue
		}
		addr, port, ok := parseHostPort(f[len(f)-2])
		if !ok {
			continue
		}
		out = append(out, Listener{Addr: addr, Port: port, PID: pid, Process: cleanProcess(f[0])})
	}
	return out
}

// parseHostPort parses lsof's "*:3000", "127.0.0.1:8888", "[::1]:5173".
func parseHostPort(s string) (netip.Addr, int, bool) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return netip.Addr{}, 0, false
	}
	host, p := s[:i], s[i+1:]
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil || port == 0 {
		return netip.Addr{}, 0, false
	}
	var addr netip.Addr
	switch host {
	case "*":
		addr = netip.IPv6Unspecified()
	default:
		addr, err = netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
		if err != nil {
			return netip.Addr{}, 0, false
		}
	}
	return addr.Unmap(), int(port), true
}
