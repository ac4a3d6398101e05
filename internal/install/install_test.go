package install

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/testutil"
)

func TestOSRelease(t *testing.T) {
	for text, ok := range map[string]bool{
		"PRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"24.04\"\nID=ubuntu\n": true,
		"PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\nID=debian\n":         true,
		"ID=debian\nVERSION_ID=\"11\"\n":                       false,
		"ID=ubuntu\nVERSION_ID=\"22.04\"\n":                    false,
		"ID=fedora\nVERSION_ID=40\n":                           false,
		"ID=linuxmint\nID_LIKE=ubuntu\nVERSION_ID=\"24.04\"\n": false,
		"": false,
	} {
		if got := ParseOSRelease(text).Supported(); got != ok {
			t.Errorf("%q: supported %v, want %v", text, got, ok)
		}
	}
	r := ParseOSRelease("PRETTY_NAME='Debian GNU/Linux 12 (bookworm)'\nID=debian\n")
	if r.PrettyName != "Debian GNU/Linux 12 (bookworm)" || r.ID != "debian" {
		t.Fatalf("%+v", r)
	}
}

func TestCheckOSRefuses(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "os-release")
	os.WriteFile(p, []byte("PRETTY_NAME=\"Fedora Linux 40\"\nID=fedora\nVERSION_ID=40\n"), 0o644)
	paths := DefaultPaths()
	paths.OSRelease = p
	in := New(Config{Paths: paths})
	_, err := in.checkOS(context.Background())
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "Fedora Linux 40") || !strings.Contains(err.Error(), "Ubuntu 24.04 and Debian 12") {
		t.Fatalf("err %v", err)
	}
	paths.OSRelease = filepath.Join(dir, "missing")
	if _, err := New(Config{Paths: paths}).checkOS(context.Background()); !errors.Is(err, ErrRefused) {
		t.Fatalf("missing os-release: %v", err)
	}
}

func TestIsPublicIPv4(t *testing.T) {
	for s, want := range map[string]bool{
		"8.8.8.8": true, "164.90.1.2": true, "100.63.255.255": true, "172.32.0.1": true,
		"10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false, "100.64.0.1": false,
		"127.0.0.1": false, "169.254.169.254": false, "203.0.113.10": false, "198.51.100.1": false,
		"192.0.2.1": false, "224.0.0.1": false, "255.255.255.255": false, "0.0.0.0": false,
		"2001:db8::1": false, "2a01:4f8::1": false,
	} {
		if got := IsPublicIPv4(netip.MustParseAddr(s)); got != want {
			t.Errorf("%s: %v, want %v", s, got, want)
		}
	}
}

func TestInterfaceIP(t *testing.T) {
	routes := "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n" +
		"eth1\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n" +
		"eth0\t00000000\t0171000A\t0003\t0\t0\t0\t00000000\n"
	ifaces := []InterfaceAddrs{
		{Name: "lo", Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}},
		{Name: "eth1", Addrs: []netip.Addr{netip.MustParseAddr("192.168.0.5")}},
		{Name: "eth0", Addrs: []netip.Addr{netip.MustParseAddr("10.0.113.5"), netip.MustParseAddr("fe80::1")}},
	}
	a, ok := InterfaceIP(routes, ifaces)
	if !ok || a.String() != "10.0.113.5" {
		t.Fatalf("default route's private address: %v %v", a, ok)
	}
	ifaces = append(ifaces, InterfaceAddrs{Name: "eth2", Addrs: []netip.Addr{netip.MustParseAddr("164.90.1.2")}})
	if a, _ := InterfaceIP(routes, ifaces); a.String() != "164.90.1.2" {
		t.Fatalf("a public address wins: %v", a)
	}
	if _, ok := InterfaceIP("", []InterfaceAddrs{{Name: "lo", Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}}); ok {
		t.Fatal("loopback only must find nothing")
	}
}

// A metadata service on a real HTTP server: the AWS flow (token first),
// headers where providers demand them, garbage ignored.
func TestMetadataIP(t *testing.T) {
	var sawToken bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/garbage":
			w.Write([]byte("<html>not an address</html>"))
		case "/aws/token":
			if r.Method != http.MethodPut {
				http.Error(w, "put only", http.StatusMethodNotAllowed)
				return
			}
			w.Write([]byte("tok-123"))
		case "/aws/ip":
			if r.Header.Get("X-aws-ec2-metadata-token") != "tok-123" {
				http.Error(w, "no token", http.StatusUnauthorized)
				return
			}
			sawToken = true
			w.Write([]byte("54.1.2.3\n"))
		case "/gcp":
			if r.Header.Get("Metadata-Flavor") != "Google" {
				http.Error(w, "header", http.StatusForbidden)
				return
			}
			w.Write([]byte("34.1.2.3"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	sources := []MetadataSource{
		{Name: "missing", URL: srv.URL + "/nothing"},
		{Name: "garbage", URL: srv.URL + "/garbage"},
		{Name: "aws", URL: srv.URL + "/aws/ip", TokenURL: srv.URL + "/aws/token", TokenHeader: "X-aws-ec2-metadata-token"},
		{Name: "gcp", URL: srv.URL + "/gcp", Headers: map[string]string{"Metadata-Flavor": "Google"}},
	}
	a, src := MetadataIP(ctx, srv.Client(), sources)
	if a.String() != "54.1.2.3" || src != "aws" || !sawToken {
		t.Fatalf("%v from %q (token %v)", a, src, sawToken)
	}
	a, src = MetadataIP(ctx, srv.Client(), []MetadataSource{{Name: "gcp", URL: srv.URL + "/gcp"}})
	if a.IsValid() {
		t.Fatalf("without the header: %v from %s", a, src)
	}
}

func TestDetectIPRefusesPrivate(t *testing.T) {
	ctx := context.Background()
	for ip, dev := range map[string]bool{"10.0.0.5": false, "203.0.113.10": false, "192.168.1.2": false} {
		in := New(Config{Options: Options{IP: ip, Dev: dev}})
		if _, err := in.detectIP(ctx); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "--dev") {
			t.Errorf("%s without --dev: %v", ip, err)
		}
		in = New(Config{Options: Options{IP: ip, Dev: true}})
		if _, err := in.detectIP(ctx); err != nil || in.ip != ip {
			t.Errorf("%s with --dev: %v", ip, err)
		}
	}
	in := New(Config{Options: Options{IP: "164.90.1.2"}})
	if _, err := in.detectIP(ctx); err != nil || in.ip != "164.90.1.2" {
		t.Fatalf("public: %v", err)
	}
	for _, bad := range []string{"2001:db8::1", "example.com", "1.2.3.4.5"} {
		if _, err := New(Config{Options: Options{IP: bad, Dev: true}}).detectIP(ctx); !errors.Is(err, ErrRefused) {
			t.Errorf("--ip %s: %v", bad, err)
		}
	}
}

const stockSSHD = "Include /etc/ssh/sshd_config.d/*.conf\n\n#PasswordAuthentication yes\nKbdInteractiveAuthentication no\nUsePAM yes\n"

func TestSSHBlock(t *testing.T) {
	on, changed := WithSSHBlock(stockSSHD)
	if !changed || !strings.HasPrefix(on, sshBlock) || !strings.HasSuffix(on, stockSSHD) {
		t.Fatalf("with block:\n%s", on)
	}
	if again, changed := WithSSHBlock(on); changed || again != on {
		t.Fatal("adding the block twice changed the file")
	}
	if off := WithoutSSHBlock(on); off != stockSSHD {
		t.Fatalf("without block:\n%q", off)
	}
	// A block an editor moved further down is taken out and put on top.
	moved := stockSSHD + sshBlock
	if fixed, changed := WithSSHBlock(moved); !changed || fixed != sshBlock+stockSSHD {
		t.Fatalf("moved block:\n%s", fixed)
	}
}

func FuzzSSHBlock(f *testing.F) {
	f.Add(stockSSHD)
	f.Add("")
	f.Add("Port 2222\nMatch User x\n  PasswordAuthentication yes\n")
	f.Fuzz(func(t *testing.T, s string) {
		if strings.Contains(s, "portlama") {
			return
		}
		on, _ := WithSSHBlock(s)
		if !strings.HasPrefix(on, sshBlock) {
			t.Fatal("block not at the top")
		}
		if off := WithoutSSHBlock(on); off != s {
			t.Fatalf("round trip lost text: %q → %q", s, off)
		}
	})
}

func TestParseFail2banJails(t *testing.T) {
	out := "Status\n|- Number of jail:\t2\n`- Jail list:\tportlama-auth, sshd\n"
	if j := ParseFail2banJails(out); len(j) != 2 || j[0] != "portlama-auth" || j[1] != "sshd" {
		t.Fatalf("%v", j)
	}
	if j := ParseFail2banJails("Status\n|- Number of jail:\t0\n`- Jail list:\t\n"); len(j) != 0 {
		t.Fatalf("%v", j)
	}
}

func FuzzParseFail2banJails(f *testing.F) {
	f.Add("`- Jail list:\tsshd, portlama-auth\n")
	f.Add("Jail list:,,,")
	f.Fuzz(func(t *testing.T, s string) {
		for _, j := range ParseFail2banJails(s) {
			if j == "" || strings.ContainsAny(j, ",\n") || strings.TrimSpace(j) != j {
				t.Fatalf("jail %q from %q", j, s)
			}
		}
	})
}

func TestActiveSwaps(t *testing.T) {
	text := "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/swapfile                               file\t\t1048572\t\t0\t\t-2\n/dev/vda2 partition 1 0 -3\n"
	if s := activeSwaps(text); len(s) != 2 || s[0] != "/swapfile" || s[1] != "/dev/vda2" {
		t.Fatalf("%v", s)
	}
	if s := activeSwaps("Filename\tType\tSize\tUsed\tPriority\n"); len(s) != 0 {
		t.Fatalf("%v", s)
	}
}

func TestHelpTextListsEveryTask(t *testing.T) {
	h := HelpText()
	for _, task := range New(Config{}).Tasks() {
		if !strings.Contains(h, "  "+task.Name+" ") || task.Changes == "" {
			t.Errorf("--help does not describe %s", task.Name)
		}
	}
	if !strings.Contains(h, "--skip-harden") {
		t.Error("--help does not say which tasks --skip-harden leaves out")
	}
}

func TestUnits(t *testing.T) {
	p := UnitParams{Binary: "/usr/local/bin/portlama", User: ServiceUser, Layout: config.ProductionLayout(), HelperSocket: "/run/portlama/helper.sock"}
	files, err := Units(p)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]string{}
	for _, f := range files {
		byName[f.Name] = f.Content
	}
	for _, u := range []string{UnitPanel, UnitTunnel, UnitAuth, UnitRenew} {
		c := byName[u]
		for _, want := range []string{"User=portlama", "NoNewPrivileges=yes", "CapabilityBoundingSet=\n", "ProtectSystem=strict", "SystemCallFilter=@system-service", "MemoryDenyWriteExecute=yes"} {
			if !strings.Contains(c, want) {
				t.Errorf("%s lacks %q", u, want)
			}
		}
	}
	for _, u := range []string{UnitTunnel, UnitAuth} {
		if !strings.Contains(byName[u], "IPAddressDeny=any") || !strings.Contains(byName[u], "PrivateUsers=yes") {
			t.Errorf("%s is not confined to loopback", u)
		}
	}
	if !strings.Contains(byName[UnitPanel], "SupplementaryGroups=systemd-journal") {
		t.Error("the panel cannot read the journal")
	}
	if !strings.Contains(byName[UnitHelperSocket], "SocketGroup=portlama") || !strings.Contains(byName[UnitHelperSocket], "SocketMode=0660") {
		t.Error("helper socket permissions")
	}
	if !strings.Contains(byName[NginxDropIn], "ExecStartPre=\nExecStartPre=/usr/local/bin/portlama helper nginx-check\n") {
		t.Error("the drop-in does not run the gate first")
	}
	for _, bad := range []UnitParams{
		{Binary: "portlama", User: "portlama", Layout: p.Layout, HelperSocket: p.HelperSocket},
		{Binary: "/usr/bin/x y", User: "portlama", Layout: p.Layout, HelperSocket: p.HelperSocket},
		{Binary: p.Binary, User: "root\nExecStartPre=/bin/sh", Layout: p.Layout, HelperSocket: p.HelperSocket},
		{Binary: p.Binary, User: "portlama", Layout: config.DirLayout("/srv/x;y"), HelperSocket: p.HelperSocket},
	} {
		if _, err := Units(bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// The unit files pass systemd's own checks.
func TestUnitsVerify(t *testing.T) {
	sa := testutil.NeedBinary(t, "systemd-analyze")
	dir := t.TempDir()
	l := config.DirLayout(filepath.Join(dir, "relay"))
	files, err := Units(UnitParams{Binary: "/bin/true", User: "root", Layout: l, HelperSocket: filepath.Join(dir, "helper.sock")})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range files {
		if strings.Contains(f.Name, "/") {
			continue // the nginx drop-in needs nginx.service
		}
		p := filepath.Join(dir, f.Name)
		if err := os.WriteFile(p, []byte(f.Content), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	problems := func(paths []string) []string {
		cmd := exec.Command(sa, append([]string{"verify", "--man=no"}, paths...)...)
		cmd.Dir = dir
		out, _ := cmd.CombinedOutput()
		var ps []string
		for _, line := range strings.Split(string(out), "\n") {
			// Outside a booted system some checks cannot run; unknown keys
			// and bad values are what this test is for.
			if strings.Contains(line, "Unknown key") || strings.Contains(line, "Failed to parse") || strings.Contains(line, "Invalid") {
				ps = append(ps, line)
			}
		}
		return ps
	}
	for _, p := range problems(paths) {
		t.Errorf("systemd-analyze verify: %s", p)
	}
	// The check itself sees a broken unit.
	bad := filepath.Join(dir, "bad.service")
	os.WriteFile(bad, []byte("[Service]\nExecStart=/bin/true\nProtectSystem=sometimes\n"), 0o644)
	if len(problems([]string{bad})) == 0 {
		t.Fatal("systemd-analyze verify did not flag a bad value: the check is blind")
	}
}

func TestWriteIfChanged(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "f")
	uid, gid := os.Getuid(), os.Getgid()
	for i, c := range []struct {
		data string
		mode os.FileMode
		want bool
	}{{"a", 0o644, true}, {"a", 0o644, false}, {"b", 0o644, true}, {"b", 0o600, true}, {"b", 0o600, false}} {
		got, err := writeIfChanged(p, []byte(c.data), c.mode, uid, gid)
		if err != nil || got != c.want {
			t.Fatalf("step %d: changed %v (%v), want %v", i, got, err, c.want)
		}
	}
}

// chownTree changes what is inside the directory and nothing a planted
// link points to.
func TestChownTreeStaysInside(t *testing.T) {
	testutil.NeedRoot(t, "changing owners needs root")
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	os.WriteFile(outside, []byte("x"), 0o600)
	dir := filepath.Join(base, "data")
	os.MkdirAll(filepath.Join(dir, "pki"), 0o700)
	os.WriteFile(filepath.Join(dir, "pki", "ca.key"), []byte("k"), 0o600)
	os.WriteFile(filepath.Join(dir, "keep"), []byte("k"), 0o600)
	os.Symlink(outside, filepath.Join(dir, "link"))
	os.Symlink(base, filepath.Join(dir, "dirlink"))
	n, err := chownTree(dir, 65534, 65534, []string{filepath.Join(dir, "keep")})
	if err != nil {
		t.Fatal(err)
	}
	owner := func(p string) uint32 {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Uid
	}
	if owner(outside) != 0 || owner(base) != 0 {
		t.Fatal("a link led chownTree outside the directory")
	}
	if owner(filepath.Join(dir, "pki", "ca.key")) != 65534 || owner(filepath.Join(dir, "link")) != 65534 || owner(dir) != 65534 {
		t.Fatal("files inside were not given away")
	}
	if owner(filepath.Join(dir, "keep")) != 0 {
		t.Fatal("a kept file was given away")
	}
	if len(n) != 5 {
		t.Errorf("changed %d entries, want 5: %v", len(n), n)
	}
	if n, _ := chownTree(dir, 65534, 65534, []string{filepath.Join(dir, "keep")}); len(n) != 0 {
		t.Errorf("second run changed %v", n)
	}
}

// The swap file is a real swap area (mkswap) without holes, and fstab
// gains it once, after its marker.
func TestSwapfileAndFstab(t *testing.T) {
	testutil.NeedBinary(t, "mkswap")
	dir := t.TempDir()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil || st.Bavail*uint64(st.Bsize) < 3*swapSize {
		t.Skip("needs 3 GiB free in the temporary directory")
	}
	in := New(Config{})
	p := filepath.Join(dir, "swapfile")
	if err := createSwapfile(context.Background(), in, p); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Size() != swapSize || fi.Mode().Perm() != 0o600 {
		t.Fatalf("swap file: %v %v", fi, err)
	}
	if blocks := fi.Sys().(*syscall.Stat_t).Blocks * 512; blocks < swapSize {
		t.Fatalf("the swap file has holes: %d bytes allocated", blocks)
	}
	sig := make([]byte, 10)
	f, _ := os.Open(p)
	f.ReadAt(sig, 4096-10)
	f.Close()
	if string(sig) != "SWAPSPACE2" {
		t.Fatalf("no swap signature: %q", sig)
	}
	fstab := filepath.Join(dir, "fstab")
	os.WriteFile(fstab, []byte("UUID=x / ext4 defaults 0 1"), 0o644)
	in.paths.Fstab, in.paths.Swapfile = fstab, p
	for i := 0; i < 2; i++ {
		if err := in.addFstab(); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := os.ReadFile(fstab)
	want := "UUID=x / ext4 defaults 0 1\n" + fstabMarker + "\n" + p + " none swap sw 0 0\n"
	if string(got) != want {
		t.Fatalf("fstab:\n%s\nwant:\n%s", got, want)
	}
}
