package agents

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/pki"
	"github.com/portlama/portlama/internal/pki/pkitest"
	"github.com/portlama/portlama/internal/testutil"
)

// memTunnels is an in-memory TunnelCredentials that records calls.
type memTunnels struct {
	mu        sync.Mutex
	agents    map[string]bool
	calls     []string
	addErr    error
	removeErr error
}

func newMemTunnels() *memTunnels { return &memTunnels{agents: map[string]bool{}} }

func (m *memTunnels) AddAgent(_ context.Context, label string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, "add "+label)
	if m.addErr != nil {
		return m.addErr
	}
	m.agents[label] = true
	return nil
}

func (m *memTunnels) RemoveAgent(_ context.Context, label string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, "remove "+label)
	if m.removeErr != nil {
		return m.removeErr
	}
	delete(m.agents, label)
	return nil
}

func (m *memTunnels) RevokeAgent(ctx context.Context, label string) error {
	m.mu.Lock()
	m.calls = append(m.calls, "revoke "+label)
	m.mu.Unlock()
	return m.RemoveAgent(ctx, label)
}

func (m *memTunnels) has(label string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.agents[label]
}

func (m *memTunnels) count(call string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, c := range m.calls {
		if c == call {
			n++
		}
	}
	return n
}

type reloader struct {
	mu    sync.Mutex
	calls int
	err   error
}

func (r *reloader) Reload(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	return r.err
}

func (r *reloader) count() int { r.mu.Lock(); defer r.mu.Unlock(); return r.calls }

type env struct {
	m        *Manager
	pki      *pki.PKI
	tunnels  *memTunnels
	clock    *testutil.Clock
	reloader *reloader
	ctx      context.Context
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{
		tunnels:  newMemTunnels(),
		clock:    testutil.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)),
		reloader: &reloader{},
		ctx:      context.Background(),
	}
	p, _, err := pki.Init(pki.Config{
		Dir:         filepath.Join(t.TempDir(), "pki"),
		Now:         e.clock.Now,
		Reloader:    e.reloader,
		GenerateKey: pkitest.GenerateKey,
	}, "192.0.2.10")
	if err != nil {
		t.Fatal(err)
	}
	e.pki = p
	e.m, err = New(Config{PKI: p, Tunnels: e.tunnels, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

var testECKey = func() crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}()

// goodCSR is a valid CSR whose subject claims to be the admin.
func goodCSR(t *testing.T) string { return pkitest.CSR(t, testECKey, "admin") }

func parseCert(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatal("no PEM block")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func wantLabelErr(t *testing.T, err, kind error, msg string) {
	t.Helper()
	var le *LabelError
	if !errors.Is(err, kind) || !errors.As(err, &le) {
		t.Fatalf("error = %v, want a *LabelError %v", err, kind)
	}
	if msg != "" && err.Error() != msg {
		t.Errorf("message = %q, want %q", err.Error(), msg)
	}
}

func (e *env) entry(t *testing.T, label string) Entry {
	t.Helper()
	list, err := e.m.List()
	if err != nil {
		t.Fatal(err)
	}
	for i := len(list) - 1; i >= 0; i-- {
		if list[i].Label == label {
			return list[i]
		}
	}
	t.Fatalf("no registry entry for %s", label)
	return Entry{}
}
