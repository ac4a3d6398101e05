package acme_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/acme"
	"github.com/portlama/portlama/internal/errkind"
	"github.com/portlama/portlama/internal/pebble"
	"github.com/portlama/portlama/internal/testutil"
)

// One Pebble for the package, validating http-01 against one webroot
// server (what nginx's :80 vhost does on a relay).
var (
	pebbleOnce sync.Once
	pebbleSrv  *pebble.Server
	pebbleErr  error
	webrootDir string
)

func startPebble(t *testing.T) *pebble.Server {
	t.Helper()
	testutil.NeedBinary(t, "pebble")
	pebbleOnce.Do(func() {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			pebbleErr = err
			return
		}
		webrootDir, _ = os.MkdirTemp("", "acme-webroot-")
		go http.Serve(ln, http.FileServer(http.Dir(webrootDir)))
		dir, _ := os.MkdirTemp("", "acme-pebble-")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		pebbleSrv, pebbleErr = pebble.Start(ctx, pebble.Config{Dir: dir, HTTPPort: ln.Addr().(*net.TCPAddr).Port})
	})
	if pebbleErr != nil {
		t.Fatal(pebbleErr)
	}
	return pebbleSrv
}

func TestMain(m *testing.M) {
	code := m.Run()
	if pebbleSrv != nil {
		pebbleSrv.Stop()
	}
	os.Exit(code)
}

type env struct {
	store  *acme.Store
	certs  string
	pebble *pebble.Server
	set    acme.Settings
}

func newEnv(t *testing.T, mod func(*acme.IssuerConfig, *acme.Settings)) *env {
	t.Helper()
	p := startPebble(t)
	e := &env{certs: filepath.Join(t.TempDir(), "certs"), pebble: p,
		set: acme.Settings{DirectoryURL: p.DirectoryURL, Email: "ops@example.com"}}
	cfg := acme.IssuerConfig{
		AccountDir:   filepath.Join(e.certs, "account"),
		Webroot:      webrootDir,
		Settings:     func() (acme.Settings, error) { return e.set, nil },
		CACertFile:   p.CACertFile,
		DNSResolvers: []string{p.DNSAddr},
		Profile:      pebble.ProfileDefault,
	}
	if mod != nil {
		mod(&cfg, &e.set)
	}
	iss, err := acme.NewIssuer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.store = &acme.Store{Dir: e.certs, Domain: func() string { return "" }, Issuer: iss}
	return e
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// verify checks that the certificate called name chains to Pebble's root
// for every name in want, and returns its leaf.
func (e *env) verify(t *testing.T, name string, want ...string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(e.store.Paths(name).Cert)
	if err != nil {
		t.Fatal(err)
	}
	var certs []*x509.Certificate
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	if len(certs) < 2 {
		t.Fatalf("%s: fullchain has %d certificates", name, len(certs))
	}
	roots, err := e.pebble.RootPool(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	for _, n := range want {
		if _, err := certs[0].Verify(x509.VerifyOptions{DNSName: n, Roots: roots, Intermediates: inter}); err != nil {
			t.Fatalf("%s for %s: %v", name, n, err)
		}
	}
	if st, err := os.Stat(e.store.Paths(name).Key); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode: %v %v", st.Mode(), err)
	}
	return certs[0]
}

func TestHTTP01IssueReuseRenew(t *testing.T) {
	e := newEnv(t, nil)
	const name = "panel.http01.localhost"
	ordered, err := e.store.Obtain(ctx(t), name, []string{name})
	if err != nil || !ordered {
		t.Fatalf("obtain: %v %v", ordered, err)
	}
	first := e.verify(t, name, name)
	m, err := e.store.Meta(name)
	if err != nil || m.Challenge != acme.ChallengeHTTP01 {
		t.Fatalf("meta %+v %v", m, err)
	}
	for _, f := range []string{"account.key", "account.json"} {
		st, err := os.Stat(filepath.Join(e.certs, "account", f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, st, err)
		}
	}
	// A valid certificate is reused: running provisioning again orders nothing.
	if ordered, err := e.store.Obtain(ctx(t), name, []string{name}); err != nil || ordered {
		t.Fatalf("second obtain ordered %v (%v)", ordered, err)
	}
	if _, err := e.store.Renew(ctx(t), name); err != nil {
		t.Fatal(err)
	}
	if renewed := e.verify(t, name, name); renewed.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatal("renewal kept the old certificate")
	}
	if _, err := e.store.Renew(ctx(t), "unknown.http01.localhost"); !errors.Is(err, errkind.NotFound) {
		t.Fatalf("renew of an unknown name: %v", err)
	}
}

func TestRenewDue(t *testing.T) {
	profile := pebble.ProfileShort
	e := newEnv(t, nil)
	// Two certificates from issuers asking for other lifetimes: 20 days
	// (due) and 60 days (not due).
	for _, c := range []struct{ name, profile string }{{"short.renew.localhost", profile}, {"sixty.renew.localhost", pebble.ProfileSixty}} {
		iss := newEnv(t, func(ic *acme.IssuerConfig, _ *acme.Settings) {
			ic.Profile = c.profile
			ic.AccountDir = filepath.Join(e.certs, "account")
		})
		iss.store.Dir = e.certs
		if _, err := iss.store.Obtain(ctx(t), c.name, []string{c.name}); err != nil {
			t.Fatal(err)
		}
	}
	before := e.verify(t, "short.renew.localhost", "short.renew.localhost")
	keep := e.verify(t, "sixty.renew.localhost", "sixty.renew.localhost")
	res, err := e.store.RenewDue(ctx(t), acme.RenewWindow)
	if err != nil || len(res.Failed) != 0 {
		t.Fatalf("renew: %+v %v", res, err)
	}
	if strings.Join(res.Renewed, ",") != "short.renew.localhost" || strings.Join(res.Kept, ",") != "sixty.renew.localhost" {
		t.Fatalf("renewed %v, kept %v", res.Renewed, res.Kept)
	}
	after := e.verify(t, "short.renew.localhost", "short.renew.localhost")
	if after.SerialNumber.Cmp(before.SerialNumber) == 0 || time.Until(after.NotAfter) < 80*24*time.Hour {
		t.Fatalf("short certificate not renewed with the default lifetime: until %v", after.NotAfter)
	}
	if k := e.verify(t, "sixty.renew.localhost", "sixty.renew.localhost"); k.SerialNumber.Cmp(keep.SerialNumber) != 0 {
		t.Fatal("a certificate with 60 days left was renewed")
	}
}

func TestDNS01Wildcard(t *testing.T) {
	p := startPebble(t)
	do, err := p.StartDigitalOcean()
	if err != nil {
		t.Fatal(err)
	}
	defer do.Close()
	cred := filepath.Join(t.TempDir(), "acme-dns.env")
	if err := os.WriteFile(cred, []byte("# DigitalOcean\nDO_AUTH_TOKEN="+do.Token+"\nDO_API_URL="+do.URL+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *acme.IssuerConfig, s *acme.Settings) {
		c.DNSCredentials = cred
		s.DNSProvider, s.Wildcard = acme.ProviderDigitalOcean, true
		// No http-01 is possible: the webroot is not served.
		c.Webroot = t.TempDir()
	})
	const d = "wild.localhost"
	p.AddZone(d)
	if _, err := e.store.Obtain(ctx(t), d, []string{d, "*." + d}); err != nil {
		t.Fatal(err)
	}
	e.verify(t, d, d, "app."+d, "other."+d)
	if m, _ := e.store.Meta(d); m.Challenge != acme.ChallengeDNS01 {
		t.Fatalf("challenge %q", m.Challenge)
	}
	if recs := do.Records(); len(recs) != 0 {
		t.Fatalf("TXT records left behind: %v", recs)
	}

	// A wrong token is explained, and the credentials file must be private.
	if err := os.WriteFile(cred, []byte("DO_AUTH_TOKEN=wrong\nDO_API_URL="+do.URL+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Renew(ctx(t), d); err == nil {
		t.Fatal("renewal with a wrong DigitalOcean token succeeded")
	}
	os.Chmod(cred, 0o644)
	if _, err := e.store.Renew(ctx(t), d); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable token file: %v", err)
	}
}

func TestFailuresAreExplained(t *testing.T) {
	t.Run("port 80 unreachable", func(t *testing.T) {
		e := newEnv(t, nil)
		// Pebble resolves the name to a loopback address where nothing
		// answers on the validation port.
		const name = "noport.localhost"
		if err := e.pebble.SetA(ctx(t), name, "127.0.0.2"); err != nil {
			t.Fatal(err)
		}
		defer e.pebble.ClearA(context.Background(), name)
		_, err := e.store.Obtain(ctx(t), name, []string{name})
		var ie *acme.IssueError
		if !errors.As(err, &ie) || ie.Advice != "Let's Encrypt could not reach http://noport.localhost/.well-known/acme-challenge/; check that port 80 is open" {
			t.Fatalf("error %v", err)
		}
		if _, err := os.Stat(e.store.Paths(name).Cert); err == nil {
			t.Fatal("a failed order left a certificate")
		}
	})
	t.Run("CA unreachable", func(t *testing.T) {
		e := newEnv(t, func(_ *acme.IssuerConfig, s *acme.Settings) { s.DirectoryURL = "https://127.0.0.1:1/dir" })
		_, err := e.store.Obtain(ctx(t), "x.localhost", []string{"x.localhost"})
		var ie *acme.IssueError
		if !errors.As(err, &ie) || !strings.HasPrefix(ie.Advice, "Cannot reach the certificate authority at https://127.0.0.1:1/dir") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("wildcard without provider", func(t *testing.T) {
		e := newEnv(t, nil)
		if _, err := e.store.Obtain(ctx(t), "w.localhost", []string{"w.localhost", "*.w.localhost"}); err == nil || !strings.Contains(err.Error(), "DNS provider") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("bad names are refused before any order", func(t *testing.T) {
		e := newEnv(t, nil)
		for _, n := range []string{"", "a b.localhost", "../x", "*.*.x.localhost"} {
			if _, err := e.store.Obtain(ctx(t), "ok.localhost", []string{n}); err == nil {
				t.Errorf("%q accepted", n)
			}
		}
	})
}

// Provisioning orders its three certificates at once through one issuer.
func TestConcurrentOrders(t *testing.T) {
	e := newEnv(t, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for _, sub := range []string{"panel", "auth", "tunnel"} {
		wg.Go(func() {
			name := sub + ".concurrent.localhost"
			_, err := e.store.Obtain(ctx(t), name, []string{name})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, sub := range []string{"panel", "auth", "tunnel"} {
		e.verify(t, sub+".concurrent.localhost", sub+".concurrent.localhost")
	}
}
