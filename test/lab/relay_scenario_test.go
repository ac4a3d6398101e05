package lab

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/portlama/portlama/internal/agent"
	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/demo"
	"github.com/portlama/portlama/internal/panelclient"
	"github.com/portlama/portlama/internal/pebble"
	"github.com/portlama/portlama/internal/system"
	"github.com/portlama/portlama/internal/testutil"
)

// The relay the way a user runs it, after install: onboarding from home
// with the admin P12, provisioning against Pebble, a user with TOTP, the
// agent in the home behind NAT, visitors logging in, a tunnel-server
// restart, fail2ban on the auth server's failed logins.

// labDomain is the relay's base domain in the lab.
const labDomain = "relay-lab.net"

// GuesserAddr is a host that guesses passwords at the login portal.
var GuesserAddr = netip.MustParseAddr("203.0.113.31")

// relayWorld is what the relay steps share.
type relayWorld struct {
	d                *Droplet
	home, visitor    *Host
	admin            *panelclient.Client
	roots            *x509.CertPool // Pebble's issuing root: the relay's certificates
	user             labUser
	appURL, pubURL   string
	agentBin, appBin string
	appName, pubName string
	// box is the home machine (booted) that runs the agent's service.
	box     *Droplet
	homeUID string
}

type labUser struct{ name, password, secret string }

// relayClient is an HTTP client at h that reaches every name under
// labDomain at the droplet and trusts Pebble's root; it does not follow
// redirects.
func (w *relayWorld) relayClient(h *Host) *http.Client {
	return &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				_, port, err := net.SplitHostPort(addr)
				if err != nil {
					return nil, err
				}
				return h.Dial(ctx, network, net.JoinHostPort(w.d.Addr.String(), port))
			},
			TLSClientConfig:   &tls.Config{RootCAs: w.roots},
			DisableKeepAlives: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func (w *relayWorld) portal(h *Host) *panelclient.Portal {
	return panelclient.NewPortal("https://auth."+labDomain, w.relayClient(h))
}

// fetch GETs url with cookie (nil: none) and returns the status, the
// Location header and the start of the body.
func fetch(ctx context.Context, c *http.Client, u string, cookie *http.Cookie) (int, string, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, "", "", err
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, resp.Header.Get("Location"), string(b), nil
}

// waitApp waits until u answers 200 with want in the body (deadline
// within) and returns how long it took.
func waitApp(ctx context.Context, c *http.Client, u, want string, cookie *http.Cookie, within time.Duration) (time.Duration, error) {
	start := time.Now()
	var last string
	err := waitFor(ctx, within, func() bool {
		code, _, body, err := fetch(ctx, c, u, cookie)
		if err != nil {
			last = err.Error()
			return false
		}
		last = fmt.Sprintf("%d %s", code, tail(body, 200))
		return code == http.StatusOK && strings.Contains(body, want)
	})
	if err != nil {
		return time.Since(start), fmt.Errorf("%s did not answer within %v (last: %s)", u, within, last)
	}
	return time.Since(start), nil
}

// startPebble runs Pebble and its DNS server inside the droplet, as
// transient units: challtestsrv answers every name with the droplet's
// address on 127.0.0.1:53 (the droplet's resolver), Pebble's HTTPS
// certificate is trusted system-wide there, and panel.json points ACME at
// it. It returns Pebble's issuing root.
func startPebble(t *testing.T, ctx context.Context, d *Droplet) *x509.CertPool {
	t.Helper()
	pebbleBin, err := pebble.Find("pebble")
	if err != nil {
		t.Fatal(err)
	}
	challBin, err := pebble.Find("pebble-challtestsrv")
	if err != nil {
		t.Fatal(err)
	}
	for src, dst := range map[string]string{pebbleBin: "/usr/local/bin/pebble", challBin: "/usr/local/bin/pebble-challtestsrv"} {
		if err := d.CopyIn(src, dst, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	ca, cert, key := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if _, err := pebble.WriteTLS(ca, cert, key); err != nil {
		t.Fatal(err)
	}
	for src, dst := range map[string]string{ca: "/usr/local/share/ca-certificates/lab-pebble.crt", cert: "/root/pebble/cert.pem", key: "/root/pebble/key.pem"} {
		if err := d.CopyIn(src, dst, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := d.Exec(ctx, "update-ca-certificates"); err != nil {
		t.Fatalf("update-ca-certificates: %v\n%s", err, out)
	}
	conf, _ := json.Marshal(map[string]any{"pebble": map[string]any{
		"listenAddress": "127.0.0.1:14000", "managementListenAddress": "127.0.0.1:15000",
		"certificate": "/root/pebble/cert.pem", "privateKey": "/root/pebble/key.pem",
		"httpPort": 80, "tlsPort": 5001, "ocspResponderURL": "", "externalAccountBindingRequired": false,
		"retryAfter": map[string]int{"authz": 1, "order": 1}, "keyAlgorithm": "ecdsa",
	}})
	if err := d.WriteFile("/root/pebble/config.json", conf, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Exec(ctx, "systemd-run", "--quiet", "--collect", "--unit=lab-challtestsrv", "--",
		"/usr/local/bin/pebble-challtestsrv", "-dnsserver", "127.0.0.1:53", "-management", "127.0.0.1:8055",
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "", "-defaultIPv4", d.Addr.String(), "-defaultIPv6", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Exec(ctx, "systemd-run", "--quiet", "--collect", "--unit=lab-pebble",
		"--setenv=PEBBLE_VA_NOSLEEP=1", "--setenv=PEBBLE_WFE_NONCEREJECT=0", "--setenv=PEBBLE_AUTHZREUSE=0", "--",
		"/usr/local/bin/pebble", "-config", "/root/pebble/config.json", "-dnsserver", "127.0.0.1:53", "-strict=false"); err != nil {
		t.Fatal(err)
	}
	var root []byte
	if err := waitFor(ctx, 30*time.Second, func() bool {
		out, err := d.Exec(ctx, "curl", "-sf", "https://127.0.0.1:15000/roots/0")
		root = out
		return err == nil && strings.Contains(string(out), "BEGIN CERTIFICATE")
	}); err != nil {
		out, _ := d.Exec(ctx, "journalctl", "-u", "lab-pebble", "-u", "lab-challtestsrv", "--no-pager", "-n", "30")
		t.Fatalf("Pebble does not answer in the droplet:\n%s", out)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(root) {
		t.Fatal("Pebble's root does not parse")
	}
	// ACME at Pebble: what an operator of a staging relay would change.
	raw, err := d.ReadFile("/etc/portlama/panel.json")
	if err != nil {
		t.Fatal(err)
	}
	var pc map[string]any
	if err := json.Unmarshal(raw, &pc); err != nil {
		t.Fatal(err)
	}
	acme, _ := pc["acme"].(map[string]any)
	if acme == nil {
		acme = map[string]any{}
	}
	acme["directoryUrl"] = "https://127.0.0.1:14000/dir"
	pc["acme"] = acme
	data, _ := json.MarshalIndent(pc, "", "  ")
	writeAsPortlama(t, ctx, d, "/etc/portlama/panel.json", string(data)+"\n")
	return pool
}

// homeUser is the person at home who installs the agent with
// portlama-agent's defaults: a systemd user unit, kept running with nobody
// logged in (and started at boot) by linger, as the install advises.
const homeUser = "sam"

// HomeMasked are the units of the shared root file system that the home
// machine does not run.
var HomeMasked = []string{"nginx.service", "fail2ban.service", "ssh.service", "ufw.service"}

// homeApp is an app the home machine serves on its loopback (a systemd
// service of its own, so it comes back after a reboot).
type homeApp struct {
	sub, name string
	port      int
	mode      api.AccessMode
}

func (w *relayWorld) homeApps() []homeApp {
	return []homeApp{{"app", w.appName, 8080, api.AccessAuthenticated}, {"pub", w.pubName, 8081, api.AccessPublic}}
}

// prepareHome makes the home machine what a person's server at home is:
// the relay's names resolve to the droplet (its router's DNS would), the
// system trusts the relay's certificate issuer (Pebble stands in for a
// public CA), the apps run as services, and the person has an account
// with linger on (their systemd runs) and portlama-agent in /usr/local/bin.
func (w *relayWorld) prepareHome(t *testing.T, ctx context.Context) {
	t.Helper()
	b := w.box
	var hosts strings.Builder
	fmt.Fprintf(&hosts, "127.0.0.1 localhost\n127.0.1.1 %s\n", b.Name)
	for _, n := range []string{"", "panel.", "tunnel.", "auth.", "app.", "pub."} {
		fmt.Fprintf(&hosts, "%s %s%s\n", w.d.Addr, n, labDomain)
	}
	roots, err := w.d.Exec(ctx, "curl", "-sf", "https://127.0.0.1:15000/roots/0")
	if err != nil {
		t.Fatalf("Pebble's root: %v", err)
	}
	self, err := w.d.ReadFile("/etc/portlama/pki/self-signed.pem")
	if err != nil {
		t.Fatal(err)
	}
	for path, data := range map[string][]byte{
		"/etc/hosts": []byte(hosts.String()),
		// pam_systemd (libpam-systemd, on installed Debian systems but
		// not in the lab's minimal root file system) gives each user's
		// systemd its runtime directory; this drop-in does only that.
		"/etc/systemd/system/user@.service.d/lab-runtime-dir.conf": []byte("[Service]\nEnvironment=XDG_RUNTIME_DIR=/run/user/%i\n"),
		"/usr/local/share/ca-certificates/lab-pebble.crt":          roots,
		"/etc/portlama-lab/panel-ip.pem":                           self,
	} {
		if err := b.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.CopyIn(w.agentBin, "/usr/local/bin/portlama-agent", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := b.CopyIn(w.appBin, "/usr/local/bin/labapp", 0o755); err != nil {
		t.Fatal(err)
	}
	var units []string
	for _, a := range w.homeApps() {
		unit := "lab-" + a.sub + ".service"
		conf := fmt.Sprintf("[Unit]\nDescription=%s\n\n[Service]\nExecStart=/usr/local/bin/labapp -listen 127.0.0.1:%d -name \"%s\"\nDynamicUser=yes\nRestart=always\n\n[Install]\nWantedBy=multi-user.target\n", a.name, a.port, a.name)
		if err := b.WriteFile("/etc/systemd/system/"+unit, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		units = append(units, unit)
	}
	for _, argv := range [][]string{
		{"update-ca-certificates"},
		{"systemctl", "daemon-reload"},
		append([]string{"systemctl", "enable", "--now"}, units...),
		{"useradd", "--create-home", "--shell", "/bin/bash", homeUser},
		// What portlama-agent service install tells the person to run
		// (as root here: the lab's system has no polkit to allow it).
		{"loginctl", "enable-linger", homeUser},
	} {
		if out, err := b.Exec(ctx, argv...); err != nil {
			t.Fatalf("home machine: %s: %v\n%s", strings.Join(argv, " "), err, out)
		}
	}
	out, err := b.Exec(ctx, "id", "-u", homeUser)
	if err != nil {
		t.Fatal(err)
	}
	w.homeUID = strings.TrimSpace(string(out))
	if err := waitFor(ctx, 30*time.Second, func() bool {
		out, _ := b.Exec(ctx, "systemctl", "is-active", "user@"+w.homeUID+".service")
		return strings.TrimSpace(string(out)) == "active"
	}); err != nil {
		out, _ := b.Exec(ctx, "systemctl", "status", "--no-pager", "user@"+w.homeUID+".service")
		t.Fatalf("linger did not start %s's systemd:\n%s", homeUser, out)
	}
}

// asHomeUser runs portlama-agent with args as the person at home, with the
// environment of their login session (their systemd's runtime directory).
func (w *relayWorld) asHomeUser(ctx context.Context, args ...string) ([]byte, error) {
	return w.box.RunWith(ctx, RunOpts{User: homeUser, Properties: []string{"Environment=XDG_RUNTIME_DIR=/run/user/" + w.homeUID}},
		append([]string{"/usr/local/bin/portlama-agent"}, args...)...)
}

// enrollHome runs portlama-agent setup on the home machine with a
// one-time token from the admin API.
func (w *relayWorld) enrollHome(t *testing.T, ctx context.Context) {
	t.Helper()
	caps := []api.Capability{api.CapTunnelsRead}
	tok, err := w.admin.CreateEnrollmentToken(ctx, api.NewAgentRequest{Label: "home", Capabilities: &caps})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := w.asHomeUser(ctx, "setup", "--token", tok.Token,
		"--panel-url", "https://"+w.d.Addr.String()+":9292", "--ca-cert", "/etc/portlama-lab/panel-ip.pem"); err != nil {
		t.Fatalf("portlama-agent setup on the home machine: %v\n%s", err, out)
	}
}

// agentService checks the agent's service the way the person would: the
// unit is active and enabled (`service status`), and
// `portlama-agent status` sees the service's agent running with its
// tunnel connection up (the live state it writes into the agent
// directory, which the unit's sandbox must leave writable).
func (w *relayWorld) agentService(ctx context.Context) error {
	out, err := w.asHomeUser(ctx, "service", "status")
	if err != nil {
		return fmt.Errorf("portlama-agent service status: %w\n%s", err, out)
	}
	st := string(out)
	if !strings.Contains(st, "Service state: active") || !strings.Contains(st, "Enabled:       enabled") {
		return fmt.Errorf("the agent's service is not active and enabled:\n%s", st)
	}
	if err := waitFor(ctx, 20*time.Second, func() bool {
		b, _ := w.asHomeUser(ctx, "status")
		out = b
		return strings.Contains(string(b), "Agent:         running (pid") && strings.Contains(string(b), "tunnel connection connected")
	}); err != nil {
		return fmt.Errorf("portlama-agent status does not see the service's agent connected:\n%s", out)
	}
	return nil
}

// agentTail is the end of the agent service's journal on the home machine.
func (w *relayWorld) agentTail() string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, _ := w.box.Exec(ctx, "journalctl", "--user-unit", agent.SystemdUnitName("home"), "--no-pager", "-n", "30")
	return tail(string(out), 1500)
}

// rssTable lists the resident memory of each portlama process and of
// nginx (all its processes) in the droplet, and for the three daemons
// together also their anonymous memory and PSS (they are one binary, whose
// page-cache pages RSS counts in each of them: docs/architecture.md,
// "Memory"). The total is RSS in KiB.
func rssTable(ctx context.Context, d *Droplet) (string, int) {
	sd := d.Services()
	var parts []string
	var daemons testutil.ProcMem
	for _, u := range []string{system.UnitPanel, system.UnitTunnel, system.UnitAuth} {
		st, err := sd.Status(ctx, u)
		if err != nil || st.MainPID == 0 {
			parts = append(parts, u+" ?")
			continue
		}
		pid := strconv.Itoa(st.MainPID)
		status, _ := d.Exec(ctx, "cat", "/proc/"+pid+"/status")
		rollup, _ := d.Exec(ctx, "cat", "/proc/"+pid+"/smaps_rollup")
		m := testutil.ParseProcMem(string(status), string(rollup))
		daemons = daemons.Add(m)
		parts = append(parts, fmt.Sprintf("%s %.1f MiB", strings.TrimPrefix(u, "portlama-"), m.RSS))
	}
	out, _ := d.Exec(ctx, "ps", "-C", "nginx", "-o", "rss=")
	kb := sumFields(string(out))
	parts = append(parts, fmt.Sprintf("nginx (all) %.1f MiB", float64(kb)/1024),
		fmt.Sprintf("panel+tunnel+auth RSS %.1f MiB (anon %.1f, PSS %.1f)", daemons.RSS, daemons.Anon, daemons.PSS))
	return strings.Join(parts, ", "), kb + int(daemons.RSS*1024)
}

// relaySteps runs the provisioned-relay part of the scenario.
func relaySteps(t *testing.T, ctx context.Context, l *Lab, d, box *Droplet, home, visitor *Host, agentBin, appBin string) *relayWorld {
	r := l.Report
	w := &relayWorld{d: d, home: home, visitor: visitor, box: box, agentBin: agentBin, appBin: appBin}
	w.admin = panelclient.New("https://"+d.Addr.String()+":9292", home.HTTPClient(adminTLS(t, d)))

	r.Step(t, "onboarding", func(t *testing.T) string {
		w.roots = startPebble(t, ctx, d)
		if _, err := w.admin.SetDomain(ctx, api.SetDomainRequest{Domain: labDomain, Email: "ops@" + labDomain}); err != nil {
			t.Fatal(err)
		}
		if res, err := w.admin.VerifyDNS(ctx); err != nil || !res.OK {
			t.Fatalf("verify DNS: %+v %v", res, err)
		}
		start := time.Now()
		pctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
		defer cancel()
		var tasks []string
		res, err := demo.RunProvisioning(pctx, w.admin, func(f api.ProvisionFrame) {
			if f.Status == "done" && f.Task != "" {
				tasks = append(tasks, f.Task)
			}
		})
		if err != nil {
			out, _ := d.Exec(ctx, "journalctl", "-u", "portlama-panel", "--no-pager", "-n", "40")
			t.Fatalf("provisioning: %v\n%s", err, out)
		}
		st, err := w.admin.OnboardingStatus(ctx)
		if err != nil || st.Status != "COMPLETED" {
			t.Fatalf("after provisioning: %+v %v", st, err)
		}
		for _, u := range []string{system.UnitTunnel, system.UnitAuth} {
			if s, _ := d.Services().Status(ctx, u); s.State != system.StateActive || s.UnitFileState != "enabled" {
				t.Errorf("%s after provisioning: %+v", u, s)
			}
		}
		return fmt.Sprintf("from the home with the admin P12: domain, DNS, provisioning in %s (%d tasks) against Pebble; portal admin %s",
			time.Since(start).Round(100*time.Millisecond), len(tasks), res.AdminUsername)
	})

	r.Step(t, "services API", func(t *testing.T) string {
		list, err := w.admin.Services(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range list {
			got = append(got, s.Name+" "+string(s.Status))
			if s.Status != api.ServiceActive || s.Uptime == nil {
				t.Errorf("%+v", s)
			}
		}
		// Through the root helper: systemd restarts the auth server.
		before, _ := d.Services().Status(ctx, system.UnitAuth)
		if _, err := w.admin.ServiceAction(ctx, system.UnitAuth, api.ServiceRestart); err != nil {
			t.Fatal(err)
		}
		after, _ := d.Services().Status(ctx, system.UnitAuth)
		if after.MainPID == before.MainPID || after.State != system.StateActive {
			t.Errorf("restart through the API: %+v → %+v", before, after)
		}
		// systemd reports the restart once the process runs (Type=exec):
		// wait until it serves before the next steps use it.
		if err := waitFor(ctx, 20*time.Second, func() bool {
			out, _ := d.Exec(ctx, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:9091/api/state")
			return string(out) == "200"
		}); err != nil {
			t.Fatal("the auth server does not serve after its restart")
		}
		if _, err := w.admin.ServiceAction(ctx, system.UnitPanel, api.ServiceStop); err == nil {
			t.Error("the panel stopped itself")
		}
		return strings.Join(got, ", ") + "; restart via the root helper; the panel refuses to stop itself"
	})

	r.Step(t, "user and agent", func(t *testing.T) string {
		w.user = labUser{name: "alice", password: "alice-lab-password-1"}
		if _, err := w.admin.CreateUser(ctx, api.CreateUserRequest{Username: w.user.name, DisplayName: "Alice", Email: "alice@" + labDomain, Password: w.user.password, Groups: []string{}}); err != nil {
			t.Fatal(err)
		}
		reset, err := w.admin.ResetTOTP(ctx, w.user.name)
		if err != nil {
			t.Fatal(err)
		}
		u, err := url.Parse(reset.TOTPURI)
		if err != nil || u.Query().Get("secret") == "" {
			t.Fatalf("TOTP URI %q: %v", reset.TOTPURI, err)
		}
		w.user.secret = u.Query().Get("secret")
		// The home machine: the apps as services, the person's account;
		// they enroll the agent, the admin routes the apps to it, and
		// the person installs the agent's service.
		w.appName, w.pubName = "lab private app", "lab public app"
		w.prepareHome(t, ctx)
		w.enrollHome(t, ctx)
		for _, a := range w.homeApps() {
			if _, err := w.admin.CreateTunnel(ctx, api.CreateTunnelRequest{Subdomain: a.sub, Port: a.port, AgentLabel: "home", AccessMode: a.mode}); err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now()
		if out, err := w.asHomeUser(ctx, "service", "install"); err != nil || !strings.Contains(string(out), "loginctl enable-linger") {
			t.Fatalf("portlama-agent service install: %v\n%s", err, out)
		}
		if err := w.agentService(ctx); err != nil {
			t.Fatalf("%v\n%s", err, w.agentTail())
		}
		w.appURL, w.pubURL = "https://app."+labDomain+"/", "https://pub."+labDomain+"/"
		if _, err := waitApp(ctx, w.relayClient(visitor), w.pubURL, w.pubName, nil, 60*time.Second); err != nil {
			t.Fatalf("%v\nagent:\n%s", err, w.agentTail())
		}
		return fmt.Sprintf("alice with TOTP; %s on the home machine (booted, NAT): portlama-agent setup + service install (systemd user unit, linger), active and enabled; tunnels app (authenticated) and pub (public); pub answered %s after the install began",
			homeUser, time.Since(start).Round(100*time.Millisecond))
	})

	var cookie *http.Cookie
	r.Step(t, "visitor", func(t *testing.T) string {
		c := w.relayClient(visitor)
		code, loc, _, err := fetch(ctx, c, w.appURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		if code != http.StatusFound && code != http.StatusSeeOther || !strings.HasPrefix(loc, "https://auth."+labDomain) {
			t.Fatalf("without a session: %d %q, want a redirect to the login portal", code, loc)
		}
		otp, err := totp.GenerateCode(w.user.secret, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		cookie, err = w.portal(visitor).Login(ctx, w.user.name, w.user.password, otp, w.appURL)
		if err != nil {
			t.Fatalf("login with password + TOTP: %v", err)
		}
		if _, err := waitApp(ctx, c, w.appURL, w.appName, cookie, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		code, _, body, err := fetch(ctx, c, w.pubURL, nil)
		if err != nil || code != http.StatusOK || !strings.Contains(body, w.pubName) {
			t.Fatalf("public tunnel without login: %d %v", code, err)
		}
		return "redirected to auth." + labDomain + "; password + TOTP login; the app's page through the tunnel; pub answers without login"
	})

	r.Step(t, "tunnel restart", func(t *testing.T) string {
		before, _ := d.Services().Status(ctx, system.UnitTunnel)
		start := time.Now()
		if _, err := d.Exec(ctx, "systemctl", "restart", "portlama-tunnel"); err != nil {
			t.Fatal(err)
		}
		took, err := waitApp(ctx, w.relayClient(visitor), w.appURL, w.appName, cookie, 10*time.Second)
		if err != nil {
			t.Fatalf("%v\nagent:\n%s", err, w.agentTail())
		}
		after, _ := d.Services().Status(ctx, system.UnitTunnel)
		if after.MainPID == before.MainPID {
			t.Error("the tunnel server was not restarted")
		}
		return fmt.Sprintf("systemctl restart portlama-tunnel: the app answers again %s later (limit 10 s; %s after the restart returned)",
			time.Since(start).Round(100*time.Millisecond), took.Round(100*time.Millisecond))
	})

	r.Step(t, "relay memory", func(t *testing.T) string {
		idle, idleKB := rssTable(ctx, d)
		r.Note("  RSS idle", idle)
		// 1,000 requests through the authenticated tunnel, 8 at a time.
		c := w.relayClient(visitor)
		var wg sync.WaitGroup
		var mu sync.Mutex
		failed := 0
		jobs := make(chan int)
		start := time.Now()
		for range 8 {
			wg.Go(func() {
				for range jobs {
					code, _, body, err := fetch(ctx, c, w.appURL, cookie)
					if err != nil || code != http.StatusOK || !strings.Contains(body, w.appName) {
						mu.Lock()
						failed++
						mu.Unlock()
					}
				}
			})
		}
		for i := range 1000 {
			jobs <- i
		}
		close(jobs)
		wg.Wait()
		took := time.Since(start)
		if failed > 0 {
			t.Errorf("%d of 1000 requests through the tunnel failed", failed)
		}
		loaded, loadedKB := rssTable(ctx, d)
		r.Note("  RSS after 1,000 requests", loaded)
		return fmt.Sprintf("1,000 requests through the authenticated tunnel in %s, %d failed; RSS total %.1f → %.1f MiB",
			took.Round(100*time.Millisecond), failed, float64(idleKB)/1024, float64(loadedKB)/1024)
	})

	r.Step(t, "load under 512 MiB", func(t *testing.T) string {
		// 32 visitors at once through the authenticated tunnel for a
		// minute, the droplet under its 512 MiB limit.
		before, err := d.Memory()
		if err != nil {
			t.Fatal(err)
		}
		c := w.relayClient(visitor)
		lctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		var wg sync.WaitGroup
		var mu sync.Mutex
		var ok, failed int
		var firstErr string
		for range 32 {
			wg.Go(func() {
				for lctx.Err() == nil {
					rctx, rcancel := context.WithTimeout(ctx, 15*time.Second)
					code, _, body, err := fetch(rctx, c, w.appURL, cookie)
					rcancel()
					mu.Lock()
					if err == nil && code == http.StatusOK && strings.Contains(body, w.appName) {
						ok++
					} else {
						failed++
						if firstErr == "" {
							firstErr = fmt.Sprintf("%d %v %s", code, err, tail(body, 100))
						}
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		after, err := d.Memory()
		if err != nil {
			t.Fatal(err)
		}
		if failed > 0 {
			t.Errorf("%d of %d requests failed (first: %s)", failed, ok+failed, firstErr)
		}
		if after.OOMKills != before.OOMKills {
			t.Errorf("%d processes were OOM-killed under load", after.OOMKills-before.OOMKills)
		}
		rss, _ := rssTable(ctx, d)
		r.Note("  RSS after the load", rss)
		return fmt.Sprintf("32 visitors for 1 min: %d requests (%.0f/s), %d failed; OOM kills %d; peak %d MiB of %d (page cache included)",
			ok+failed, float64(ok+failed)/60, failed, after.OOMKills-before.OOMKills, after.Peak>>20, after.Limit>>20)
	})

	r.Step(t, "auth fail2ban", func(t *testing.T) string {
		guesser := l.Host("guesser", GuesserAddr)
		p := w.portal(guesser)
		banned := func() bool {
			out, _ := d.Exec(ctx, "fail2ban-client", "status", "portlama-auth")
			return strings.Contains(string(out), GuesserAddr.String())
		}
		tries := 0
		for i := 0; i < 10 && !banned(); i++ {
			tries++
			_, err := p.FirstFactor(ctx, api.FirstFactorRequest{Username: w.user.name, Password: fmt.Sprintf("guess-%d", i)})
			if err == nil {
				t.Fatal("a guessed password logged in")
			}
			var ne net.Error
			if errors.As(err, &ne) {
				break // already dropped by the firewall
			}
		}
		if err := waitFor(ctx, 60*time.Second, banned); err != nil {
			out, _ := d.Exec(ctx, "sh", "-c", "fail2ban-client status portlama-auth; journalctl -u portlama-auth --no-pager -n 15")
			t.Fatalf("the guesser is not banned:\n%s", out)
		}
		if err := waitFor(ctx, 30*time.Second, func() bool {
			dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			c, err := guesser.Dial(dctx, "tcp", d.Addr.String()+":443")
			if err == nil {
				c.Close()
			}
			return err != nil
		}); err != nil {
			t.Error("the banned guesser still reaches :443")
		}
		// The visitor's session still works.
		if _, err := waitApp(ctx, w.relayClient(visitor), w.appURL, w.appName, cookie, 10*time.Second); err != nil {
			t.Error(err)
		}
		return fmt.Sprintf("guesser banned by the portlama-auth jail (%d failed logins sent before the ban took effect; ufw drops it); the visitor unaffected", tries)
	})
	return w
}

// unitSandbox returns the [Service] settings of a unit file that shape
// its sandbox (not what runs or restarts it), as systemd-run properties.
func unitSandbox(t *testing.T, d *Droplet, unit string) []string {
	t.Helper()
	data, err := d.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	skip := map[string]bool{"Type": true, "ExecStart": true, "ExecReload": true, "User": true, "Restart": true, "RestartSec": true, "StateDirectory": true, "StateDirectoryMode": true}
	var props []string
	in := false
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			in = line == "[Service]"
			continue
		}
		k, _, ok := strings.Cut(line, "=")
		if in && ok && !skip[k] {
			props = append(props, line)
		}
	}
	return props
}

// logStreamStep checks that a unit's journal reaches the admin's log
// stream on the relay (the panel's unit is in systemd-journal). It runs
// last: it reports, and stops nothing after it.
func logStreamStep(t *testing.T, ctx context.Context, l *Lab, d *Droplet, w *relayWorld) {
	l.Report.Step(t, "log stream", func(t *testing.T) string {
		// The journal reaches the admin's log stream (the panel is in
		// systemd-journal).
		logs, err := w.admin.OpenLogs(ctx, system.UnitAuth)
		if err != nil {
			t.Fatal(err)
		}
		defer logs.Close()
		lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		var seen []string
		if _, err := logs.Until(lctx, func(l api.LogLine) bool {
			if len(seen) < 5 {
				seen = append(seen, l.Timestamp+" "+l.Message)
			}
			return l.Timestamp != "" && strings.Contains(l.Message, "auth server listening")
		}); err != nil {
			// The same journalctl in the panel unit's sandbox, for the reason.
			out, jerr := d.RunWith(ctx, RunOpts{User: "portlama", Properties: unitSandbox(t, d, "/etc/systemd/system/portlama-panel.service")},
				"journalctl", "-u", "portlama-auth", "-n", "3", "--no-pager", "--output=short-iso")
			t.Errorf("the auth server's journal does not reach the log stream: %v; frames seen: %q\njournalctl in the panel's sandbox: %v\n%s", err, seen, jerr, out)
		}
		return "the auth server's journal streamed to the admin (WebSocket through nginx)"
	})
}
