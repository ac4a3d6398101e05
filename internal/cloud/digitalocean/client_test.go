package digitalocean

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"gopkg.in/yaml.v3"
)

func TestTokenValidation(t *testing.T) {
	_, base := newFakeAPI(t, "dop_v1_good")
	ctx := context.Background()
	if _, err := New(base, "dop_v1_good", nil).Account(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := New(base, "dop_v1_bad", nil).Account(ctx)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 401 || !strings.Contains(err.Error(), "refused the API token") {
		t.Fatalf("bad token: %v", err)
	}
}

func TestCheapestSize(t *testing.T) {
	_, base := newFakeAPI(t, "tok")
	c := New(base, "tok", nil)
	regions, err := c.Regions(context.Background())
	if err != nil || len(regions) != 2 || regions[0].Slug != "fra1" || !regions[0].Available {
		t.Fatalf("regions %+v %v", regions, err)
	}
	sizes, err := c.Sizes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := Cheapest(sizes, "fra1", 512); !ok || s.Slug != "s-1vcpu-512mb-10gb" || s.PriceMonthly != 4 {
		t.Fatalf("fra1: %+v %v", s, ok)
	}
	if s, ok := Cheapest(sizes, "nyc3", 512); !ok || s.Slug != "s-1vcpu-1gb" {
		t.Fatalf("nyc3: %+v %v", s, ok)
	}
	if _, ok := Cheapest(sizes, "sfo3", 512); ok {
		t.Fatal("a size in a region that offers none")
	}
}

// TestDropletLifecycle: key up, droplet with the host key in cloud-init,
// wait until active, key and droplet deleted; nothing is left.
func TestDropletLifecycle(t *testing.T) {
	f, base := newFakeAPI(t, "tok")
	c := New(base, "tok", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	login, err := NewKeyPair("portlama-home")
	if err != nil {
		t.Fatal(err)
	}
	host, err := NewKeyPair("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateKey(ctx, "bad", "not a key"); err == nil {
		t.Fatal("an invalid key was accepted")
	}
	key, err := c.CreateKey(ctx, "portlama-home", login.AuthorizedKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateDroplet(ctx, CreateDropletRequest{Name: "relay", Region: "fra1", Size: "s-1vcpu-512mb-10gb", Image: "windows"}); err == nil {
		t.Fatal("an invalid image was accepted")
	}
	d, err := c.CreateDroplet(ctx, CreateDropletRequest{Name: "relay", Region: "fra1", Size: "s-1vcpu-512mb-10gb",
		Image: "ubuntu-24-04-x64", SSHKeys: []int{key.ID}, UserData: CloudInit(host), Tags: []string{"portlama"}})
	if err != nil {
		t.Fatal(err)
	}
	d, err = c.WaitActive(ctx, d.ID, 10*time.Millisecond)
	if err != nil || d.PublicIPv4() != "203.0.113.50" {
		t.Fatalf("wait: %+v %v", d, err)
	}
	if err := c.DeleteKey(ctx, key.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteKey(ctx, key.ID); err != nil {
		t.Fatalf("deleting a deleted key: %v", err)
	}
	if err := c.DeleteDroplet(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	if len(f.keys) != 0 || len(f.droplets) != 0 {
		t.Fatalf("left behind: keys %v droplets %v", f.keys, f.droplets)
	}
}

// TestCloudInitHostKey: the user data carries the host key cloud-init
// installs, and the client accepts exactly that key in a real SSH
// handshake.
func TestCloudInitHostKey(t *testing.T) {
	host, err := NewKeyPair("")
	if err != nil {
		t.Fatal(err)
	}
	ud := CloudInit(host)
	if !strings.HasPrefix(ud, "#cloud-config\n") {
		t.Fatalf("user data %q", ud)
	}
	var doc struct {
		DeleteKeys bool              `yaml:"ssh_deletekeys"`
		GenTypes   []string          `yaml:"ssh_genkeytypes"`
		Keys       map[string]string `yaml:"ssh_keys"`
	}
	if err := yaml.Unmarshal([]byte(ud), &doc); err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey([]byte(doc.Keys["ed25519_private"]))
	if err != nil {
		t.Fatalf("the host key in cloud-init: %v", err)
	}
	if !doc.DeleteKeys || len(doc.GenTypes) != 0 || string(signer.PublicKey().Marshal()) != string(host.Signer.PublicKey().Marshal()) {
		t.Fatalf("cloud-init %+v", doc)
	}

	other, _ := NewKeyPair("")
	login, _ := NewKeyPair("")
	for _, tc := range []struct {
		name   string
		server *KeyPair
		ok     bool
	}{{"the generated host key", host, true}, {"another host key", other, false}} {
		addr := sshServer(t, tc.server, login)
		cfg := &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(login.Signer)},
			HostKeyCallback: HostKeyCallback(host), Timeout: 5 * time.Second}
		c, err := ssh.Dial("tcp", addr, cfg)
		if (err == nil) != tc.ok {
			t.Fatalf("%s: dial = %v", tc.name, err)
		}
		if c != nil {
			c.Close()
		}
	}
}

// sshServer accepts one SSH handshake with host as its key and login as
// the only authorised key.
func sshServer(t *testing.T, host, login *KeyPair) string {
	t.Helper()
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
		if string(k.Marshal()) == string(login.Signer.PublicKey().Marshal()) {
			return nil, nil
		}
		return nil, errors.New("unknown key")
	}}
	cfg.AddHostKey(host.Signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		sc, chans, reqs, err := ssh.NewServerConn(nc, cfg)
		if err != nil {
			return
		}
		defer sc.Close()
		go ssh.DiscardRequests(reqs)
		for ch := range chans {
			ch.Reject(ssh.Prohibited, "no channels")
		}
	}()
	return ln.Addr().String()
}
