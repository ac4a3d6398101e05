package tunnels

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/acme"
	"github.com/portlama/portlama/internal/api"
)

// safeFakes are concurrency-safe collaborators: a certificate source that
// blocks for one host until released, and an ACL that records the last
// port list per agent.
type safeFakes struct {
	mu      sync.Mutex
	ports   map[string][]int
	slow    string        // fqdn whose certificate blocks
	entered chan struct{} // closed when the slow lookup has started
	release chan struct{} // closing it ends the slow lookup
	// aclHook runs inside SetPorts (without mu), e.g. to block.
	aclHook func(label string)
}

func newSafeFakes() *safeFakes {
	return &safeFakes{ports: map[string][]int{}, entered: make(chan struct{}), release: make(chan struct{})}
}

func (f *safeFakes) WriteTunnel(context.Context, api.Tunnel, acme.Files) error { return nil }
func (f *safeFakes) RemoveTunnel(context.Context, api.Tunnel) error            { return nil }
func (f *safeFakes) SetTunnelEnabled(context.Context, api.Tunnel, bool) error  { return nil }
func (f *safeFakes) DeleteIndividual(context.Context, string) error            { return nil }
func (f *safeFakes) ForHost(ctx context.Context, fqdn string) (acme.Files, error) {
	if fqdn == f.slow {
		close(f.entered)
		select {
		case <-f.release:
		case <-ctx.Done():
			return acme.Files{}, ctx.Err()
		}
	}
	return acme.Files{Name: fqdn}, nil
}
func (f *safeFakes) SetPorts(_ context.Context, label string, ports []int) error {
	if f.aclHook != nil {
		f.aclHook(label)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ports[label] = slices.Clone(ports)
	return nil
}
func (f *safeFakes) portsOf(label string) []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ports[label]
}

func newSafeService(t *testing.T, f *safeFakes, agents ...string) *Service {
	return New(Config{
		File: filepath.Join(t.TempDir(), "tunnels.json"),
		Settings: func() (Settings, error) {
			return Settings{Domain: "example.com", Email: "a@example.com", RelayPortMin: 20000, RelayPortMax: 20999}, nil
		},
		Agents: agentList(agents), Vhosts: f, Certs: f, ACL: f,
		PortFree: func(int) bool { return true },
	})
}

// A certificate that takes long to obtain (an ACME order) delays only its
// own tunnel: other creates and deletes complete meanwhile, and the slow
// tunnel's reservation keeps its subdomain and relay port from being taken.
func TestSlowCertificateBlocksNoOtherTunnel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f := newSafeFakes()
	f.slow = "slow.example.com"
	s := newSafeService(t, f, "home")
	old, err := s.Create(ctx, admin, CreateRequest{Subdomain: "old", Port: 8000})
	if err != nil {
		t.Fatal(err)
	}

	type result struct {
		tun api.Tunnel
		err error
	}
	slowDone := make(chan result, 1)
	go func() {
		tun, err := s.Create(ctx, admin, CreateRequest{Subdomain: "slow", Port: 8001})
		slowDone <- result{tun.Tunnel, err}
	}()
	select {
	case <-f.entered:
	case <-ctx.Done():
		t.Fatal("the slow certificate lookup never started")
	}

	// While the slow certificate is being obtained:
	fast, err := s.Create(ctx, admin, CreateRequest{Subdomain: "fast", Port: 8002})
	if err != nil {
		t.Fatalf("create while another tunnel's certificate is pending: %v", err)
	}
	if _, err := s.Delete(ctx, admin, old.ID); err != nil {
		t.Fatalf("delete while another tunnel's certificate is pending: %v", err)
	}
	if _, err := s.Create(ctx, admin, CreateRequest{Subdomain: "slow", Port: 8003}); err == nil ||
		err.Error() != "Subdomain 'slow' is already in use" {
		t.Fatalf("the pending tunnel's subdomain was not reserved: %v", err)
	}
	if _, err := s.Create(ctx, admin, CreateRequest{Subdomain: "other", Port: 8001}); err == nil ||
		err.Error() != "Port 8001 is already in use by another tunnel" {
		t.Fatalf("the pending tunnel's local port was not reserved: %v", err)
	}
	select {
	case r := <-slowDone:
		t.Fatalf("the slow create finished before its certificate: %+v %v", r.tun, r.err)
	default:
	}

	close(f.release)
	r := <-slowDone
	if r.err != nil {
		t.Fatalf("slow create: %v", r.err)
	}
	if r.tun.RelayPort == fast.RelayPort {
		t.Fatalf("both tunnels got relay port %d", r.tun.RelayPort)
	}
	all, _ := s.All()
	if len(all) != 2 {
		t.Fatalf("tunnels after the race: %+v", all)
	}
	if got, want := f.portsOf("home"), PortsFor(all, "home"); !slices.Equal(got, want) {
		t.Fatalf("acl ports %v, want %v", got, want)
	}
}

// SyncACL writes acl.json under the service's lock, the one every create
// commits under: a SyncACL that read tunnels.json before a concurrent create
// committed can therefore never write its older list after the create's.
// (Checked directly: while SyncACL's write is in progress, the lock is
// taken.)
func TestSyncACLHoldsTheLock(t *testing.T) {
	ctx := context.Background()
	f := newSafeFakes()
	s := newSafeService(t, f, "home")
	if _, err := s.Create(ctx, admin, CreateRequest{Subdomain: "app", Port: 8080}); err != nil {
		t.Fatal(err)
	}
	held := false
	f.aclHook = func(string) {
		if s.mu.TryLock() {
			s.mu.Unlock()
			return
		}
		held = true
	}
	if err := s.SyncACL(ctx, "home"); err != nil {
		t.Fatal(err)
	}
	if !held {
		t.Fatal("SyncACL wrote the ACL without holding the lock: a concurrent create can lose its port")
	}
	if got := f.portsOf("home"); len(got) != 1 {
		t.Fatalf("acl ports %v", got)
	}
}

// Many concurrent creates and SyncACLs leave acl.json equal to what
// tunnels.json says.
func TestConcurrentCreatesAndSyncACL(t *testing.T) {
	ctx := context.Background()
	f := newSafeFakes()
	s := newSafeService(t, f, "home")
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if _, err := s.Create(ctx, admin, CreateRequest{Subdomain: "app" + string(rune('a'+i)), Port: 8000 + i}); err != nil {
				t.Error(err)
			}
		}()
		go func() {
			defer wg.Done()
			if err := s.SyncACL(ctx, "home"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	all, _ := s.All()
	if got, want := f.portsOf("home"), PortsFor(all, "home"); len(want) != 20 || !slices.Equal(got, want) {
		t.Fatalf("acl ports %v, want %v", got, want)
	}
}
