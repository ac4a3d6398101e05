package lab

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/portlama/portlama/internal/install"
	"github.com/portlama/portlama/internal/system"
)

// nextVersion is what the "update" binary reports.
const nextVersion = "0.0.1-lab-update"

// buildBinaries builds the relay binary, the same source as a newer
// version for the update step, portlama-agent and the home machine's app
// (labapp) into a temporary directory.
func buildBinaries(t *testing.T) (current, next, agent, app string) {
	t.Helper()
	if p := os.Getenv("PORTLAMA_BIN"); p != "" {
		current = p
	}
	dir := t.TempDir()
	build := func(out string, ldflags string) {
		args := []string{"build", "-trimpath"}
		if ldflags != "" {
			args = append(args, "-ldflags", ldflags)
		}
		cmd := exec.Command("go", append(args, "-o", out, "github.com/portlama/portlama/cmd/portlama")...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build portlama: %v\n%s", err, b)
		}
	}
	if current == "" {
		current = filepath.Join(dir, "portlama")
		build(current, "")
	}
	next = filepath.Join(dir, "portlama-next")
	build(next, "-X main.version="+nextVersion)
	agent, app = filepath.Join(dir, "portlama-agent"), filepath.Join(dir, "labapp")
	for out, pkg := range map[string]string{agent: "github.com/portlama/portlama/cmd/portlama-agent", app: "github.com/portlama/portlama/test/lab/labapp"} {
		cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, b)
		}
	}
	return current, next, agent, app
}

// installEvents runs portlama install --json in the droplet and returns
// its events.
func installEvents(t *testing.T, ctx context.Context, d *Droplet, args ...string) []install.Event {
	t.Helper()
	return installWith(t, ctx, d, "/root/portlama", args...)
}

// installWith runs `<bin> install --json` in the droplet.
func installWith(t *testing.T, ctx context.Context, d *Droplet, bin string, args ...string) []install.Event {
	t.Helper()
	cmd := d.Cmd(ctx, RunOpts{}, append([]string{bin, "install", "--json"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var events []install.Event
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var e install.Event
		if jerr := json.Unmarshal(sc.Bytes(), &e); jerr != nil {
			t.Errorf("install printed a line that is not an event: %q", sc.Text())
			continue
		}
		events = append(events, e)
		if e.Status == install.StatusFailed {
			t.Errorf("install task %s failed: %s", e.Task, e.Error)
		}
	}
	if err != nil {
		t.Fatalf("portlama install: %v\nstderr: %s", err, stderr.String())
	}
	return events
}

func finished(events []install.Event) map[string]install.Event {
	m := map[string]install.Event{}
	for _, e := range events {
		if e.Status == install.StatusDone || e.Status == install.StatusSkipped {
			m[e.Task] = e
		}
	}
	return m
}

// adminTLS reads the admin P12 and its password out of the droplet, as the
// user does with scp, and trusts the IP vhost's certificate.
func adminTLS(t *testing.T, d *Droplet) *tls.Config {
	t.Helper()
	p12, err := d.ReadFile("/etc/portlama/pki/client.p12")
	if err != nil {
		t.Fatal(err)
	}
	pw, err := d.ReadFile("/etc/portlama/pki/.p12-password")
	if err != nil {
		t.Fatal(err)
	}
	key, cert, cas, err := pkcs12.DecodeChain(p12, string(pw))
	if err != nil {
		t.Fatalf("decode client.p12 with its password: %v", err)
	}
	if len(cas) == 0 {
		t.Fatal("client.p12 has no CA certificate")
	}
	cfg := noCertTLS(t, d)
	cfg.Certificates = []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}}
	return cfg
}

// noCertTLS trusts the droplet's IP certificate and presents none.
func noCertTLS(t *testing.T, d *Droplet) *tls.Config {
	t.Helper()
	self, err := d.ReadFile("/etc/portlama/pki/self-signed.pem")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(self) {
		t.Fatal("self-signed.pem does not parse")
	}
	return &tls.Config{RootCAs: pool, ServerName: d.Addr.String()}
}

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}

// fileInfo is a file's mode and owner inside the droplet.
func fileInfo(t *testing.T, ctx context.Context, d *Droplet, path string) string {
	t.Helper()
	out, err := d.Exec(ctx, "stat", "-c", "%a %U:%G %F", path)
	if err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return strings.TrimSpace(string(out))
}

// snapshot hashes what a re-install must leave alone.
func snapshot(t *testing.T, ctx context.Context, d *Droplet) map[string]string {
	t.Helper()
	out, err := d.Exec(ctx, "sh", "-c", "cd / && find etc/portlama etc/systemd/system/portlama-* etc/systemd/system/nginx.service.d etc/nginx -type f ! -name '*.lock' -print0 | sort -z | xargs -0 sha256sum")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if sum, file, ok := strings.Cut(line, "  "); ok {
			m[file] = sum
		}
	}
	return m
}

// TestRelayLab is the lab scenario. It runs with `make lab` (as root,
// PORTLAMA_LAB=1); the quick test run skips it.
func TestRelayLab(t *testing.T) {
	if os.Getenv("PORTLAMA_LAB") != "1" {
		t.Skip("the lab runs with make lab (root, PORTLAMA_LAB=1)")
	}
	ctx := context.Background()
	l := New(t, Options{})
	portlamaBin, portlamaNext, agentBin, appBin := buildBinaries(t)
	r := l.Report
	defer func() { t.Log("\n" + r.String()) }()

	var rootfs *Rootfs
	r.Step(t, "rootfs", func(t *testing.T) string {
		rootfs = l.Rootfs(ctx, DropletPackages)
		if rootfs.Built {
			return "built with debootstrap (cache was empty)"
		}
		return "from cache " + rootfs.Dir
	})
	var d, box *Droplet
	var visitor, attacker, home *Host
	r.Step(t, "boot", func(t *testing.T) string {
		// The product promises 512 MB: the whole droplet runs under that
		// limit (cgroup v1 memory controller around the container).
		d = l.Droplet(ctx, DropletConfig{Rootfs: rootfs, MemoryLimit: 512 << 20})
		visitor = l.Host("visitor", VisitorAddr)
		attacker = l.Host("attacker", AttackerAddr)
		home = l.NATHome("home")
		boxStart := time.Now()
		// The home's server: a second booted machine from the same root
		// file system, on the home's LAN behind the NAT.
		box = l.Droplet(ctx, DropletConfig{Name: "homebox", Addr: HomeServerAddr, LAN: "home", Rootfs: rootfs, Mask: HomeMasked})
		return fmt.Sprintf("droplet %s booted: %s; home machine %s behind the NAT booted in %s: %s", d.Addr, d.SystemState(ctx),
			box.Addr, time.Since(boxStart).Round(100*time.Millisecond), box.SystemState(ctx))
	})

	r.Step(t, "network", func(t *testing.T) string {
		// The home reaches the internet through NAT: the visitor sees the
		// router's address.
		ln, err := visitor.Listen("tcp", VisitorAddr.String()+":7000")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		got := make(chan string, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				got <- err.Error()
				return
			}
			got <- c.RemoteAddr().(*net.TCPAddr).IP.String()
			c.Close()
		}()
		c, err := home.Dial(ctx, "tcp", VisitorAddr.String()+":7000")
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		if src := <-got; src != RouterAddr.String() {
			t.Fatalf("the visitor sees the home as %s, want the router %s", src, RouterAddr)
		}
		// Nothing reaches the home from outside.
		hl, err := home.Listen("tcp", "0.0.0.0:7001")
		if err != nil {
			t.Fatal(err)
		}
		defer hl.Close()
		for _, target := range []string{RouterAddr.String() + ":7001", HomeAddr.String() + ":7001"} {
			dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			c, err := visitor.Dial(dctx, "tcp", target)
			cancel()
			if err == nil {
				c.Close()
				t.Fatalf("the visitor connected to the home at %s", target)
			}
		}
		// The home's own view: everything goes through its router.
		out, err := home.Run(ctx, "ip", "route", "get", d.Addr.String())
		if err != nil || !strings.Contains(string(out), "via "+HomeGateway.String()) {
			t.Errorf("home's route to the droplet: %v %s", err, out)
		}
		return "home behind NAT (seen as " + RouterAddr.String() + "), no inbound"
	})

	r.Step(t, "refusals", func(t *testing.T) string {
		if err := d.CopyIn(portlamaBin, "/root/portlama", 0o755); err != nil {
			t.Fatal(err)
		}
		// Not as another user, and not on an address nobody can reach.
		if err := d.CopyIn(portlamaBin, "/opt/portlama", 0o755); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(d.Path("/opt/portlama"))
		out, err := d.RunAs(ctx, "nobody", "/opt/portlama", "install")
		if err == nil || !strings.Contains(string(out), "must run as root") {
			t.Errorf("as nobody: %v\n%s", err, out)
		}
		out, err = d.Run(ctx, "/root/portlama", "install")
		if err == nil || !strings.Contains(string(out), "203.0.113.10") || !strings.Contains(string(out), "--dev") {
			t.Errorf("without --dev: %v\n%s", err, out)
		}
		if _, err := d.Exec(ctx, "getent", "passwd", "portlama"); err == nil {
			t.Error("a refused install created the user")
		}
		return "refused as nobody and for 203.0.113.10 without --dev, nothing changed"
	})

	var events []install.Event
	var operatorKey ed25519.PrivateKey
	r.Step(t, "install", func(t *testing.T) string {
		// The operator's SSH key, as a provider puts it on a new VPS:
		// password login can go off without locking anyone out.
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		operatorKey = priv
		spub, err := ssh.NewPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.WriteFile("/root/.ssh/authorized_keys", ssh.MarshalAuthorizedKey(spub), 0o600); err != nil {
			t.Fatal(err)
		}
		// A rule the operator had: install keeps it.
		if _, err := d.Exec(ctx, "ufw", "allow", "8443/tcp", "comment", "operator"); err != nil {
			t.Fatal(err)
		}
		events = installEvents(t, ctx, d, "--dev")
		f := finished(events)
		if strings.HasPrefix(slowest(events), "fail2ban") {
			diag, _ := d.Exec(ctx, "sh", "-c", "journalctl -u fail2ban --no-pager -o short-precise | tail -30; cat /var/log/fail2ban.log | tail -30")
			t.Logf("fail2ban was the slowest task:\n%s", diag)
		}
		for _, task := range install.New(install.Config{}).Tasks() {
			if _, ok := f[task.Name]; !ok {
				t.Errorf("task %s did not finish", task.Name)
			}
		}
		if f["swap"].Status != install.StatusSkipped || !strings.Contains(f["swap"].Message, "container") {
			t.Errorf("swap in a container: %+v", f["swap"])
		}
		if f["packages"].Changed {
			t.Errorf("packages: %+v (the droplet has them all)", f["packages"])
		}
		for _, task := range []string{"firewall", "fail2ban", "ssh", "user", "pki", "nginx", "units", "services"} {
			if !f[task].Changed {
				t.Errorf("first install: %s changed nothing: %+v", task, f[task])
			}
		}
		last := events[len(events)-1]
		if last.Status != install.StatusSummary || last.Summary == nil || last.Summary.PanelURL != "https://203.0.113.10:9292" ||
			!strings.Contains(last.Summary.SCP, "scp root@203.0.113.10:/etc/portlama/pki/client.p12") {
			t.Fatalf("summary: %+v", last)
		}
		return fmt.Sprintf("%d tasks, %s; slowest: %s", len(f), f["ip"].Message, slowest(events))
	})

	sd := d.Services()
	r.Step(t, "units", func(t *testing.T) string {
		want := map[string][2]string{ // unit → state, unit file state
			"portlama-panel":         {"active", "enabled"},
			"portlama-helper.socket": {"active", "enabled"},
			"nginx":                  {"active", "enabled"},
			"fail2ban":               {"active", "enabled"},
			"ufw":                    {"active", "enabled"},
			"portlama-tunnel":        {"inactive", "disabled"},
			"portlama-auth":          {"inactive", "disabled"},
			"portlama-renew.timer":   {"active", "enabled"},
		}
		for u, w := range want {
			st, err := sd.Status(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			if st.LoadState != "loaded" || st.State != w[0] || st.UnitFileState != w[1] {
				t.Errorf("%s: %s/%s (%s), want %s/%s", u, st.State, st.UnitFileState, st.LoadState, w[0], w[1])
			}
		}
		// The stock fail2ban failed at boot; after install nothing fails.
		if state := d.SystemState(ctx); state != "running" {
			out, _ := d.Exec(ctx, "systemctl", "--failed", "--no-legend")
			t.Fatalf("system state %s after install; failed units:\n%s", state, out)
		}
		return "panel and helper socket active; renewal timer active; tunnel and auth installed, disabled until provisioning; system running"
	})

	r.Step(t, "listeners", func(t *testing.T) string {
		ls, err := d.Listeners(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var public []string
		ports := map[uint16][]string{}
		for _, l := range ls {
			if !l.Public() {
				continue
			}
			public = append(public, fmt.Sprintf("%s %s %v", l.Proto, l.Addr, l.Processes))
			ports[l.Addr.Port()] = append(ports[l.Addr.Port()], l.Processes...)
			for _, p := range l.Processes {
				if !(p == "nginx" || p == "sshd" && l.Addr.Port() == 22) {
					t.Errorf("%s listens on public %s %s", p, l.Proto, l.Addr)
				}
			}
			if len(l.Processes) == 0 {
				t.Errorf("an unknown process listens on %s %s", l.Proto, l.Addr)
			}
		}
		for _, p := range []uint16{80, 443, 9292} {
			if !slices.Contains(ports[p], "nginx") {
				t.Errorf("nginx does not listen on :%d", p)
			}
		}
		panelOK := false
		for _, l := range ls {
			if l.Addr.String() == "127.0.0.1:3100" && slices.Contains(l.Processes, "portlama") {
				panelOK = true
			}
		}
		if !panelOK {
			t.Error("the panel does not listen on 127.0.0.1:3100")
		}
		sort.Strings(public)
		return "public: nginx on 80, 443, 9292; sshd on 22; panel on 127.0.0.1:3100"
	})

	r.Step(t, "firewall rules", func(t *testing.T) string {
		out, err := d.Exec(ctx, "ufw", "status", "verbose")
		if err != nil {
			t.Fatal(err)
		}
		st := string(out)
		for _, want := range []string{"Status: active", "deny (incoming)", "22/tcp ", "80/tcp ", "443/tcp ", "9292/tcp ", "8443/tcp "} {
			if !strings.Contains(st, want) {
				t.Errorf("ufw status lacks %q:\n%s", want, st)
			}
		}
		for _, line := range strings.Split(st, "\n") {
			if strings.Contains(line, "ALLOW IN") && !strings.Contains(line, "portlama") && !strings.Contains(line, "# operator") {
				t.Errorf("unexpected rule: %s", line)
			}
		}
		return "active, deny incoming, allow 22, 80, 443, 9292/tcp; the operator's 8443 rule kept"
	})

	r.Step(t, "fail2ban jails", func(t *testing.T) string {
		out, err := d.Exec(ctx, "fail2ban-client", "status")
		if err != nil {
			t.Fatal(err)
		}
		jails := install.ParseFail2banJails(string(out))
		for _, j := range []string{"sshd", "portlama-auth"} {
			if !slices.Contains(jails, j) {
				t.Errorf("jail %s missing: %v", j, jails)
			}
		}
		// The auth-server filter on the auth server's line format (the
		// jail itself is exercised once provisioning starts portlama-auth).
		lines := authFailureLines(t)
		if err := d.WriteFile("/root/auth-failures.log", []byte(lines), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err = d.Exec(ctx, "fail2ban-regex", "--out", "ip", "/root/auth-failures.log", "/etc/fail2ban/filter.d/portlama-auth.conf")
		if err != nil {
			t.Fatalf("fail2ban-regex: %v\n%s", err, out)
		}
		ips := strings.Fields(string(out))
		if want := []string{"198.51.100.7", "198.51.100.8", "198.51.100.9"}; !slices.Equal(ips, want) {
			t.Errorf("the auth filter finds %v, want %v (a user name must not choose the address)", ips, want)
		}
		return "jails " + strings.Join(jails, ", ") + "; auth filter matches failed logins, not injected addresses"
	})

	r.Step(t, "file modes", func(t *testing.T) string {
		want := map[string]string{
			"/etc/portlama":                                  "700 portlama:portlama directory",
			"/etc/portlama/panel.json":                       "640 portlama:portlama regular file",
			"/etc/portlama/proxy-secret":                     "600 portlama:portlama regular file",
			"/etc/portlama/install-state.json":               "600 root:root regular file",
			"/etc/portlama/pki":                              "700 portlama:portlama directory",
			"/etc/portlama/pki/ca.key":                       "600 portlama:portlama regular file",
			"/etc/portlama/pki/ca.crt":                       "644 portlama:portlama regular file",
			"/etc/portlama/pki/client.key":                   "600 portlama:portlama regular file",
			"/etc/portlama/pki/client.p12":                   "600 portlama:portlama regular file",
			"/etc/portlama/pki/.p12-password":                "600 portlama:portlama regular file",
			"/etc/portlama/pki/self-signed-key.pem":          "600 portlama:portlama regular file",
			"/etc/portlama/pki/revoked.json":                 "600 portlama:portlama regular file",
			"/etc/portlama/pki/crl.pem":                      "644 portlama:portlama regular file",
			"/etc/portlama/tunnel":                           "700 portlama:portlama directory",
			"/etc/portlama/auth":                             "700 portlama:portlama directory",
			"/etc/portlama/certs":                            "700 portlama:portlama directory",
			"/var/www/portlama":                              "755 portlama:portlama directory",
			"/var/lib/portlama":                              "700 portlama:portlama directory",
			"/usr/local/bin/portlama":                        "755 root:root regular file",
			"/etc/nginx/nginx.conf":                          "644 root:root regular file",
			"/etc/nginx/sites-available":                     "775 root:portlama directory",
			"/etc/nginx/sites-enabled":                       "775 root:portlama directory",
			"/etc/nginx/portlama-checked":                    "755 root:root directory",
			"/etc/nginx/sites-available/portlama-panel-ip":   "644 portlama:portlama regular file",
			"/etc/nginx/portlama-checked/portlama-panel-ip":  "644 root:root regular file",
			"/etc/nginx/snippets/portlama-proxy-secret.conf": "600 root:root regular file",
			"/etc/systemd/system/portlama-panel.service":     "644 root:root regular file",
			"/etc/fail2ban/jail.d/portlama.conf":             "644 root:root regular file",
			"/etc/ssh/sshd_config":                           "644 root:root regular file",
		}
		for p, w := range want {
			if got := fileInfo(t, ctx, d, p); got != w {
				t.Errorf("%s: %s, want %s", p, got, w)
			}
		}
		if _, err := d.ReadFile("/etc/nginx/sites-enabled/default"); err == nil {
			t.Error("the default site is still enabled")
		}
		for _, p := range []string{"/etc/nginx/nginx.conf", "/etc/ssh/sshd_config"} {
			orig, _ := os.ReadFile(filepath.Join(d.Rootfs().Dir, p))
			kept, _ := d.ReadFile(p + ".portlama-orig")
			if len(orig) == 0 || !bytes.Equal(orig, kept) {
				t.Errorf("%s.portlama-orig is not the original", p)
			}
		}
		return fmt.Sprintf("%d paths as the contract says", len(want))
	})

	r.Step(t, "privilege", func(t *testing.T) string {
		// Root may ask the helper (socket activation starts it).
		out, err := d.Run(ctx, "/usr/local/bin/portlama", "helper", "call", "nginx-test")
		if err != nil || !strings.Contains(string(out), "test is successful") {
			t.Fatalf("root: %v\n%s", err, out)
		}
		// The service user outside the panel's unit is refused.
		out, err = d.RunAs(ctx, "portlama", "/usr/local/bin/portlama", "helper", "call", "service", "restart", "nginx")
		if err == nil || !strings.Contains(string(out), "may not use the helper") {
			t.Errorf("portlama outside the panel: %v\n%s", err, out)
		}
		// Anyone else cannot even connect.
		out, err = d.RunAs(ctx, "nobody", "/usr/local/bin/portlama", "helper", "call", "nginx-test")
		if err == nil || !strings.Contains(string(out), "permission denied") {
			t.Errorf("nobody: %v\n%s", err, out)
		}
		// Requests outside the list are refused even for root.
		for _, req := range [][]string{{"service", "stop", "portlama-panel"}, {"service", "restart", "ssh"}, {"enable", "nginx"}, {"exec"}} {
			out, err := d.Run(ctx, append([]string{"/usr/local/bin/portlama", "helper", "call"}, req...)...)
			if err == nil || !strings.Contains(string(out), "refused") {
				t.Errorf("%v: %v\n%s", req, err, out)
			}
		}
		// No sudo rights: the helper is the only way up.
		out, _ = d.Exec(ctx, "sudo", "-l", "-U", "portlama")
		if !strings.Contains(string(out), "not allowed to run sudo") {
			t.Errorf("sudo -l -U portlama:\n%s", out)
		}

		// The lint gate: a vhost the panel user writes that would make
		// nginx (root) write a file is refused, and nginx keeps running.
		evil := "server {\n    listen 8081;\n    access_log /etc/cron.d/portlama-evil;\n}\n"
		writeAsPortlama(t, ctx, d, "/etc/nginx/sites-available/portlama-app-evil", evil)
		if _, err := d.RunAs(ctx, "portlama", "ln", "-s", "/etc/nginx/sites-available/portlama-app-evil", "/etc/nginx/sites-enabled/portlama-app-evil"); err != nil {
			t.Fatal(err)
		}
		out, err = d.Run(ctx, "/usr/local/bin/portlama", "helper", "call", "nginx-reload")
		if err == nil || !strings.Contains(string(out), "access_log may only be off") {
			t.Errorf("helper reload with an evil vhost: %v\n%s", err, out)
		}
		if _, err := d.Exec(ctx, "systemctl", "reload", "nginx"); err == nil {
			t.Error("systemctl reload nginx passed the evil vhost (the drop-in's gate did not run)")
		}
		if _, err := d.ReadFile("/etc/cron.d/portlama-evil"); err == nil {
			t.Error("nginx created the evil log file")
		}
		if st, _ := sd.Status(ctx, "nginx"); st.State != system.StateActive {
			t.Errorf("nginx is %s after a refused reload", st.State)
		}

		// A valid vhost is published; what nginx reads is the checked copy,
		// so rewriting the file afterwards changes nothing nginx loads.
		good := "server {\n    listen 127.0.0.1:8082;\n    location / { return 200 \"probe-v1\"; }\n}\n"
		writeAsPortlama(t, ctx, d, "/etc/nginx/sites-available/portlama-app-evil", good)
		if out, err := d.Run(ctx, "/usr/local/bin/portlama", "helper", "call", "nginx-reload"); err != nil {
			t.Fatalf("reload with a good vhost: %v\n%s", err, out)
		}
		writeAsPortlama(t, ctx, d, "/etc/nginx/sites-available/portlama-app-evil", evil)
		dump, err := d.Exec(ctx, "nginx", "-T")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(dump), "probe-v1") || strings.Contains(string(dump), "portlama-evil") {
			t.Errorf("nginx reads something else than the checked copy:\n%s", tail(string(dump), 1500))
		}
		d.Exec(ctx, "rm", "-f", "/etc/nginx/sites-enabled/portlama-app-evil", "/etc/nginx/sites-available/portlama-app-evil")
		if out, err := d.Run(ctx, "/usr/local/bin/portlama", "helper", "call", "nginx-reload"); err != nil {
			t.Fatalf("reload after cleaning up: %v\n%s", err, out)
		}
		return "root allowed; portlama outside the panel, nobody, off-list requests refused; no sudo; lint gate holds"
	})

	r.Step(t, "panel access", func(t *testing.T) string {
		base := "https://" + d.Addr.String() + ":9292"
		// Without a certificate an API client gets JSON, a browser the
		// page that explains how to import the P12.
		code, body := get(t, visitor.HTTPClient(noCertTLS(t, d)), base+"/api/health")
		if code != http.StatusForbidden || !strings.Contains(body, `"error":"mTLS certificate required"`) {
			t.Errorf("API client without a certificate: %d %s", code, tail(body, 300))
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/", nil)
		req.Header.Set("Accept", "text/html,application/xhtml+xml")
		if resp, err := visitor.HTTPClient(noCertTLS(t, d)).Do(req); err != nil {
			t.Errorf("browser without a certificate: %v", err)
		} else {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "client.p12") {
				t.Errorf("browser without a certificate: %d %s", resp.StatusCode, tail(string(b), 300))
			}
		}
		code, body = get(t, visitor.HTTPClient(adminTLS(t, d)), base+"/api/health")
		if code != http.StatusOK || !strings.Contains(body, `"status":"ok"`) {
			t.Errorf("visitor with the admin certificate: %d %s", code, body)
		}
		code, body = get(t, home.HTTPClient(adminTLS(t, d)), base+"/api/onboarding/status")
		var st struct {
			Status string  `json:"status"`
			Domain *string `json:"domain"`
			IP     string  `json:"ip"`
		}
		if code != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil || st.Status != "FRESH" || st.IP != d.Addr.String() || st.Domain != nil {
			t.Errorf("home with the admin P12: %d %s", code, body)
		}
		// Plain HTTP goes to HTTPS.
		c := visitor.HTTPClient(nil)
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, err := c.Get("http://" + d.Addr.String() + "/x")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMovedPermanently || !strings.HasPrefix(resp.Header.Get("Location"), "https://") {
			t.Errorf("http: %d %s", resp.StatusCode, resp.Header.Get("Location"))
		}
		return "no cert → 403 JSON for API clients, help page for browsers; admin cert → health ok; home (NAT) → onboarding FRESH"
	})

	r.Step(t, "service manager", func(t *testing.T) string {
		before, err := sd.Status(ctx, "portlama-panel")
		if err != nil || before.State != system.StateActive || before.MainPID == 0 || before.Uptime(time.Now()) <= 0 {
			t.Fatalf("status: %+v %v", before, err)
		}
		lines := make(chan system.LogLine, 256)
		fctx, stop := context.WithCancel(ctx)
		followed := make(chan error, 1)
		go func() {
			followed <- sd.Follow(fctx, "portlama-panel", 5, func(l system.LogLine) error {
				select {
				case lines <- l:
				default:
				}
				return nil
			})
		}()
		if err := sd.Restart(ctx, "portlama-panel"); err != nil {
			t.Fatal(err)
		}
		after, err := sd.Status(ctx, "portlama-panel")
		if err != nil || after.State != system.StateActive || after.MainPID == before.MainPID || !after.Since.After(before.Since.Add(-time.Second)) {
			t.Fatalf("after restart: %+v (before %+v) %v", after, before, err)
		}
		// The restart shows up in the followed journal.
		deadline := time.After(30 * time.Second)
		seen := false
		for !seen {
			select {
			case l := <-lines:
				if l.Timestamp != "" && strings.Contains(l.Message, "Started portlama-panel.service") {
					seen = true
				}
			case <-deadline:
				t.Fatal("the restart did not appear in the followed journal")
			}
		}
		stop()
		if err := <-followed; err != nil {
			t.Fatalf("follow ended with %v", err)
		}
		if err := sd.Reload(ctx, "nginx"); err != nil {
			t.Fatal(err)
		}
		if err := sd.Stop(ctx, "nginx"); err != nil {
			t.Fatal(err)
		}
		if st, _ := sd.Status(ctx, "nginx"); st.State != system.StateInactive || st.Uptime(time.Now()) != 0 {
			t.Fatalf("nginx after stop: %+v", st)
		}
		if err := sd.Start(ctx, "nginx"); err != nil {
			t.Fatal(err)
		}
		if err := sd.Reload(ctx, "portlama-no-such-unit"); err == nil {
			t.Error("reload of a unit that does not exist succeeded")
		}
		// The panel's user can read the journal the way the unit allows.
		out, err := d.RunWith(ctx, RunOpts{User: "portlama", Properties: []string{"SupplementaryGroups=systemd-journal", "ProtectSystem=strict", "ProtectHome=yes", "PrivateDevices=yes"}},
			"journalctl", "-u", "portlama-panel", "-n", "3", "--no-pager", "-q", "--output=short-iso")
		if err != nil || !strings.Contains(string(out), "portlama") {
			t.Errorf("journal as the panel's user: %v\n%s", err, out)
		}
		if waitHealthy(ctx, home.HTTPClient(adminTLS(t, d)), "https://"+d.Addr.String()+":9292/api/health") != nil {
			t.Fatal("the panel does not come back after the restart")
		}
		return fmt.Sprintf("status/uptime, restart (pid %d → %d), follow, reload/stop/start nginx; journal readable by the panel user", before.MainPID, after.MainPID)
	})

	r.Step(t, "firewall blocks", func(t *testing.T) string {
		// A service bound to every address on 9091 is still unreachable.
		if err := d.Start(ctx, "lab-probe", "python3", "-m", "http.server", "--bind", "0.0.0.0", "9091"); err != nil {
			t.Fatal(err)
		}
		defer d.StopUnit(ctx, "lab-probe")
		if err := waitFor(ctx, 20*time.Second, func() bool {
			out, _ := d.Exec(ctx, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://203.0.113.10:9091/")
			return string(out) == "200"
		}); err != nil {
			t.Fatal("the probe server does not answer inside the droplet")
		}
		for _, port := range []string{"3100", "9090", "9091"} {
			dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			c, err := visitor.Dial(dctx, "tcp", d.Addr.String()+":"+port)
			cancel()
			if err == nil {
				c.Close()
				t.Errorf("the visitor reached :%s", port)
				continue
			}
			// A refusal (RST) would mean no firewall: ufw drops.
			var ne net.Error
			if !errors.Is(err, context.DeadlineExceeded) && !(errors.As(err, &ne) && ne.Timeout()) {
				t.Errorf(":%s: %v, want a timeout (dropped)", port, err)
			}
		}
		return "3100, 9090, 9091 dropped from the visitor (a listener on 0.0.0.0:9091 included)"
	})

	r.Step(t, "ssh and fail2ban", func(t *testing.T) string {
		sshAddr := d.Addr.String() + ":22"
		signer, err := ssh.NewSignerFromKey(operatorKey)
		if err != nil {
			t.Fatal(err)
		}
		dialSSH := func(h *Host, user string, auth ...ssh.AuthMethod) error {
			c, err := h.Dial(ctx, "tcp", sshAddr)
			if err != nil {
				return err
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			cc, _, _, err := ssh.NewClientConn(c, sshAddr, &ssh.ClientConfig{User: user, Auth: auth, HostKeyCallback: ssh.InsecureIgnoreHostKey()})
			if err != nil {
				c.Close()
				return err
			}
			cc.Close()
			return nil
		}
		if err := dialSSH(visitor, "root", ssh.PublicKeys(signer)); err != nil {
			t.Fatalf("the operator's key: %v", err)
		}
		err = dialSSH(visitor, "root", ssh.Password("guess"))
		if err == nil || strings.Contains(err.Error(), "attempted methods [none password]") {
			t.Errorf("password login is offered: %v", err)
		}
		for i := 0; i < 8; i++ {
			if err := dialSSH(attacker, fmt.Sprintf("admin%d", i), ssh.Password("hunter2")); err == nil {
				t.Fatal("an invalid user logged in")
			}
			out, _ := d.Exec(ctx, "fail2ban-client", "status", "sshd")
			if strings.Contains(string(out), AttackerAddr.String()) {
				break
			}
		}
		if err := waitFor(ctx, 60*time.Second, func() bool {
			out, _ := d.Exec(ctx, "fail2ban-client", "status", "sshd")
			return strings.Contains(string(out), AttackerAddr.String())
		}); err != nil {
			out, _ := d.Exec(ctx, "fail2ban-client", "status", "sshd")
			t.Fatalf("the attacker is not banned:\n%s", out)
		}
		// fail2ban lists the ban before its ufw action has run: wait for the
		// effect itself.
		if err := waitFor(ctx, 30*time.Second, func() bool {
			dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			c, err := attacker.Dial(dctx, "tcp", sshAddr)
			if err == nil {
				c.Close()
			}
			return err != nil
		}); err != nil {
			diag, _ := d.Exec(ctx, "sh", "-c", "ufw status numbered; tail -20 /var/log/fail2ban.log")
			t.Errorf("the banned attacker still connects to :22\n%s", diag)
		}
		if err := dialSSH(visitor, "root", ssh.PublicKeys(signer)); err != nil {
			t.Errorf("the visitor is locked out too: %v", err)
		}
		return "key login works, password not offered; attacker banned after failed logins (ufw), visitor unaffected"
	})

	// Steps 2–7 of the scenario: the relay in use.
	world := relaySteps(t, ctx, l, d, box, home, visitor, agentBin, appBin)

	r.Step(t, "hardening figures", func(t *testing.T) string {
		var notes []string
		for _, u := range []string{install.UnitPanel, install.UnitTunnel, install.UnitAuth, install.UnitHelper, install.UnitRenew} {
			out, err := d.Exec(ctx, "systemd-analyze", "security", "--no-pager", u)
			if err != nil && len(out) == 0 {
				t.Fatalf("systemd-analyze security %s: %v", u, err)
			}
			score := strings.Join(strings.Fields(exposure(string(out)))[:min(2, len(strings.Fields(exposure(string(out)))))], " ")
			if score == "" {
				t.Errorf("%s: no exposure level in\n%s", u, tail(string(out), 500))
			}
			notes = append(notes, strings.TrimSuffix(u, ".service")+" "+score)
			r.Note("  systemd-analyze "+u, score)
		}
		st, _ := sd.Status(ctx, "portlama-panel")
		rss, err := d.Exec(ctx, "ps", "-o", "rss=", "-p", fmt.Sprint(st.MainPID))
		if err != nil {
			t.Fatal(err)
		}
		r.Note("  panel idle RSS", strings.TrimSpace(string(rss))+" KiB")
		ngx, _ := d.Exec(ctx, "ps", "-C", "nginx", "-o", "rss=")
		r.Note("  nginx RSS (all processes)", fmt.Sprintf("%d KiB", sumFields(string(ngx))))
		return strings.Join(notes, ", ")
	})

	r.Step(t, "reinstall", func(t *testing.T) string {
		before := snapshot(t, ctx, d)
		panelBefore, _ := sd.Status(ctx, "portlama-panel")
		ev := installEvents(t, ctx, d, "--dev")
		for _, e := range finished(ev) {
			if e.Changed {
				t.Errorf("a second install changed %s: %s", e.Task, e.Message)
			}
		}
		after := snapshot(t, ctx, d)
		for f, sum := range before {
			if after[f] != sum {
				t.Errorf("%s changed", f)
			}
		}
		for f := range after {
			if _, ok := before[f]; !ok {
				t.Errorf("%s appeared", f)
			}
		}
		panelAfter, _ := sd.Status(ctx, "portlama-panel")
		if panelAfter.MainPID != panelBefore.MainPID {
			t.Error("a second install restarted the panel")
		}
		return fmt.Sprintf("nothing changed (%d files compared), panel not restarted", len(before))
	})

	r.Step(t, "update", func(t *testing.T) string {
		// A newer binary: install replaces it, restarts what runs it, and
		// keeps configuration and certificates.
		if err := d.CopyIn(portlamaNext, "/root/portlama-next", 0o755); err != nil {
			t.Fatal(err)
		}
		keep := snapshot(t, ctx, d)
		panelBefore, _ := sd.Status(ctx, "portlama-panel")
		ev := installWith(t, ctx, d, "/root/portlama-next", "--dev")
		f := finished(ev)
		if !f["binary"].Changed || !f["services"].Changed || !strings.Contains(f["services"].Message, "panel restarted") {
			t.Errorf("update: binary %+v, services %+v", f["binary"], f["services"])
		}
		for _, task := range []string{"pki", "config", "units", "nginx", "firewall", "fail2ban", "ssh"} {
			if f[task].Changed {
				t.Errorf("an update changed %s: %s", task, f[task].Message)
			}
		}
		after := snapshot(t, ctx, d)
		for file, sum := range keep {
			// The auth server's session store is runtime state: it is
			// saved whenever the server stops (the update restarts it).
			if file == "etc/portlama/auth/sessions.json" {
				continue
			}
			if strings.HasPrefix(file, "etc/portlama/") && after[file] != sum {
				t.Errorf("the update changed %s", file)
			}
		}
		panelAfter, _ := sd.Status(ctx, "portlama-panel")
		if panelAfter.MainPID == panelBefore.MainPID {
			t.Error("the panel still runs the old binary")
		}
		_, body := get(t, home.HTTPClient(adminTLS(t, d)), "https://"+d.Addr.String()+":9292/api/health")
		if !strings.Contains(body, nextVersion) {
			t.Errorf("health after the update: %s", body)
		}
		return "binary replaced, panel restarted on " + nextVersion + ", /etc/portlama unchanged"
	})

	r.Step(t, "reboot", func(t *testing.T) string {
		start := time.Now()
		if err := d.Reboot(ctx); err != nil {
			t.Fatal(err)
		}
		if err := waitHealthy(ctx, home.HTTPClient(adminTLS(t, d)), "https://"+d.Addr.String()+":9292/api/onboarding/status"); err != nil {
			t.Fatalf("the panel does not come back after a reboot: %v", err)
		}
		took := time.Since(start)
		if state := d.SystemState(ctx); state != "running" {
			out, _ := d.Exec(ctx, "systemctl", "--failed", "--no-legend")
			t.Fatalf("after the reboot: %s\n%s", state, out)
		}
		out, _ := d.Exec(ctx, "ufw", "status")
		if !strings.Contains(string(out), "Status: active") {
			t.Error("ufw is off after the reboot")
		}
		// The tunnel and auth servers come back by themselves, and the
		// home's agent reconnects.
		appTook, err := waitApp(ctx, world.relayClient(visitor), world.pubURL, world.pubName, nil, 60*time.Second)
		if err != nil {
			t.Fatalf("%v\nagent:\n%s", err, world.agentTail())
		}
		return fmt.Sprintf("panel answers again %s after the power cycle; the home's app through its tunnel %s after the panel",
			took.Round(100*time.Millisecond), appTook.Round(100*time.Millisecond))
	})

	r.Step(t, "home reboot", func(t *testing.T) string {
		// The person's machine at home is power-cycled: the agent's
		// service (and the apps) must come back by themselves.
		c := world.relayClient(visitor)
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		start := time.Now()
		if err := box.Shutdown(sctx); err != nil {
			t.Fatal(err)
		}
		off := time.Since(start)
		if code, _, body, err := fetch(ctx, c, world.pubURL, nil); err == nil && code == http.StatusOK && strings.Contains(body, world.pubName) {
			t.Fatal("the home's app answers with the home machine off")
		}
		bootStart := time.Now()
		if err := box.Boot(ctx); err != nil {
			t.Fatal(err)
		}
		booted := time.Since(bootStart)
		appTook, err := waitApp(ctx, c, world.pubURL, world.pubName, nil, 60*time.Second)
		if err != nil {
			t.Fatalf("%v\nagent:\n%s", err, world.agentTail())
		}
		if err := world.agentService(ctx); err != nil {
			t.Error(err)
		}
		return fmt.Sprintf("home machine off in %s (the app unreachable meanwhile), booted in %s; the app answers through the relay %s after the boot finished, %s after the power-off; the agent's user unit active, enabled, connected per portlama-agent status",
			off.Round(100*time.Millisecond), booted.Round(100*time.Millisecond), appTook.Round(100*time.Millisecond), time.Since(start).Round(100*time.Millisecond))
	})

	logStreamStep(t, ctx, l, d, world)

	r.Step(t, "uninstall", func(t *testing.T) string {
		caBefore, _ := d.ReadFile("/etc/portlama/pki/ca.crt")
		out, err := d.Run(ctx, "/usr/local/bin/portlama", "uninstall", "--yes", "--json")
		if err != nil {
			t.Fatalf("uninstall: %v\n%s", err, out)
		}
		var uev []install.Event
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			var e install.Event
			if json.Unmarshal([]byte(line), &e) == nil {
				uev = append(uev, e)
			}
		}
		for _, p := range []string{"/usr/local/bin/portlama", "/etc/systemd/system/portlama-panel.service", "/etc/systemd/system/nginx.service.d/portlama.conf",
			"/etc/nginx/conf.d/portlama.conf", "/etc/nginx/sites-available/portlama-panel-ip", "/etc/nginx/snippets/portlama-tls.conf",
			"/etc/fail2ban/jail.d/portlama.conf", "/var/www/portlama", "/var/lib/portlama", "/etc/portlama/panel.json", "/etc/ssh/sshd_config.portlama-orig",
			"/etc/nginx/portlama-checked", "/etc/nginx/nginx.conf.portlama-orig", "/run/portlama", "/etc/fail2ban/filter.d/portlama-auth.conf"} {
			if _, err := os.Lstat(d.Path(p)); err == nil {
				t.Errorf("%s is still there", p)
			}
		}
		for _, p := range []string{"/etc/nginx/nginx.conf", "/etc/ssh/sshd_config"} {
			orig, _ := os.ReadFile(filepath.Join(d.Rootfs().Dir, p))
			cur, _ := d.ReadFile(p)
			if !bytes.Equal(orig, cur) {
				t.Errorf("%s differs from the original", p)
			}
		}
		if target, err := os.Readlink(d.Path("/etc/nginx/sites-enabled/default")); err != nil || target != "/etc/nginx/sites-available/default" {
			t.Errorf("the default site is not back: %q %v", target, err)
		}
		if got := fileInfo(t, ctx, d, "/etc/portlama/pki/ca.key"); got != "600 root:root regular file" {
			t.Errorf("kept CA key: %s", got)
		}
		if _, err := d.Exec(ctx, "getent", "passwd", "portlama"); err == nil {
			t.Error("the user portlama is still there")
		}
		ufw, _ := d.Exec(ctx, "ufw", "status")
		for _, line := range strings.Split(string(ufw), "\n") {
			f := strings.Fields(line)
			if len(f) > 0 && slices.Contains([]string{"80/tcp", "443/tcp", "9292/tcp"}, f[0]) {
				t.Errorf("ufw still allows %s", f[0])
			}
		}
		if !strings.Contains(string(ufw), "8443/tcp") || !strings.Contains(string(ufw), "22/tcp") {
			t.Errorf("uninstall took the operator's or the SSH rule:\n%s", ufw)
		}
		if st, _ := sd.Status(ctx, "nginx"); st.State != system.StateActive {
			t.Error("nginx is not running after uninstall")
		}
		// The distribution's default site answers again (on the machine:
		// the firewall no longer opens 80).
		body, err := d.Exec(ctx, "curl", "-s", "http://127.0.0.1/")
		if err != nil || !strings.Contains(string(body), "Welcome to nginx") {
			t.Errorf("the distribution's default site: %v %s", err, tail(string(body), 200))
		}
		// Installing again (as a person would, without --json) keeps the
		// kept CA.
		againStart := time.Now()
		human, err := d.Run(ctx, "/root/portlama", "install", "--dev")
		againTook := time.Since(againStart)
		if err != nil {
			t.Fatalf("install again: %v\n%s", err, human)
		}
		for _, want := range []string{"Portlama is installed.", "scp root@203.0.113.10:/etc/portlama/pki/client.p12 .", "https://203.0.113.10:9292", "cat /etc/portlama/pki/.p12-password", "ok       pki"} {
			if !strings.Contains(string(human), want) {
				t.Errorf("the install output lacks %q:\n%s", want, human)
			}
		}
		t.Logf("portlama install, as printed:\n%s", human)
		caAfter, _ := d.ReadFile("/etc/portlama/pki/ca.crt")
		if len(caBefore) == 0 || !bytes.Equal(caBefore, caAfter) {
			t.Error("a new install after uninstall made a new CA")
		}
		// --purge takes the PKI too.
		purgeStart := time.Now()
		if out, err := d.Run(ctx, "/usr/local/bin/portlama", "uninstall", "--yes", "--purge"); err != nil {
			t.Fatalf("uninstall --purge: %v\n%s", err, out)
		}
		if _, err := os.Lstat(d.Path("/etc/portlama")); err == nil {
			t.Error("--purge left /etc/portlama")
		}
		return fmt.Sprintf("everything removed, originals back, PKI kept; a new install (%s) reuses the CA; --purge (%s) removes it; slowest: %s",
			againTook.Round(100*time.Millisecond), time.Since(purgeStart).Round(100*time.Millisecond), slowest(uev))
	})

	r.Step(t, "memory", func(t *testing.T) string {
		m, err := d.Memory()
		if err != nil {
			t.Fatal(err)
		}
		if m.Limit != 512<<20 {
			t.Errorf("limit %d, want 512 MiB", m.Limit)
		}
		if m.OOMKills != 0 {
			t.Errorf("%d processes were OOM-killed under 512 MiB", m.OOMKills)
		}
		if m.Peak <= 0 || m.Usage <= 0 {
			t.Errorf("no memory accounted: %+v", m)
		}
		return fmt.Sprintf("whole run under a 512 MiB limit: peak %d MiB (page cache included), limit hits %d, OOM kills %d", m.Peak>>20, m.Failcnt, m.OOMKills)
	})
}

// writeAsPortlama writes a file as the service user, as a compromised
// panel could.
func writeAsPortlama(t *testing.T, ctx context.Context, d *Droplet, path, content string) {
	t.Helper()
	cmd := d.Cmd(ctx, RunOpts{User: "portlama"}, "tee", path)
	cmd.Stdin = strings.NewReader(content)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("write %s as portlama: %v\n%s", path, err, out)
	}
}

// authFailureLines are log lines in the auth server's format: three failed
// logins (one with a user name that tries to smuggle in an address) and
// one success-like line.
func authFailureLines(t *testing.T) string {
	t.Helper()
	var b bytes.Buffer
	log := slog.New(slog.NewTextHandler(&b, nil))
	log.Warn("first factor failed", "user", "bob", "ip", "198.51.100.7")
	log.Warn("second factor failed", "user", "alice", "ip", "198.51.100.8")
	log.Warn("first factor failed", "user", `x" ip=9.9.9.9`, "ip", "198.51.100.9")
	log.Info("login", "user", "bob", "ip", "9.9.9.9")
	return b.String()
}

// exposure finds systemd-analyze's "Overall exposure level" line.
func exposure(out string) string {
	for _, line := range strings.Split(out, "\n") {
		if i := strings.Index(line, "Overall exposure level for "); i >= 0 {
			if _, v, ok := strings.Cut(line[i:], ": "); ok {
				return strings.TrimSpace(v)
			}
		}
	}
	return ""
}

func sumFields(s string) int {
	n := 0
	for _, f := range strings.Fields(s) {
		var v int
		fmt.Sscan(f, &v)
		n += v
	}
	return n
}

// waitFor polls cond until it holds or d passes.
func waitFor(ctx context.Context, d time.Duration, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}

// waitHealthy polls url until it answers 200.
func waitHealthy(ctx context.Context, c *http.Client, url string) error {
	var last error
	err := waitFor(ctx, 60*time.Second, func() bool {
		resp, err := c.Get(url)
		if err != nil {
			last = err
			return false
		}
		resp.Body.Close()
		last = fmt.Errorf("%s", resp.Status)
		return resp.StatusCode == http.StatusOK
	})
	if err != nil {
		return fmt.Errorf("%w (last: %v)", err, last)
	}
	return nil
}

// slowest names the install tasks that took longest, from the events'
// time stamps.
func slowest(events []install.Event) string {
	type d struct {
		task string
		dur  time.Duration
	}
	var ds []d
	started := map[string]time.Time{}
	for _, e := range events {
		ts, err := time.Parse("2006-01-02T15:04:05.000Z", e.Time)
		if err != nil {
			continue
		}
		switch e.Status {
		case install.StatusRunning:
			started[e.Task] = ts
		case install.StatusDone, install.StatusSkipped:
			if s, ok := started[e.Task]; ok {
				ds = append(ds, d{e.Task, ts.Sub(s)})
			}
		}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i].dur > ds[j].dur })
	var parts []string
	for i := 0; i < len(ds) && i < 3; i++ {
		parts = append(parts, fmt.Sprintf("%s %s", ds[i].task, ds[i].dur.Round(100*time.Millisecond)))
	}
	return strings.Join(parts, ", ")
}
