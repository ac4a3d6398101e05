package discover

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// tcpListen is the LISTEN state in /proc/net/tcp.
const tcpListen = "0A"

// procSocket is a listening socket of /proc/net/tcp{,6}.
type procSocket struct {
	Addr  netip.Addr
	Port  int
	Inode uint64
}

// parseProcNetTCP parses /proc/net/tcp or tcp6 and returns its listening
// sockets. Lines that do not parse are skipped: the kernel's format is
// fixed, a line we cannot read is no listener we can show.
func parseProcNetTCP(r io.Reader) ([]procSocket, error) {
	var out []procSocket
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue // header
		}
		f := strings.Fields(sc.Text())
		if len(f) < 10 || f[3] != tcpListen {
			continue
		}
		addr, port, ok := parseProcAddr(f[1])
		if !ok {
			continue
		}
		inode, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil {
			continue
		}
		out = append(out, procSocket{Addr: addr, Port: port, Inode: inode})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read the socket table: %w", err)
	}
	return out, nil
}

// parseProcAddr parses "0100007F:1F90": the address in hex as the kernel
// stores it (each 32-bit word in host byte order, little-endian on the
// machines we run on), the port in big-endian hex.
func parseProcAddr(s string) (netip.Addr, int, bool) {
	ip, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.Addr{}, 0, false
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil || len(p) != 4 {
		return netip.Addr{}, 0, false
	}
	b, err := hex.DecodeString(ip)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return netip.Addr{}, 0, false
	}
	for w := 0; w < len(b); w += 4 {
		b[w], b[w+1], b[w+2], b[w+3] = b[w+3], b[w+2], b[w+1], b[w]
	}
	addr, _ := netip.AddrFromSlice(b)
	return addr.Unmap(), int(port), true
}

// procOwners maps socket inodes to the owning process by reading the
// /proc/<pid>/fd links this user may read (its own processes; root sees
// all). Unreadable processes are skipped.
func procOwners(root string, want map[uint64]bool) map[uint64]Listener {
	out := map[uint64]Listener{}
	ents, err := os.ReadDir(root)
	if err != nil {
		return out
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		fdDir := filepath.Join(root, e.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue
		}
		var name string
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil || !strings.HasPrefix(link, "socket:[") {
				continue
			}
			inode, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]"), 10, 64)
			if err != nil || !want[inode] {
				continue
			}
			if name == "" {
				name = readComm(root, e.Name())
			}
			out[inode] = Listener{PID: pid, Process: name}
		}
	}
	return out
}

func readComm(root, pid string) string {
	b, err := os.ReadFile(filepath.Join(root, pid, "comm"))
	if err != nil {
		return ""
	}
	return cleanProcess(string(bytes.TrimSpace(b)))
}

// procListeners reads the listening sockets under root (normally /proc).
func procListeners(root string) ([]Listener, error) {
	var socks []procSocket
	found := false
	for _, name := range []string{"tcp", "tcp6"} {
		f, err := os.Open(filepath.Join(root, "net", name))
		if errors.Is(err, os.ErrNotExist) {
			continue // no IPv6 in this kernel
		}
		if err != nil {
			return nil, fmt.Errorf("open the socket table: %w", err)
		}
		s, err := parseProcNetTCP(f)
		f.Close()
		if err != nil {
			return nil, err
		}
		found = true
		socks = append(socks, s...)
	}
	if !found {
		return nil, fmt.Errorf("no socket table under %s", root)
	}
	want := map[uint64]bool{}
	for _, s := range socks {
		want[s.Inode] = true
	}
	owners := procOwners(root, want)
	out := make([]Listener, 0, len(socks))
	for _, s := range socks {
		o := owners[s.Inode]
		out = append(out, Listener{Addr: s.Addr, Port: s.Port, PID: o.PID, Process: o.Process})
	}
	return out, nil
}
