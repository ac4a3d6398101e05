package lab

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"gopkg.in/yaml.v3"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/portlama/portlama/internal/agent"
	"github.com/portlama/portlama/internal/cloud/digitalocean"
	"github.com/portlama/portlama/internal/cloud/digitalocean/dofake"
	"github.com/portlama/portlama/internal/cloud/launch"
	"github.com/portlama/portlama/internal/keychain"
	"github.com/portlama/portlama/internal/servers"
)

// cloudInit stands in for the provider and cloud-init on the lab's
// droplet (dofake's Boot): the account key for root, the user data's
// ed25519 host key as the only host key (or wrongKey, a server that is not
// the droplet made for this job), sshd restarted.
type cloudInit struct {
	d        *Droplet
	wrongKey []byte
}

func (c *cloudInit) boot(ctx context.Context, accountKey, userData string) error {
	var ci struct {
		DeleteKeys bool     `yaml:"ssh_deletekeys"`
		GenTypes   []string `yaml:"ssh_genkeytypes"`
		Keys       struct {
			Private string `yaml:"ed25519_private"`
			Public  string `yaml:"ed25519_public"`
		} `yaml:"ssh_keys"`
	}
	if !strings.HasPrefix(userData, "#cloud-config\n") {
		return errors.New("user data is not #cloud-config")
	}
	if err := yaml.Unmarshal([]byte(userData), &ci); err != nil {
		return err
	}
	if !ci.DeleteKeys || len(ci.GenTypes) != 0 || ci.Keys.Private == "" || ci.Keys.Public == "" {
		return errors.New("the cloud-init does not replace the host keys with its own")
	}
	priv := []byte(ci.Keys.Private)
	if c.wrongKey != nil {
		priv = c.wrongKey
	}
	signer, err := ssh.ParsePrivateKey(priv)
	if err != nil {
		return err
	}
	old, _ := filepath.Glob(c.d.Path("/etc/ssh/ssh_host_*"))
	for _, p := range old {
		os.Remove(p)
	}
	if err := c.d.WriteFile("/etc/ssh/ssh_host_ed25519_key", priv, 0o600); err != nil {
		return err
	}
	if err := c.d.WriteFile("/etc/ssh/ssh_host_ed25519_key.pub", ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o644); err != nil {
		return err
	}
	if err := c.d.WriteFile("/root/.ssh/authorized_keys", []byte(accountKey+"\n"), 0o600); err != nil {
		return err
	}
	_, err = c.d.Exec(ctx, "systemctl", "restart", "ssh")
	return err
}

// dropper dials from the home and can cut the newest connection, as a
// network drop does.
type dropper struct {
	home *Host
	mu   sync.Mutex
	last net.Conn
}

func (p *dropper) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := p.home.Dial(ctx, network, addr)
	if err == nil {
		p.mu.Lock()
		p.last = c
		p.mu.Unlock()
	}
	return c, err
}

func (p *dropper) drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last != nil {
		p.last.Close()
	}
}

// TestProvisionLab provisions a relay from the home app against the fake
// DigitalOcean API whose droplet is the lab's container: host key verified
// (a wrong one refused, the droplet reported and destroyed), real
// portlama install over SSH, the SSH connection dropped during the install
// and the job resumed, the admin P12 working against the panel, the SSH
// key deleted from the account, port 22 closed on request.
func TestProvisionLab(t *testing.T) {
	if os.Getenv("PORTLAMA_LAB") != "1" {
		t.Skip("the lab runs with make lab (root, PORTLAMA_LAB=1)")
	}
	ctx := context.Background()
	l := New(t, Options{})
	bin, _, _, _ := buildBinaries(t)
	r := l.Report
	defer func() { t.Log("\n" + r.String()) }()

	var d *Droplet
	var home *Host
	r.Step(t, "boot", func(t *testing.T) string {
		d = l.Droplet(ctx, DropletConfig{Rootfs: l.Rootfs(ctx, DropletPackages), MemoryLimit: 512 << 20})
		home = l.NATHome("home")
		return "droplet " + d.Addr.String() + " booted"
	})

	ci := &cloudInit{d: d}
	const token = "dop_v1_lab"
	fake := dofake.New(dofake.Options{
		Token: token, Addr: d.Addr.String(), Boot: ci.boot,
		Sizes: []digitalocean.Size{{Slug: "s-1vcpu-512mb-10gb", Memory: 512, VCPUs: 1, Disk: 10, PriceMonthly: 4, PriceHourly: 0.00595, Regions: []string{"fra1"}, Available: true}},
	})
	srv := httptest.NewServer(fake)
	defer srv.Close()
	dir := t.TempDir()
	keys, err := keychain.Open(keychain.Options{Backend: keychain.BackendFile, File: filepath.Join(dir, "secrets.json")})
	if err != nil {
		t.Fatal(err)
	}
	reg := servers.New(agent.Home{Dir: dir}, keys)
	link := &dropper{home: home}
	job := launch.New(launch.Config{
		API: digitalocean.New(srv.URL, token, nil), Keys: keys, Servers: reg,
		StatePath: filepath.Join(dir, "provision.json"), Binary: bin, Dial: link.Dial, Dev: true, Poll: 100 * time.Millisecond,
	})
	req := launch.Request{Name: "lab-relay", Region: "fra1", Size: "s-1vcpu-512mb-10gb"}

	r.Step(t, "wrong host key", func(t *testing.T) string {
		other, err := digitalocean.NewKeyPair("someone-else")
		if err != nil {
			t.Fatal(err)
		}
		ci.wrongKey = other.PEM
		defer func() { ci.wrongKey = nil }()
		_, err = job.Start(ctx, req, nil)
		var fe *launch.FailedError
		var mm *launch.HostKeyMismatchError
		if !errors.As(err, &fe) || fe.Step != launch.StepConnect || !errors.As(err, &mm) {
			t.Fatalf("a droplet showing another host key: %v", err)
		}
		if fe.DropletID == 0 || !strings.Contains(err.Error(), "exists and costs $0.00595 an hour") {
			t.Errorf("the failure does not say the droplet exists and what it costs: %v", err)
		}
		if _, err := d.ReadFile("/root/portlama-provision"); err == nil {
			t.Error("something was uploaded to a server with the wrong host key")
		}
		if err := job.Destroy(ctx); err != nil {
			t.Fatal(err)
		}
		if k, n := fake.Counts(); k != 0 || n != 0 {
			t.Errorf("after destroy the account has %d keys and %d droplets", k, n)
		}
		if _, err := job.State(); !errors.Is(err, launch.ErrNoJob) {
			t.Errorf("state after destroy: %v", err)
		}
		return "refused: " + mm.Got + "; droplet reported with its price and destroyed"
	})

	var dropped string
	var dropletID int
	r.Step(t, "install dropped", func(t *testing.T) string {
		var once sync.Once
		_, runErr := job.Start(ctx, req, func(e launch.Event) {
			if e.Install != nil && e.Install.Task == "nginx" && e.Install.Status == "running" {
				once.Do(func() { dropped = e.Install.Task; link.drop() })
			}
		})
		var fe *launch.FailedError
		if !errors.As(runErr, &fe) || fe.Step != launch.StepInstall {
			t.Fatalf("install with the connection dropped: %v", runErr)
		}
		st, err := job.State()
		if err != nil || st.Step != launch.StepInstall || st.Error == "" || st.DropletID == 0 || !strings.Contains(st.Error, "connection to the droplet was lost") {
			t.Fatalf("saved state after the drop: %+v %v", st, err)
		}
		dropletID = st.DropletID
		info, err := os.Stat(filepath.Join(dir, "provision.json"))
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("provision.json: %v %v", info, err)
		}
		return "connection cut at task " + dropped + ": " + tail(runErr.Error(), 200)
	})

	r.Step(t, "resume", func(t *testing.T) string {
		var installed int
		st, err := job.Resume(ctx, func(e launch.Event) {
			if e.Install != nil && e.Install.Status == "done" {
				installed++
			}
		})
		if err != nil {
			t.Fatalf("resume: %v", err)
		}
		if st.Step != launch.StepDone || st.PanelURL != "https://"+d.Addr.String()+":9292" || st.DropletID != dropletID {
			t.Fatalf("state after resume: %+v (droplet %d before)", st, dropletID)
		}
		sum, err := d.Exec(ctx, "sha256sum", "/usr/local/bin/portlama")
		if err != nil || !strings.HasPrefix(string(sum), st.BinarySHA256) || st.BinarySHA256 != fileSHA256(t, bin) {
			t.Errorf("installed binary %s, uploaded %s: %v", sum, st.BinarySHA256, err)
		}
		if k, n := fake.Counts(); k != 0 || n != 1 {
			t.Errorf("the account has %d SSH keys (want 0) and %d droplets (want 1)", k, n)
		}
		return strconv.Itoa(installed) + " install tasks done after resuming, panel " + st.PanelURL
	})

	r.Step(t, "admin P12", func(t *testing.T) string {
		p12, pw, err := reg.AdminP12(req.Name)
		if err != nil {
			t.Fatal(err)
		}
		key, cert, _, err := pkcs12.DecodeChain(p12, pw)
		if err != nil {
			t.Fatal(err)
		}
		url := "https://" + d.Addr.String() + ":9292/api/health"
		code, body := get(t, home.HTTPClient(noCertTLS(t, d)), url)
		if code != http.StatusForbidden {
			t.Errorf("the panel without a certificate: %d %s", code, body)
		}
		cfg := noCertTLS(t, d)
		cfg.Certificates = []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}}
		code, body = get(t, home.HTTPClient(cfg), url)
		if code != http.StatusOK || !strings.Contains(body, `"status":"ok"`) {
			t.Errorf("the panel with the downloaded P12: %d %s", code, body)
		}
		return "GET /api/health: 403 without, 200 with the registry's P12"
	})

	r.Step(t, "close port 22", func(t *testing.T) string {
		if _, err := job.ClosePort22(ctx); err != nil {
			t.Fatal(err)
		}
		out, err := d.Exec(ctx, "ufw", "status")
		if err != nil || strings.Contains(string(out), "22/tcp") || !strings.Contains(string(out), "9292/tcp") {
			t.Errorf("ufw after closing 22: %v\n%s", err, out)
		}
		if err := job.Finish(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := keys.Get("provision/lab-relay/ssh-key"); !errors.Is(err, keychain.ErrNotFound) {
			t.Errorf("the SSH key is still in the keychain: %v", err)
		}
		return "ufw: 22/tcp gone, 9292/tcp open; job forgotten"
	})
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
