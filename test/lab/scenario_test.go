//go:build lab

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

var portlamaBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "portlama-lab-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	portlamaBin = os.Getenv("PORTLAMA_BIN")
	if portlamaBin == "" {
		portlamaBin = filepath.Join(dir, "portlama")
		cmd := exec.Command("go", "build", "-trimpath", "-o", portlamaBin, "github.com/portlama/portlama/cmd/portlama")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build portlama: %v\n%s", err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// installEvents runs portlama install --json in the droplet and returns
// its events.
func installEvents(t *testing.T, ctx context.Context, d *Droplet, args ...string) []install.Event {
	t.Helper()
	cmd := d.Cmd(ctx, "", append([]string{"/root/portlama", "install", "--json"}, args...)...)
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

func TestRelayLab(t *testing.T) {
	ctx := context.Background()
	l := New(t, Options{})
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
	var d *Droplet
	var visitor, attacker, home *Host
	r.Step(t, "boot", func(t *testing.T) string {
		d = l.Droplet(ctx, DropletConfig{Rootfs: rootfs})
		visitor = l.Host("visitor", VisitorAddr)
		attacker = l.Host("attacker", AttackerAddr)
		home = l.NATHome("home")
		return "droplet " + d.Addr.String() + " booted: " + d.SystemState(ctx)
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
		return "home behind NAT (seen as " + RouterAddr.String() + "), no inbound"
	})

	var events []install.Event
	var operatorKey ed25519.PrivateKey
	r.Step(t, "install", func(t *testing.T) string {
		if err := d.CopyIn(portlamaBin, "/root/portlama", 0o755); err != nil {
			t.Fatal(err)
		}
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
		events = installEvents(t, ctx, d, "--dev")
		f := finished(events)
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
		return fmt.Sprintf("%d tasks, %s", len(f), f["ip"].Message)
	})
	_ = attacker
	_ = operatorKey
	_ = home
	_ = system.StateActive
	_ = sort.Strings
	_ = slices.Contains[[]string]
	_ = errors.New
}
