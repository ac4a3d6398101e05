package sites

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/acme"
	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/errkind"
	"github.com/portlama/portlama/internal/hostnames"
	"github.com/portlama/portlama/internal/manage"
)

const (
	testDomain = "example.com"
	testIP     = "203.0.113.7"
)

// recorder is a collaborator double: it records calls and fails on demand.
type recorder struct {
	mu       sync.Mutex
	calls    []string
	failOn   map[string]error
	vhosts   map[string]api.Site // by site id
	rules    []api.Site
	wildcard bool            // a wildcard certificate exists
	certs    map[string]bool // individual certificates in the store
	dns      map[string][]string
}

func newRecorder() *recorder {
	return &recorder{failOn: map[string]error{}, vhosts: map[string]api.Site{}, wildcard: true, certs: map[string]bool{}, dns: map[string][]string{}}
}

func (r *recorder) step(name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, name)
	if err, ok := r.failOn[name]; ok {
		delete(r.failOn, name)
		return err
	}
	return nil
}

func (r *recorder) fail(step string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failOn[step] = err
}

func (r *recorder) took() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.calls)
	r.calls = nil
	return out
}

func (r *recorder) WriteSite(_ context.Context, s api.Site, _ acme.Files) error {
	if err := r.step("vhost.write"); err != nil {
		return err
	}
	r.mu.Lock()
	r.vhosts[s.ID] = s
	r.mu.Unlock()
	return nil
}

func (r *recorder) RemoveSite(_ context.Context, s api.Site) error {
	if err := r.step("vhost.remove"); err != nil {
		return err
	}
	r.mu.Lock()
	delete(r.vhosts, s.ID)
	r.mu.Unlock()
	return nil
}

func (r *recorder) wildcardFor(fqdn string) bool {
	return r.wildcard && hostnames.LabelUnder(fqdn, testDomain) != ""
}

func (r *recorder) ForHost(_ context.Context, fqdn string) (acme.Files, error) {
	if err := r.step("cert.get"); err != nil {
		return acme.Files{}, err
	}
	if r.wildcardFor(fqdn) {
		return acme.Files{Name: testDomain, Wildcard: true}, nil
	}
	r.mu.Lock()
	r.certs[fqdn] = true
	r.mu.Unlock()
	return acme.Files{Name: fqdn}, nil
}

func (r *recorder) Existing(fqdn string) (acme.Files, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.wildcardFor(fqdn) {
		return acme.Files{Name: testDomain, Wildcard: true}, true
	}
	return acme.Files{Name: fqdn}, r.certs[fqdn]
}

func (r *recorder) DeleteIndividual(_ context.Context, fqdn string) error {
	r.step("cert.delete")
	r.mu.Lock()
	delete(r.certs, fqdn)
	r.mu.Unlock()
	return nil
}

func (r *recorder) SyncSites(_ context.Context, ss []api.Site) error {
	if err := r.step("rules"); err != nil && !errors.Is(err, manage.ErrNotConfirmed) {
		return err
	} else if err != nil {
		r.mu.Lock()
		r.rules = slices.Clone(ss)
		r.mu.Unlock()
		return err
	}
	r.mu.Lock()
	r.rules = slices.Clone(ss)
	r.mu.Unlock()
	return nil
}

func (r *recorder) LookupA(_ context.Context, name string) ([]string, error) {
	if err := r.step("dns"); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dns[name], nil
}

type env struct {
	*Service
	rec   *recorder
	www   string
	names *hostnames.Registry
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	rec := newRecorder()
	names := hostnames.New()
	s := New(Config{
		File:   filepath.Join(dir, "sites.json"),
		WWWDir: filepath.Join(dir, "www"),
		Settings: func() (Settings, error) {
			return Settings{Domain: testDomain, Email: "a@" + testDomain, IP: testIP, MaxSiteSize: 1 << 20}, nil
		},
		Vhosts: rec, Certs: rec, Rules: rec, Resolver: rec, Names: names,
		Now: func() time.Time { return time.Date(2026, 1, 31, 9, 15, 0, 0, time.UTC) },
	})
	return &env{Service: s, rec: rec, www: filepath.Join(dir, "www"), names: names}
}

var ctx = context.Background()

func (e *env) create(t *testing.T, r api.CreateSiteRequest) api.Site {
	t.Helper()
	res, err := e.Create(ctx, r)
	if err != nil {
		t.Fatalf("create %+v: %v", r, err)
	}
	return res.Site
}

func wantErr(t *testing.T, err error, kind *errkind.Kind, msg string) {
	t.Helper()
	if err == nil || !errors.Is(err, kind) || errkind.Message(err) != msg {
		t.Fatalf("error %v (%q), want %v %q", err, errkind.Message(err), kind, msg)
	}
}

func TestCreateManagedSideEffectsInOrder(t *testing.T) {
	e := newEnv(t)
	site := e.create(t, api.CreateSiteRequest{Name: "blog", Type: api.SiteManaged, SPAMode: true})
	if site.FQDN != "blog."+testDomain || !site.CertIssued || !site.DNSVerified || !site.SPAMode || site.AutheliaProtected ||
		site.RootPath != filepath.Join(e.www, site.ID) || site.CreatedAt != "2026-01-31T09:15:00.000Z" || site.AllowedUsers == nil {
		t.Fatalf("site %+v", site)
	}
	// A wildcard certificate exists: no DNS check, no issuance.
	if got, want := e.rec.took(), []string{"cert.get", "vhost.write", "rules"}; !slices.Equal(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
	index, err := os.ReadFile(filepath.Join(site.RootPath, "index.html"))
	if err != nil || !strings.Contains(string(index), "<title>blog</title>") {
		t.Fatalf("index.html: %v %q", err, index)
	}
	for _, p := range []string{site.RootPath, filepath.Join(site.RootPath, "index.html")} {
		fi, _ := os.Stat(p)
		if want := map[bool]os.FileMode{true: 0o755, false: 0o644}[fi.IsDir()]; fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
	if site.TotalSize != int64(len(index)) {
		t.Errorf("totalSize %d, want %d", site.TotalSize, len(index))
	}
	list, _ := e.List(Caller{Admin: true})
	if len(list) != 1 || list[0].ID != site.ID {
		t.Fatalf("list %+v", list)
	}
}

func TestCreateChecksInContractOrder(t *testing.T) {
	e := newEnv(t)
	e.create(t, api.CreateSiteRequest{Name: "blog", Type: api.SiteManaged})
	// A tunnel holds "app" (as the tunnels service would).
	e.names.AddSource(func() ([]hostnames.Name, error) {
		return []hostnames.Name{{Kind: hostnames.Tunnel, Label: "app", FQDN: "app." + testDomain}}, nil
	})
	e.create(t, api.CreateSiteRequest{Name: "shop", Type: api.SiteCustom, CustomDomain: "shop.example.org"})
	for _, tc := range []struct {
		r   api.CreateSiteRequest
		msg string
	}{
		{api.CreateSiteRequest{Name: "x", Type: api.SiteCustom}, "Custom domain is required for custom type sites"},
		{api.CreateSiteRequest{Name: "blog", Type: api.SiteCustom, CustomDomain: "blog.example.org"}, "Site name 'blog' is already in use"},
		{api.CreateSiteRequest{Name: "panel", Type: api.SiteManaged}, "Name 'panel' is reserved"},
		{api.CreateSiteRequest{Name: "agent-home", Type: api.SiteManaged}, "Name prefix 'agent-' is reserved for agent panel tunnels"},
		{api.CreateSiteRequest{Name: "app", Type: api.SiteManaged}, "Name 'app' is already in use by a tunnel"},
		{api.CreateSiteRequest{Name: "other", Type: api.SiteCustom, CustomDomain: "shop.example.org"}, "Domain 'shop.example.org' is already in use by another site"},
		{api.CreateSiteRequest{Name: "other", Type: api.SiteCustom, CustomDomain: "blog." + testDomain}, "Domain 'blog.example.com' is already in use by another site"},
		{api.CreateSiteRequest{Name: "other", Type: api.SiteCustom, CustomDomain: "app." + testDomain}, "Domain 'app.example.com' is already in use by a tunnel"},
		{api.CreateSiteRequest{Name: "other", Type: api.SiteCustom, CustomDomain: "auth." + testDomain}, "Domain 'auth.example.com' is reserved"},
		{api.CreateSiteRequest{Name: "other", Type: api.SiteCustom, CustomDomain: "x.example.org", AutheliaProtected: true}, "Login protection is only available for sites under example.com"},
	} {
		_, err := e.Create(ctx, tc.r)
		wantErr(t, err, errkind.Invalid, tc.msg)
	}
	// Custom domains below <d> may be protected.
	e.create(t, api.CreateSiteRequest{Name: "deep", Type: api.SiteCustom, CustomDomain: "a.b." + testDomain, AutheliaProtected: true})

	// Without a wildcard certificate, a managed site's DNS must point here.
	e.rec.wildcard = false
	e.rec.dns["news."+testDomain] = []string{"198.51.100.1"}
	_, err := e.Create(ctx, api.CreateSiteRequest{Name: "news", Type: api.SiteManaged})
	wantErr(t, err, errkind.Invalid, "DNS for 'news.example.com' does not resolve to "+testIP)
	e.rec.dns["news."+testDomain] = []string{testIP}
	site := e.create(t, api.CreateSiteRequest{Name: "news", Type: api.SiteManaged})
	if !e.rec.certs[site.FQDN] {
		t.Fatalf("no individual certificate issued for %s", site.FQDN)
	}
}

func TestNameSpaceIsSharedWithTunnels(t *testing.T) {
	e := newEnv(t)
	e.create(t, api.CreateSiteRequest{Name: "blog", Type: api.SiteManaged})
	held, err := e.names.Held()
	if err != nil {
		t.Fatal(err)
	}
	// What the tunnels service asks before it takes "blog".
	if h, clash := hostnames.Clashes(held, hostnames.Name{Label: "blog", FQDN: "blog." + testDomain}); !clash || h.Kind != hostnames.Site {
		t.Fatalf("a tunnel could take the site's name: held %+v", held)
	}
	// A reservation in flight counts too (a site whose certificate is
	// being obtained).
	hold, err := e.names.Reserve(hostnames.Name{Kind: hostnames.Tunnel, Label: "api2", FQDN: "api2." + testDomain}, func([]hostnames.Name) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Create(ctx, api.CreateSiteRequest{Name: "api2", Type: api.SiteManaged})
	wantErr(t, err, errkind.Invalid, "Name 'api2' is already in use by a tunnel")
	hold.Release()
	e.create(t, api.CreateSiteRequest{Name: "api2", Type: api.SiteManaged})
}

func TestCreateRollsBack(t *testing.T) {
	for _, step := range []string{"vhost.write", "rules"} {
		t.Run(step, func(t *testing.T) {
			e := newEnv(t)
			e.rec.wildcard = false
			e.rec.dns["blog."+testDomain] = []string{testIP}
			e.rec.fail(step, errors.New(step+" exploded"))
			_, err := e.Create(ctx, api.CreateSiteRequest{Name: "blog", Type: api.SiteManaged})
			if err == nil || !errors.Is(err, errkind.Failed) || errkind.Message(err) != "Failed to create site" {
				t.Fatalf("err %v", err)
			}
			if ke, _ := errkind.As(err); !strings.Contains(ke.Cause.Error(), step+" exploded") {
				t.Fatalf("details %v", ke.Cause)
			}
			if len(e.rec.vhosts) != 0 || len(e.rec.certs) != 0 {
				t.Fatalf("left behind: vhosts %v, certs %v", e.rec.vhosts, e.rec.certs)
			}
			entries, _ := os.ReadDir(e.www)
			list, _ := e.List(Caller{Admin: true})
			if len(entries) != 0 || len(list) != 0 {
				t.Fatalf("left behind: roots %v, sites %v", entries, list)
			}
			// The name is free again.
			e.create(t, api.CreateSiteRequest{Name: "blog", Type: api.SiteManaged})
		})
	}
}

func TestUnconfirmedRulesAreAWarning(t *testing.T) {
	e := newEnv(t)
	e.rec.fail("rules", fmt.Errorf("auth server: %w", manage.ErrNotConfirmed))
	res, err := e.Create(ctx, api.CreateSiteRequest{Name: "blog", Type: api.SiteManaged})
	if err != nil || res.Warning != RulesNotConfirmed {
		t.Fatalf("res %+v, err %v", res, err)
	}
}

func TestUpdate(t *testing.T) {
	e := newEnv(t)
	site := e.create(t, api.CreateSiteRequest{Name: "blog", Type: api.SiteManaged})
	e.rec.took()

	// Nothing changed.
	f := false
	res, err := e.Update(ctx, site.ID, api.UpdateSiteRequest{SPAMode: &f})
	if err != nil || res.Changed || len(e.rec.took()) != 0 {
		t.Fatalf("unchanged patch: %+v %v", res, err)
	}
	// SPA mode rewrites the vhost only.
	tr := true
	res, err = e.Update(ctx, site.ID, api.UpdateSiteRequest{SPAMode: &tr})
	if err != nil || !res.Changed || !res.Site.SPAMode || !e.rec.vhosts[site.ID].SPAMode {
		t.Fatalf("spa: %+v %v", res, err)
	}
	if got := e.rec.took(); !slices.Equal(got, []string{"cert.get", "vhost.write"}) {
		t.Fatalf("spa calls %v", got)
	}
	// Protection: rules before the vhost.
	users := []string{"alice"}
	res, err = e.Update(ctx, site.ID, api.UpdateSiteRequest{AutheliaProtected: &tr, AllowedUsers: &users})
	if err != nil || !res.Site.AutheliaProtected || !slices.Equal(res.Site.AllowedUsers, users) {
		t.Fatalf("protect: %+v %v", res, err)
	}
	if got := e.rec.took(); !slices.Equal(got, []string{"cert.get", "rules", "vhost.write"}) {
		t.Fatalf("protect calls %v", got)
	}
	// A failing vhost undoes the rules and changes nothing.
	e.rec.fail("vhost.write", errors.New("nginx -t failed"))
	_, err = e.Update(ctx, site.ID, api.UpdateSiteRequest{AutheliaProtected: &f})
	if err == nil || errkind.Message(err) != "Failed to update site configuration" {
		t.Fatalf("err %v", err)
	}
	got, _ := e.Get(Caller{Admin: true}, site.ID)
	if !got.AutheliaProtected || !e.rec.rules[0].AutheliaProtected {
		t.Fatalf("not rolled back: site %+v, rules %+v", got, e.rec.rules)
	}
	// Unknown id; protection of a custom site outside <d>.
	_, err = e.Update(ctx, "8a4b3c2d-1e0f-4a5b-8c7d-6e5f4a3b2c1d", api.UpdateSiteRequest{SPAMode: &tr})
	wantErr(t, err, errkind.NotFound, "Site not found")
	custom := e.create(t, api.CreateSiteRequest{Name: "shop", Type: api.SiteCustom, CustomDomain: "shop.example.org"})
	_, err = e.Update(ctx, custom.ID, api.UpdateSiteRequest{AutheliaProtected: &tr})
	wantErr(t, err, errkind.Invalid, "Login protection is only available for sites under example.com")
	// A custom site that is not live yet gets no vhost.
	e.rec.took()
	if _, err := e.Update(ctx, custom.ID, api.UpdateSiteRequest{SPAMode: &tr}); err != nil {
		t.Fatal(err)
	}
	if got := e.rec.took(); len(got) != 0 {
		t.Fatalf("calls for a site that is not live: %v", got)
	}
}

func TestDelete(t *testing.T) {
	e := newEnv(t)
	e.rec.wildcard = false
	e.rec.dns["blog."+testDomain] = []string{testIP}
	site := e.create(t, api.CreateSiteRequest{Name: "blog", Type: api.SiteManaged})
	e.rec.took()
	// A failing nginx keeps everything.
	e.rec.fail("vhost.remove", errors.New("nginx -t failed"))
	if _, err := e.Delete(ctx, site.ID); err == nil || errkind.Message(err) != "Failed to delete site" {
		t.Fatalf("err %v", err)
	}
	if _, err := os.Stat(site.RootPath); err != nil {
		t.Fatal("root removed by a failed delete")
	}
	e.rec.took()
	if _, err := e.Delete(ctx, site.ID); err != nil {
		t.Fatal(err)
	}
	if got := e.rec.took(); !slices.Equal(got, []string{"vhost.remove", "rules", "cert.delete"}) {
		t.Fatalf("calls %v", got)
	}
	if _, err := os.Stat(site.RootPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("root still there: %v", err)
	}
	if len(e.rec.certs) != 0 || len(e.rec.vhosts) != 0 || len(e.rec.rules) != 0 {
		t.Fatalf("left: certs %v vhosts %v rules %v", e.rec.certs, e.rec.vhosts, e.rec.rules)
	}
	_, err := e.Delete(ctx, site.ID)
	wantErr(t, err, errkind.NotFound, "Site not found")
}

func TestVerifyDNS(t *testing.T) {
	e := newEnv(t)
	managed := e.create(t, api.CreateSiteRequest{Name: "blog", Type: api.SiteManaged})
	_, err := e.VerifyDNS(ctx, managed.ID)
	wantErr(t, err, errkind.Invalid, "DNS verification is only needed for custom domains")

	site := e.create(t, api.CreateSiteRequest{Name: "shop", Type: api.SiteCustom, CustomDomain: "shop.example.org"})
	if site.DNSVerified || site.CertIssued {
		t.Fatalf("custom site live at once: %+v", site)
	}
	e.rec.took()
	res, err := e.VerifyDNS(ctx, site.ID)
	if err != nil || res.OK || res.FQDN != "shop.example.org" || res.ExpectedIP != testIP || res.ResolvedIPs == nil || len(*res.ResolvedIPs) != 0 {
		t.Fatalf("no record: %+v %v", res, err)
	}
	e.rec.dns["shop.example.org"] = []string{testIP}
	e.rec.fail("cert.get", errors.New("acme: rate limited"))
	_, err = e.VerifyDNS(ctx, site.ID)
	wantErr(t, err, errkind.Failed, "DNS verified but certificate issuance failed")
	if got, _ := e.Get(Caller{Admin: true}, site.ID); !got.DNSVerified || got.CertIssued {
		t.Fatalf("after failed issuance: %+v", got)
	}
	e.rec.took()
	res, err = e.VerifyDNS(ctx, site.ID)
	if err != nil || !res.OK || res.Message != MsgLive {
		t.Fatalf("verify: %+v %v", res, err)
	}
	if got := e.rec.took(); !slices.Equal(got, []string{"dns", "cert.get", "vhost.write", "rules"}) {
		t.Fatalf("calls %v", got)
	}
	if got, _ := e.Get(Caller{Admin: true}, site.ID); !got.DNSVerified || !got.CertIssued {
		t.Fatalf("after verify: %+v", got)
	}
	res, err = e.VerifyDNS(ctx, site.ID)
	if err != nil || !res.OK || res.Message != MsgAlreadyVerified {
		t.Fatalf("again: %+v %v", res, err)
	}
	// DELETE drops the custom site's certificate.
	if _, err := e.Delete(ctx, site.ID); err != nil || e.rec.certs["shop.example.org"] {
		t.Fatalf("delete: %v, certs %v", err, e.rec.certs)
	}
}

func TestAgentsSeeTheirAllowedSites(t *testing.T) {
	e := newEnv(t)
	blog := e.create(t, api.CreateSiteRequest{Name: "blog", Type: api.SiteManaged})
	shop := e.create(t, api.CreateSiteRequest{Name: "shop", Type: api.SiteManaged})
	ag := Caller{Label: "home", AllowedSites: []string{"blog"}}
	list, err := e.List(ag)
	if err != nil || len(list) != 1 || list[0].ID != blog.ID {
		t.Fatalf("agent list %+v %v", list, err)
	}
	_, err = e.Files(ag, shop.ID, ".", false)
	wantErr(t, err, errkind.Forbidden, "You do not have access to this site")
	err = e.DeleteFile(ctx, ag, shop.ID, "index.html")
	wantErr(t, err, errkind.Forbidden, "You do not have access to this site")
	if _, err := os.Stat(filepath.Join(shop.RootPath, "index.html")); err != nil {
		t.Fatal("a refused delete removed the file")
	}
	if _, err := e.Files(ag, blog.ID, ".", false); err != nil {
		t.Fatal(err)
	}
	_, err = e.Files(ag, "8a4b3c2d-1e0f-4a5b-8c7d-6e5f4a3b2c1d", ".", false)
	wantErr(t, err, errkind.NotFound, "Site not found")
}

func TestCreateNeedsDomainAndEmail(t *testing.T) {
	e := newEnv(t)
	e.cfg.Settings = func() (Settings, error) { return Settings{IP: testIP}, nil }
	_, err := e.Create(ctx, api.CreateSiteRequest{Name: "blog", Type: api.SiteManaged})
	wantErr(t, err, errkind.Invalid, "Domain and email must be configured before creating sites")
	if got := e.rec.took(); len(got) != 0 {
		t.Fatalf("calls %v", got)
	}
}
