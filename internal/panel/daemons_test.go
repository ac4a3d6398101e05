package panel

import (
	"context"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/portlama/portlama/internal/auth"
	"github.com/portlama/portlama/internal/relay"
	"github.com/portlama/portlama/internal/tunnel"
)

// daemons are the relay's tunnel and auth servers of a panel harness.
type daemons struct {
	stopTunnel, stopAuth func()
}

// startDaemons runs the relay's real tunnel server and auth server on
// loopback for svc's layout, so every change the panel makes is
// acknowledged on their management sockets as on a relay. Their periodic
// checks are an hour apart: only the acknowledgement applies a change.
func startDaemons(t *testing.T, svc *relay.Services) daemons {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if err := svc.SyncTunnelACL(ctx); err != nil {
		t.Fatal(err)
	}
	tcfg := tunnel.DirConfig(svc.Config.Layout.TunnelDir())
	tcfg.Addr = "127.0.0.1:0"
	tcfg.ReloadInterval = time.Hour
	ts, err := tunnel.NewServer(tcfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.Start(ctx); err != nil {
		t.Fatal(err)
	}
	dir := svc.Config.Layout.AuthDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	_, stopAuth := serveAuth(t, auth.Config{Dir: dir, Domain: testDomain, BcryptCost: bcrypt.MinCost, ReloadInterval: time.Hour})
	var once sync.Once
	stopTunnel := func() { once.Do(func() { cancel(); ts.Wait() }) }
	t.Cleanup(stopTunnel)
	return daemons{stopTunnel: stopTunnel, stopAuth: stopAuth}
}

// serveAuth runs a real auth server with cfg (public API on a free
// loopback port, management socket in cfg.Dir) until the test ends or
// stop is called, and returns the public API's base URL.
func serveAuth(t *testing.T, cfg auth.Config) (base string, stop func()) {
	t.Helper()
	srv, err := auth.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mln, err := auth.ListenManageSocket(auth.ManageSocketPath(cfg.Dir))
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln, mln) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("auth server: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return "http://" + ln.Addr().String(), stop
}
