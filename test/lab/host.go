package lab

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"github.com/portlama/portlama/internal/system"
)

// Host is a machine on the lab's network: a network namespace. Commands
// started with Command and connections made with Dial or Listen live in it.
type Host struct {
	Name string
	NS   string // network namespace (ip netns) name
	Addr netip.Addr
}

// Command runs argv in the host's namespace (ip netns exec).
func (h *Host) Command(ctx context.Context, argv ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NS}, argv...)...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Run runs argv in the host's namespace and returns its combined output.
func (h *Host) Run(ctx context.Context, argv ...string) ([]byte, error) {
	return system.Run(ctx, func(ctx context.Context, argv []string) *exec.Cmd { return h.Command(ctx, argv...) }, argv...)
}

// inNS runs fn on an OS thread switched into the host's network namespace.
// Sockets keep the namespace they were created in, so connections made in
// fn work from any goroutine afterwards.
func (h *Host) inNS(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open("/run/netns/" + h.NS)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter namespace %s: %w", h.NS, err)
			return
		}
		err = fn()
		// A thread that cannot go back stays locked and dies with this
		// goroutine, so no other goroutine ever runs in the namespace.
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// Dial connects from the host to address (an IP:port; names are not
// resolved in the lab).
func (h *Host) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	var c net.Conn
	err := h.inNS(func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", h.Name, err)
	}
	return c, nil
}

// Listen listens on the host.
func (h *Host) Listen(network, address string) (net.Listener, error) {
	var ln net.Listener
	err := h.inNS(func() error {
		var err error
		ln, err = net.Listen(network, address)
		return err
	})
	return ln, err
}

// HTTPClient is an HTTP client whose connections start at the host.
func (h *Host) HTTPClient(tlsConfig *tls.Config) *http.Client {
	return &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{
			DialContext:       h.Dial,
			TLSClientConfig:   tlsConfig,
			DisableKeepAlives: true,
		},
	}
}
