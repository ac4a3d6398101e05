package nginx

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/portlama/portlama/internal/config"
)

// fakeCtl fails Test when a sites-enabled file contains "BROKEN", and
// Reload when reloadErr is set.
type fakeCtl struct {
	dir       string
	reloadErr error
	tests     atomic.Int64
	reloads   atomic.Int64
}

func (f *fakeCtl) Test(context.Context) (string, error) {
	f.tests.Add(1)
	ents, _ := os.ReadDir(f.dir)
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(f.dir, e.Name()))
		if strings.Contains(string(b), "BROKEN") {
			return "nginx: [emerg] broken in " + e.Name(), errors.New("exit status 1")
		}
	}
	return "ok", nil
}

func (f *fakeCtl) Reload(context.Context) error {
	f.reloads.Add(1)
	return f.reloadErr
}

func newFakeManager(t *testing.T) (*Manager, *fakeCtl, config.Layout) {
	l := config.DirLayout(tempDir(t))
	f := &fakeCtl{dir: l.NginxSitesEnabled()}
	return NewManager(l, f, nil), f, l
}

func TestManagerRollbackOnReloadFailure(t *testing.T) {
	m, f, l := newFakeManager(t)
	ctx := context.Background()
	if err := m.WriteVhost(ctx, "portlama-app-x", "x.example.com", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	f.reloadErr = errors.New("reload failed")
	if err := m.WriteVhost(ctx, "portlama-app-x", "x.example.com", []byte("v2")); err == nil {
		t.Fatal("no error")
	}
	p := filepath.Join(l.NginxSitesAvailable(), "portlama-app-x")
	if b, _ := os.ReadFile(p); string(b) != "v1" {
		t.Errorf("content after failed reload: %q", b)
	}
	if _, err := os.Stat(p + ".bak"); !os.IsNotExist(err) {
		t.Error(".bak left after rollback")
	}
	if err := m.WriteVhost(ctx, "portlama-app-y", "y.example.com", []byte("new")); err == nil {
		t.Fatal("no error")
	}
	if ex, _ := m.VhostExists("portlama-app-y"); ex {
		t.Error("new vhost kept after failed reload")
	}
	if en, _ := m.VhostEnabled("portlama-app-y"); en {
		t.Error("new link kept after failed reload")
	}
}

func TestManagerApplyIsAllOrNothing(t *testing.T) {
	m, f, l := newFakeManager(t)
	ctx := context.Background()
	if err := m.WriteVhost(ctx, "portlama-auth", "auth.example.com", []byte("old auth")); err != nil {
		t.Fatal(err)
	}
	before := f.tests.Load()
	err := m.Apply(ctx,
		Vhost{Name: "portlama-panel-domain", FQDN: "panel.example.com", Content: []byte("panel")},
		Vhost{Name: "portlama-auth", FQDN: "auth.example.com", Content: []byte("new auth")},
		Vhost{Name: "portlama-tunnel", FQDN: "tunnel.example.com", Content: []byte("BROKEN")},
	)
	var te *TestError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "panel.example.com, auth.example.com, tunnel.example.com") {
		t.Fatalf("err = %v", err)
	}
	if n := f.tests.Load() - before; n != 1 {
		t.Errorf("tested %d times, want once", n)
	}
	if b, _ := os.ReadFile(filepath.Join(l.NginxSitesAvailable(), "portlama-auth")); string(b) != "old auth" {
		t.Errorf("auth not restored: %q", b)
	}
	for _, n := range []string{"portlama-panel-domain", "portlama-tunnel"} {
		if ex, _ := m.VhostExists(n); ex {
			t.Errorf("%s kept", n)
		}
		if en, _ := m.VhostEnabled(n); en {
			t.Errorf("%s link kept", n)
		}
	}
	if en, _ := m.VhostEnabled("portlama-auth"); !en {
		t.Error("auth link lost")
	}
}

func TestManagerRemoveRestoresOnFailure(t *testing.T) {
	m, f, _ := newFakeManager(t)
	ctx := context.Background()
	if err := m.WriteVhost(ctx, "portlama-app-x", "x.example.com", []byte("x")); err != nil {
		t.Fatal(err)
	}
	f.reloadErr = errors.New("nginx down")
	if err := m.RemoveVhost(ctx, "portlama-app-x"); err == nil {
		t.Fatal("no error")
	}
	if en, _ := m.VhostEnabled("portlama-app-x"); !en {
		t.Error("vhost not restored after failed remove")
	}
	f.reloadErr = nil
	if err := m.DisableVhost(ctx, "portlama-app-x"); err != nil {
		t.Fatal(err)
	}
	if err := m.DisableVhost(ctx, "portlama-app-x"); err != nil {
		t.Errorf("disable twice: %v", err)
	}
	// Enabling a vhost that breaks the test reverts the link.
	if err := m.WriteVhost(ctx, "portlama-app-x", "x.example.com", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := m.DisableVhost(ctx, "portlama-app-x"); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(m.layout.NginxSitesAvailable(), "portlama-app-x"), []byte("BROKEN"), 0o644)
	if err := m.EnableVhost(ctx, "portlama-app-x"); err == nil {
		t.Fatal("enabling a broken vhost succeeded")
	}
	if en, _ := m.VhostEnabled("portlama-app-x"); en {
		t.Error("link kept after failed enable")
	}
}

func TestManagerSerialisesChanges(t *testing.T) {
	m, _, _ := newFakeManager(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			name := "portlama-app-" + string(rune('a'+i))
			if err := m.WriteVhost(ctx, name, "x.example.com", []byte(name)); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	ents, _ := os.ReadDir(m.layout.NginxSitesEnabled())
	if len(ents) != 20 {
		t.Errorf("%d vhosts enabled, want 20", len(ents))
	}
}

func TestManagerRejectsBadNames(t *testing.T) {
	m, _, _ := newFakeManager(t)
	ctx := context.Background()
	for _, n := range []string{"", "portlama-", "portlama-x/../../etc", "nginx.conf", "portlama-X", "portlama-a b", "portlama-a-"} {
		if err := m.WriteVhost(ctx, n, "x.example.com", []byte("x")); err == nil {
			t.Errorf("WriteVhost(%q) accepted", n)
		}
		if err := m.EnableVhost(ctx, n); err == nil {
			t.Errorf("EnableVhost(%q) accepted", n)
		}
	}
	if err := m.WriteVhost(ctx, "portlama-app-x", "x.example.com;", []byte("x")); err == nil {
		t.Error("bad fqdn accepted")
	}
	if err := m.WriteVhost(ctx, "portlama-app-x", "x.example.com", nil); err == nil {
		t.Error("empty content accepted")
	}
}

func TestManagerDisabledVhostStaysDisabled(t *testing.T) {
	m, _, _ := newFakeManager(t)
	ctx := context.Background()
	if err := m.WriteVhost(ctx, "portlama-app-x", "x.example.com", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(ctx, Vhost{Name: "portlama-app-x", FQDN: "x.example.com", Content: []byte("v2"), Disabled: true}); err != nil {
		t.Fatal(err)
	}
	if en, _ := m.VhostEnabled("portlama-app-x"); en {
		t.Error("disabled vhost linked")
	}
	if b, _ := os.ReadFile(filepath.Join(m.layout.NginxSitesAvailable(), "portlama-app-x")); string(b) != "v2" {
		t.Errorf("content %q", b)
	}
	r := testRendererFor(t, m.layout)
	sh, err := r.Shared(SharedParams{ProxySecret: testSecret, PanelIPDisabled: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.WriteShared(ctx, sh); err != nil {
		t.Fatal(err)
	}
	if en, _ := m.VhostEnabled(VhostPanelIP); en {
		t.Error("panel-ip enabled although disabled")
	}
	if ex, _ := m.VhostExists(VhostPanelIP); !ex {
		t.Error("panel-ip file missing")
	}
	if en, _ := m.VhostEnabled(VhostHTTP); !en {
		t.Error("http vhost not enabled")
	}
}
