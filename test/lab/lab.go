// Package lab builds a small internet on one Linux machine for tests that
// must run the relay the way users run it: a booted systemd "droplet"
// (Debian 12 by debootstrap, under systemd-nspawn) on a public-looking
// address, plain hosts on the same network (a visitor, an attacker), and a
// "home" behind a NAT router that accepts no inbound connections.
//
//	l := lab.New(t, lab.Options{})
//	rootfs := l.Rootfs(ctx, lab.DropletPackages)          // cached by package list
//	d := l.Droplet(ctx, lab.DropletConfig{Rootfs: rootfs}) // booted, waited for
//	visitor := l.Host("visitor", lab.VisitorAddr)
//	home := l.NATHome("home")
//	d.CopyIn(bin, "/root/portlama", 0o755)
//	out, err := d.Run(ctx, "/root/portlama", "install", "--dev")
//	client := home.HTTPClient(tlsConfig)                   // dials from inside home
//	d.Reboot(ctx)
//
// Everything is torn down by t.Cleanup. It needs root, ip, nft,
// debootstrap and systemd-nspawn (scripts/deps.sh --lab); under CI=true a
// missing tool fails the test instead of skipping it.
package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/system"
	"github.com/portlama/portlama/internal/testutil"
)

// The lab's internet: one bridge, 203.0.113.0/24 (TEST-NET-3, so it can
// never collide with a real network).
var (
	WANPrefix    = netip.MustParsePrefix("203.0.113.0/24")
	GatewayAddr  = netip.MustParseAddr("203.0.113.1")
	DropletAddr  = netip.MustParseAddr("203.0.113.10")
	VisitorAddr  = netip.MustParseAddr("203.0.113.20")
	AttackerAddr = netip.MustParseAddr("203.0.113.30")
	RouterAddr   = netip.MustParseAddr("203.0.113.40")
	HomePrefix   = netip.MustParsePrefix("192.168.77.0/24")
	HomeGateway  = netip.MustParseAddr("192.168.77.1")
	HomeAddr     = netip.MustParseAddr("192.168.77.10")
	// HomeServerAddr is the home's booted machine (the agent's service).
	HomeServerAddr = netip.MustParseAddr("192.168.77.11")
)

// Options configure a lab.
type Options struct {
	// CacheDir keeps built root file systems between runs; default
	// /var/cache/portlama-lab (PORTLAMA_LAB_CACHE overrides).
	CacheDir string
	// Mirror is the Debian mirror for debootstrap; default: the host's
	// (PORTLAMA_LAB_MIRROR overrides), else deb.debian.org.
	Mirror string
}

// Lab is one lab network and what runs on it.
type Lab struct {
	t      testing.TB
	opts   Options
	prefix string // unique per lab: names of namespaces and host links
	wan    string // namespace with the bridge
	dir    string // per-run directory (overlays, logs)
	Report *Report

	mu       sync.Mutex
	cleanups []func()
	hosts    map[string]*Host
	lans     map[string]segment
	links    int
	cgroupMu sync.Mutex // serialises the cgroup move around starting a container
}

// tools the lab needs on the host.
var tools = []string{"ip", "nft", "debootstrap", "systemd-nspawn", "nsenter", "mount", "umount"}

// New creates the lab's network (a namespace with the internet bridge) and
// registers its teardown. It skips the test when not root, unless CI=true.
func New(t testing.TB, opts Options) *Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("the lab needs root")
		}
		t.Skip("the lab needs root")
	}
	for _, tool := range tools {
		testutil.NeedBinary(t, tool)
	}
	if opts.CacheDir == "" {
		opts.CacheDir = os.Getenv("PORTLAMA_LAB_CACHE")
	}
	if opts.CacheDir == "" {
		opts.CacheDir = "/var/cache/portlama-lab"
	}
	if opts.Mirror == "" {
		opts.Mirror = os.Getenv("PORTLAMA_LAB_MIRROR")
	}
	if opts.Mirror == "" {
		opts.Mirror = hostMirror()
	}
	sweep(t.Logf)
	b := make([]byte, 2)
	rand.Read(b)
	l := &Lab{t: t, opts: opts, prefix: "pl" + hex.EncodeToString(b), hosts: map[string]*Host{}, lans: map[string]segment{}, Report: NewReport()}
	dir, err := os.MkdirTemp("/var/tmp", "portlama-lab-")
	if err != nil {
		t.Fatal(err)
	}
	l.dir = dir
	t.Cleanup(l.close)
	if err := l.register(); err != nil {
		t.Fatal(err)
	}
	l.wan = l.prefix + "-wan"
	ctx := context.Background()
	l.must(ctx, "ip", "netns", "add", l.wan)
	l.onClose(func() { l.quiet("ip", "netns", "del", l.wan) })
	l.must(ctx, "ip", "-n", l.wan, "link", "set", "lo", "up")
	l.must(ctx, "ip", "-n", l.wan, "link", "add", "br0", "type", "bridge")
	l.must(ctx, "ip", "-n", l.wan, "addr", "add", prefixed(GatewayAddr, WANPrefix), "dev", "br0")
	l.must(ctx, "ip", "-n", l.wan, "link", "set", "br0", "up")
	return l
}

// Logf logs through the test.
func (l *Lab) Logf(format string, args ...any) { l.t.Helper(); l.t.Logf(format, args...) }

func (l *Lab) onClose(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cleanups = append(l.cleanups, f)
}

func (l *Lab) close() {
	l.mu.Lock()
	fs := l.cleanups
	l.cleanups = nil
	l.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
	if l.t.Failed() {
		l.t.Logf("lab files kept in %s", l.dir)
		return
	}
	os.RemoveAll(l.dir)
}

// must runs a host command or fails the test.
func (l *Lab) must(ctx context.Context, argv ...string) []byte {
	l.t.Helper()
	out, err := run(ctx, argv...)
	if err != nil {
		l.t.Fatal(err)
	}
	return out
}

// quiet runs a teardown command, logging a failure.
func (l *Lab) quiet(argv ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := run(ctx, argv...); err != nil {
		l.t.Logf("lab teardown: %v", err)
	}
}

// run runs argv on the host and returns its combined output.
func run(ctx context.Context, argv ...string) ([]byte, error) {
	return system.Run(ctx, nil, argv...)
}

func prefixed(a netip.Addr, p netip.Prefix) string {
	return netip.PrefixFrom(a, p.Bits()).String()
}

// hostMirror reads the host's Debian mirror from its apt sources.
func hostMirror() string {
	for _, f := range []string{"/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			line = strings.TrimSpace(line)
			var uri string
			if rest, ok := strings.CutPrefix(line, "URIs:"); ok {
				uri = strings.Fields(rest + " x")[0]
			} else if f := strings.Fields(line); len(f) >= 3 && f[0] == "deb" {
				uri = f[1]
				if strings.HasPrefix(uri, "[") {
					uri = f[2]
				}
			}
			if strings.HasPrefix(uri, "http") && !strings.Contains(uri, "security") {
				return strings.TrimRight(uri, "/")
			}
		}
	}
	return "http://deb.debian.org/debian"
}

// segment is a network machines attach to: a bridge in a namespace.
type segment struct {
	ns, bridge string
	prefix     netip.Prefix
	gw         netip.Addr
}

// internet is the lab's public network.
func (l *Lab) internet() segment {
	return segment{ns: l.wan, bridge: "br0", prefix: WANPrefix, gw: GatewayAddr}
}

// attach links namespace ns to seg: a veth named ifname inside ns with
// addr, and a default route through the segment's gateway.
func (l *Lab) attach(ctx context.Context, seg segment, ns, ifname string, addr netip.Addr) {
	l.t.Helper()
	if !seg.prefix.Contains(addr) {
		l.t.Fatalf("lab: %s is not in %s", addr, seg.prefix)
	}
	l.mu.Lock()
	l.links++
	hostEnd := fmt.Sprintf("%s-v%d", l.prefix, l.links) // at most 15 characters
	peer := fmt.Sprintf("%s-p%d", l.prefix, l.links)
	l.mu.Unlock()
	l.must(ctx, "ip", "link", "add", hostEnd, "type", "veth", "peer", "name", peer)
	l.must(ctx, "ip", "link", "set", peer, "netns", ns)
	l.must(ctx, "ip", "-n", ns, "link", "set", peer, "name", ifname)
	l.must(ctx, "ip", "link", "set", hostEnd, "netns", seg.ns)
	l.must(ctx, "ip", "-n", seg.ns, "link", "set", hostEnd, "master", seg.bridge, "up")
	l.must(ctx, "ip", "-n", ns, "addr", "add", prefixed(addr, seg.prefix), "dev", ifname)
	l.must(ctx, "ip", "-n", ns, "link", "set", ifname, "up")
	l.must(ctx, "ip", "-n", ns, "link", "set", "lo", "up")
	l.must(ctx, "ip", "-n", ns, "route", "add", "default", "via", seg.gw.String())
}

// newNS creates a network namespace that the lab removes at the end.
func (l *Lab) newNS(ctx context.Context, name string) string {
	l.t.Helper()
	ns := l.prefix + "-" + name
	l.must(ctx, "ip", "netns", "add", ns)
	l.onClose(func() { l.quiet("ip", "netns", "del", ns) })
	return ns
}

// Host adds a plain machine on the lab's internet: a network namespace
// with addr (processes there use the host's file system).
func (l *Lab) Host(name string, addr netip.Addr) *Host {
	l.t.Helper()
	return l.addHost(l.internet(), name, addr)
}

func (l *Lab) addHost(seg segment, name string, addr netip.Addr) *Host {
	l.t.Helper()
	ctx := context.Background()
	h := &Host{Name: name, NS: l.newNS(ctx, name), Addr: addr}
	l.attach(ctx, seg, h.NS, "eth0", addr)
	l.mu.Lock()
	l.hosts[name] = h
	l.mu.Unlock()
	return h
}

// NATHome adds a home network: a router on the internet at RouterAddr
// that masquerades the home's traffic and accepts no inbound connection,
// its LAN HomePrefix, and a machine on it at HomeAddr, which it returns.
// More machines join the LAN with LANHost or DropletConfig.LAN.
func (l *Lab) NATHome(name string) *Host {
	l.t.Helper()
	ctx := context.Background()
	router := &Host{Name: name + "-router", NS: l.newNS(ctx, name+"-rt"), Addr: RouterAddr}
	l.attach(ctx, l.internet(), router.NS, "wan0", RouterAddr)
	l.must(ctx, "ip", "-n", router.NS, "link", "add", "lan0", "type", "bridge")
	l.must(ctx, "ip", "-n", router.NS, "addr", "add", prefixed(HomeGateway, HomePrefix), "dev", "lan0")
	l.must(ctx, "ip", "-n", router.NS, "link", "set", "lan0", "up")
	l.must(ctx, "ip", "netns", "exec", router.NS, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	rules := `table inet nat {
	chain postrouting { type nat hook postrouting priority srcnat; oifname "wan0" masquerade; }
}
table inet filter {
	chain input { type filter hook input priority filter; policy drop;
		iifname "lo" accept; ct state established,related accept; iifname "lan0" accept; }
	chain forward { type filter hook forward priority filter; policy drop;
		ct state established,related accept; iifname "lan0" oifname "wan0" accept; }
}
`
	rf := filepath.Join(l.dir, name+"-router.nft")
	if err := os.WriteFile(rf, []byte(rules), 0o600); err != nil {
		l.t.Fatal(err)
	}
	l.must(ctx, "ip", "netns", "exec", router.NS, "nft", "-f", rf)
	l.mu.Lock()
	l.hosts[router.Name] = router
	l.lans[name] = segment{ns: router.NS, bridge: "lan0", prefix: HomePrefix, gw: HomeGateway}
	l.mu.Unlock()
	return l.LANHost(name, name, HomeAddr)
}

// LANHost adds a machine to the LAN of NAT home home.
func (l *Lab) LANHost(home, name string, addr netip.Addr) *Host {
	l.t.Helper()
	return l.addHost(l.lan(home), name, addr)
}

func (l *Lab) lan(home string) segment {
	l.t.Helper()
	l.mu.Lock()
	seg, ok := l.lans[home]
	l.mu.Unlock()
	if !ok {
		l.t.Fatalf("lab: no NAT home %q", home)
	}
	return seg
}
