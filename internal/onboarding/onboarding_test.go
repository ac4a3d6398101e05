package onboarding

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/onboarding/dnstest"
)

const relayIP = "203.0.113.10"

func newService(t *testing.T, status, domain string) (*Service, *dnstest.Server) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "panel.json")
	d := "null"
	if domain != "" {
		d = `"` + domain + `"`
	}
	body := `{"ip":"` + relayIP + `","dataDir":"/etc/portlama","domain":` + d + `,"email":null,"onboarding":{"status":"` + status + `"}}`
	if err := os.WriteFile(path, []byte(body), 0o640); err != nil {
		t.Fatal(err)
	}
	srv, err := dnstest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return &Service{Store: config.NewPanelStore(path), Resolver: DNSServerResolver{Server: srv.Addr, Timeout: 2 * time.Second}}, srv
}

// stored reads panel.json as the service left it.
func stored(t *testing.T, s *Service) config.PanelConfig {
	t.Helper()
	c, err := s.Store.Load()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func status(t *testing.T, s *Service) string { return stored(t, s).Onboarding.Status }

func TestSetDomain(t *testing.T) {
	s, _ := newService(t, config.StatusFresh, "")
	res, err := s.SetDomain("Example.COM", "ops@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if res.Domain != "example.com" || res.Email != "ops@example.com" || !res.OK {
		t.Fatalf("result %+v", res)
	}
	st := stored(t, s)
	if st.Onboarding.Status != config.StatusDomainSet || st.Domain == nil || *st.Domain != "example.com" {
		t.Fatalf("status %+v", st)
	}
	// Repeatable in DOMAIN_SET.
	if _, err := s.SetDomain("other.org", "a@b.co"); err != nil {
		t.Fatal(err)
	}
	// Invalid values are refused before anything else.
	var fe *FieldError
	if _, err := s.SetDomain("bad_domain.com", "a@b.co"); !errors.As(err, &fe) || fe.Field != "domain" {
		t.Fatalf("err = %v", err)
	}
	if _, err := s.SetDomain("good.com", "nope"); !errors.As(err, &fe) || fe.Field != "email" {
		t.Fatalf("err = %v", err)
	}
}

func TestSetDomainRefusedStates(t *testing.T) {
	for _, st := range []string{config.StatusDNSReady, config.StatusProvisioning, config.StatusCompleted} {
		t.Run(st, func(t *testing.T) {
			s, _ := newService(t, st, "keep.com")
			_, err := s.SetDomain("new.com", "a@new.com")
			var se *StateError
			if !errors.As(err, &se) || se.Status != st || se.Completed() != (st == config.StatusCompleted) {
				t.Fatalf("err = %v", err)
			}
			got := stored(t, s)
			if *got.Domain != "keep.com" {
				t.Fatalf("domain changed to %s", *got.Domain)
			}
		})
	}
}

func TestVerifyDNS(t *testing.T) {
	const d = "example.com"
	names := RequiredNames(d)
	cases := []struct {
		name       string
		setup      func(*dnstest.Server)
		ok, wild   bool
		missing    int
		msgHas     string
		wantStatus string
	}{
		{"all with wildcard", func(s *dnstest.Server) {
			for _, n := range names {
				s.SetA(n, relayIP)
			}
			s.SetA("test-portlama-check."+d, relayIP)
		}, true, true, 0, "wildcard *.example.com all point", config.StatusDNSReady},
		{"no wildcard", func(s *dnstest.Server) {
			for _, n := range names {
				s.SetA(n, "198.51.100.1", relayIP)
			}
		}, true, false, 0, "no wildcard record", config.StatusDNSReady},
		{"elsewhere", func(s *dnstest.Server) {
			for _, n := range names {
				s.SetA(n, relayIP)
			}
			s.SetA("panel."+d, "198.51.100.7")
		}, false, false, 1, "Change their A records to point to " + relayIP, config.StatusDomainSet},
		{"nxdomain", func(s *dnstest.Server) {}, false, false, 4, "Add A records", config.StatusDomainSet},
		{"nodata", func(s *dnstest.Server) {
			for _, n := range names {
				s.SetNoData(n)
			}
		}, false, false, 4, "propagate", config.StatusDomainSet},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, srv := newService(t, config.StatusDomainSet, d)
			tc.setup(srv)
			res, err := s.VerifyDNS(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if res.OK != tc.ok || res.WildcardOK != tc.wild || len(res.MissingNames) != tc.missing {
				t.Fatalf("result %+v", res)
			}
			if !strings.Contains(res.Message, tc.msgHas) {
				t.Fatalf("message %q lacks %q", res.Message, tc.msgHas)
			}
			if res.ExpectedIP != relayIP || res.Domain != d || res.ResolvedIPs == nil || res.WildcardResolvedIPs == nil {
				t.Fatalf("result %+v", res)
			}
			if got := status(t, s); got != tc.wantStatus {
				t.Fatalf("status %s, want %s", got, tc.wantStatus)
			}
		})
	}
}

func TestVerifyDNSServerFailureIsError(t *testing.T) {
	s, srv := newService(t, config.StatusDomainSet, "example.com")
	srv.SetRcode("auth.example.com", dns.RcodeServerFailure)
	if _, err := s.VerifyDNS(context.Background()); err == nil || !strings.Contains(err.Error(), "SERVFAIL") {
		t.Fatalf("err = %v", err)
	}
	if got := status(t, s); got != config.StatusDomainSet {
		t.Fatalf("status changed to %s", got)
	}
}

func TestVerifyDNSTimeoutIsEmpty(t *testing.T) {
	// A UDP socket that never answers.
	s, _ := newService(t, config.StatusDomainSet, "example.com")
	silent, err := listenSilent(t)
	if err != nil {
		t.Fatal(err)
	}
	s.Resolver = DNSServerResolver{Server: silent, Timeout: 200 * time.Millisecond}
	res, err := s.VerifyDNS(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || len(res.MissingNames) != 4 {
		t.Fatalf("result %+v", res)
	}
}

func TestVerifyDNSRefusedStates(t *testing.T) {
	for _, st := range []string{config.StatusFresh, config.StatusProvisioning, config.StatusCompleted} {
		s, _ := newService(t, st, "")
		_, err := s.VerifyDNS(context.Background())
		var se *StateError
		if !errors.As(err, &se) || se.Status != st {
			t.Fatalf("%s: err = %v", st, err)
		}
	}
}

func TestConcurrentSetDomain(t *testing.T) {
	s, _ := newService(t, config.StatusFresh, "")
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			if _, err := s.SetDomain("d"+string(rune('a'+i%26))+".example.com", "a@b.co"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if _, err := s.Store.Load(); err != nil {
		t.Fatalf("panel.json corrupted: %v", err)
	}
}

func TestSystemResolverLocalhost(t *testing.T) {
	ips, err := SystemResolver{Timeout: 2 * time.Second}.LookupA(context.Background(), "localhost")
	if err != nil {
		t.Fatal(err)
	}
	if len(ips) == 0 || ips[0] != "127.0.0.1" {
		t.Logf("localhost resolved to %v", ips)
	}
	ips, err = SystemResolver{Timeout: 2 * time.Second}.LookupA(context.Background(), "no-such-name.invalid")
	if err != nil || len(ips) != 0 {
		t.Fatalf("invalid name: %v %v", ips, err)
	}
}
