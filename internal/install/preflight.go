package install

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

func (in *Installer) checkRoot(context.Context) (Result, error) {
	if os.Geteuid() != 0 {
		return Result{}, fmt.Errorf("%w: portlama install must run as root (try: sudo %s install)", ErrRefused, os.Args[0])
	}
	return done(false, "running as root")
}

// OSRelease is the part of /etc/os-release the installer reads.
type OSRelease struct {
	ID, VersionID, PrettyName string
}

// ParseOSRelease reads os-release(5) text.
func ParseOSRelease(text string) OSRelease {
	var r OSRelease
	for _, line := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		} else {
			v = strings.Trim(v, `"'`)
		}
		switch k {
		case "ID":
			r.ID = v
		case "VERSION_ID":
			r.VersionID = v
		case "PRETTY_NAME":
			r.PrettyName = v
		}
	}
	return r
}

// Supported reports the systems the installer supports: Ubuntu 24.04 and
// Debian 12.
func (r OSRelease) Supported() bool {
	return r.ID == "ubuntu" && r.VersionID == "24.04" || r.ID == "debian" && r.VersionID == "12"
}

func (in *Installer) checkOS(context.Context) (Result, error) {
	data, err := os.ReadFile(in.paths.OSRelease)
	if err != nil {
		return Result{}, fmt.Errorf("%w: cannot tell which system this is (%v); Portlama supports Ubuntu 24.04 and Debian 12", ErrRefused, err)
	}
	r := ParseOSRelease(string(data))
	if !r.Supported() {
		name := r.PrettyName
		if name == "" {
			name = r.ID + " " + r.VersionID
		}
		return Result{}, fmt.Errorf("%w: this is %s; Portlama installs on Ubuntu 24.04 and Debian 12 only (use a fresh VPS with one of them)", ErrRefused, strings.TrimSpace(name))
	}
	return done(false, "%s", r.PrettyName)
}

// nonPublic are IPv4 ranges that cannot be a relay's public address:
// private (RFC 1918), shared (CGNAT), loopback, link-local, documentation,
// benchmarking, multicast and reserved.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("224.0.0.0/3"),
}

// IsPublicIPv4 reports whether a is a public unicast IPv4 address.
func IsPublicIPv4(a netip.Addr) bool {
	if !a.Is4() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// MetadataSource is a cloud provider's instance metadata endpoint that
// answers the public IPv4 as text.
type MetadataSource struct {
	Name    string
	URL     string
	Headers map[string]string
	// TokenURL, when set, is fetched first with PUT (AWS IMDSv2); the
	// answer goes into the TokenHeader of the real request.
	TokenURL    string
	TokenHeader string
}

// MetadataSources are the providers asked, in order.
var MetadataSources = []MetadataSource{
	{Name: "DigitalOcean", URL: "http://169.254.169.254/metadata/v1/interfaces/public/0/ipv4/address"},
	{Name: "Hetzner", URL: "http://169.254.169.254/hetzner/v1/metadata/public-ipv4"},
	{Name: "AWS", URL: "http://169.254.169.254/latest/meta-data/public-ipv4", TokenURL: "http://169.254.169.254/latest/api/token", TokenHeader: "X-aws-ec2-metadata-token"},
	{Name: "Google Cloud", URL: "http://169.254.169.254/computeMetadata/v1/instance/network-interfaces/0/access-configs/0/external-ip", Headers: map[string]string{"Metadata-Flavor": "Google"}},
	{Name: "Azure", URL: "http://169.254.169.254/metadata/instance/network/interface/0/ipv4/ipAddress/0/publicIpAddress?api-version=2021-02-01&format=text", Headers: map[string]string{"Metadata": "true"}},
}

// MetadataIP asks the metadata sources for the public IPv4, all at once
// with a short timeout (off a cloud, or on another provider's, the others
// do not answer), and returns the first valid answer in the order of
// sources, with its source.
func MetadataIP(ctx context.Context, client *http.Client, sources []MetadataSource) (netip.Addr, string) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	results := make([]netip.Addr, len(sources))
	var wg sync.WaitGroup
	for i, s := range sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if a, err := askMetadata(ctx, client, s); err == nil {
				results[i] = a
			}
		}()
	}
	wg.Wait()
	for i, a := range results {
		if a.IsValid() {
			return a, sources[i].Name
		}
	}
	return netip.Addr{}, ""
}

func askMetadata(ctx context.Context, client *http.Client, s MetadataSource) (netip.Addr, error) {
	get := func(method, url string, hdr map[string]string) (string, error) {
		req, err := http.NewRequestWithContext(ctx, method, url, nil)
		if err != nil {
			return "", err
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 256))
		if err != nil {
			return "", err
		}
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("%s: %s", url, resp.Status)
		}
		return strings.TrimSpace(string(body)), nil
	}
	hdr := map[string]string{}
	for k, v := range s.Headers {
		hdr[k] = v
	}
	if s.TokenURL != "" {
		tok, err := get(http.MethodPut, s.TokenURL, map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "60"})
		if err != nil {
			return netip.Addr{}, err
		}
		hdr[s.TokenHeader] = tok
	}
	text, err := get(http.MethodGet, s.URL, hdr)
	if err != nil {
		return netip.Addr{}, err
	}
	a, err := netip.ParseAddr(text)
	if err != nil || !a.Is4() {
		return netip.Addr{}, fmt.Errorf("%s answered %q, not an IPv4 address", s.Name, text)
	}
	return a, nil
}

// InterfaceIP picks the relay's address from the network interfaces: an
// address of the default route's interface first, public before
// non-public, then any other interface's.
func InterfaceIP(routes string, ifaces []InterfaceAddrs) (netip.Addr, bool) {
	def := defaultRouteIface(routes)
	var best netip.Addr
	bestScore := -1
	for _, ifc := range ifaces {
		for _, a := range ifc.Addrs {
			if !a.Is4() || a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsUnspecified() {
				continue
			}
			score := 0
			if IsPublicIPv4(a) {
				score += 2
			}
			if ifc.Name == def {
				score++
			}
			if score > bestScore {
				best, bestScore = a, score
			}
		}
	}
	return best, bestScore >= 0
}

// InterfaceAddrs is one interface's addresses.
type InterfaceAddrs struct {
	Name  string
	Addrs []netip.Addr
}

// defaultRouteIface reads /proc/net/route text and returns the interface of
// the IPv4 default route.
func defaultRouteIface(routes string) string {
	sc := bufio.NewScanner(strings.NewReader(routes))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 8 && f[1] == "00000000" && f[7] == "00000000" {
			return f[0]
		}
	}
	return ""
}

func systemInterfaces() ([]InterfaceAddrs, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []InterfaceAddrs
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		ia := InterfaceAddrs{Name: ifc.Name}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok {
					ia.Addrs = append(ia.Addrs, ip.Unmap())
				}
			}
		}
		out = append(out, ia)
	}
	return out, nil
}

func (in *Installer) detectIP(ctx context.Context) (Result, error) {
	var a netip.Addr
	var source string
	if in.opts.IP != "" {
		var err error
		if a, err = netip.ParseAddr(in.opts.IP); err != nil || !a.Is4() {
			return Result{}, fmt.Errorf("%w: --ip %q is not an IPv4 address", ErrRefused, in.opts.IP)
		}
		source = "--ip"
	}
	if !a.IsValid() {
		a, source = MetadataIP(ctx, in.http, MetadataSources)
		if a.IsValid() {
			source += " metadata"
		}
	}
	if !a.IsValid() {
		routes, _ := os.ReadFile(in.paths.ProcDir + "/net/route")
		ifaces, err := systemInterfaces()
		if err != nil {
			return Result{}, fmt.Errorf("list network interfaces: %w", err)
		}
		var ok bool
		if a, ok = InterfaceIP(string(routes), ifaces); !ok {
			return Result{}, fmt.Errorf("%w: found no IPv4 address on this machine; give it with --ip", ErrRefused)
		}
		source = "network interfaces"
	}
	if !IsPublicIPv4(a) && !in.opts.Dev {
		return Result{}, fmt.Errorf("%w: %s (from %s) is not a public address, so browsers and agents could not reach this relay; run on a VPS with a public IPv4, pass the right one with --ip, or use --dev for a lab or LAN", ErrRefused, a, source)
	}
	in.ip = a.String()
	note := ""
	if !IsPublicIPv4(a) {
		note = " (not public: accepted because of --dev)"
	}
	return done(false, "%s from %s%s", a, source, note)
}
