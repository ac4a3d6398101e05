package browser

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/nginx"
	"github.com/portlama/portlama/internal/onboarding/dnstest"
	"github.com/portlama/portlama/internal/pki"
	"github.com/portlama/portlama/internal/relay"
	"github.com/portlama/portlama/internal/store"
	"github.com/portlama/portlama/internal/testutil"
)

// freshRelay is a relay as `portlama install` leaves it: PKI, proxy secret,
// panel.json in FRESH, nginx with the shared pieces and the panel-IP vhost,
// and the panel, with a DNS server of its own for onboarding's DNS check.
// (The provisioning helper's harness replaces this once it lands.)
type freshRelay struct {
	PanelURL string
	Client   ClientCert
	DNS      *dnstest.Server
	Relay    config.Relay
}

func startFreshRelay(t *testing.T) *freshRelay {
	t.Helper()
	testutil.NeedBinary(t, "nginx")
	dir := t.TempDir()
	layout := config.DirLayout(dir)
	dns, err := dnstest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dns.Close() })
	addrs := config.Addrs{NginxListenHost: "127.0.0.1", HTTPSPort: testutil.FreePort(t), PanelIPPort: testutil.FreePort(t), HTTPPort: testutil.FreePort(t),
		Panel: testutil.FreeAddr(t), Tunnel: testutil.FreeAddr(t), Auth: testutil.FreeAddr(t)}
	cfg := config.Relay{Layout: layout, Addrs: addrs, DNSServer: dns.Addr}
	data, err := store.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.WriteFileAtomic(filepath.Join(dir, "relay.json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{layout.DataDir, layout.TunnelDir(), layout.AuthDir(), layout.WWWDir, layout.CertsDir, layout.ACMEWebroot} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	log := slog.New(slog.DiscardHandler)
	if _, _, err := pki.Init(pki.Config{Dir: layout.PKIDir(), Logger: log}, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	if err := store.WriteFileAtomic(layout.ProxySecretFile(), []byte(hex.EncodeToString(secret)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.NewPanelStore(layout.PanelConfig()).Init(func(c *config.PanelConfig) error {
		c.IP, c.DataDir = "127.0.0.1", layout.DataDir
		c.Onboarding.Status = config.StatusFresh
		c.RelayPortRange = config.PortRange{Min: 25000, Max: 25099}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	inst, err := nginx.NewInstance(nginx.InstanceConfig{Prefix: filepath.Join(dir, "nginx-run"), NginxDir: layout.NginxDir, Workers: 1, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := inst.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		inst.Stop(c)
	})
	svc, err := relay.Open(cfg, inst, log)
	if err != nil {
		t.Fatal(err)
	}
	shared, err := svc.Render.Shared(nginx.SharedParams{ProxySecret: hex.EncodeToString(secret)})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Nginx.WriteShared(ctx, shared); err != nil {
		t.Fatal(err)
	}
	srv, err := relay.NewPanel(svc, "0.0.0-test", log)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addrs.Panel)
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(pctx, ln); close(done) }()
	t.Cleanup(func() { pcancel(); <-done })
	pw, err := os.ReadFile(filepath.Join(layout.PKIDir(), pki.P12PasswordFile))
	if err != nil {
		t.Fatal(err)
	}
	return &freshRelay{
		PanelURL: "https://127.0.0.1:" + itoa(addrs.PanelIPPort),
		Client: ClientCert{P12: filepath.Join(layout.PKIDir(), pki.ClientP12File), Password: strings.TrimSpace(string(pw)),
			Trust: []string{filepath.Join(layout.PKIDir(), pki.CACertFile), filepath.Join(layout.PKIDir(), pki.SelfSignedCertFile)}},
		DNS:   dns,
		Relay: cfg,
	}
}
