package launch

import (
	"context"
	"errors"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/agent"
	"github.com/portlama/portlama/internal/cloud/digitalocean"
	"github.com/portlama/portlama/internal/cloud/digitalocean/dofake"
	"github.com/portlama/portlama/internal/keychain"
	"github.com/portlama/portlama/internal/servers"
	"github.com/portlama/portlama/internal/testutil"
)

// TestServiceRun: the background run keeps its events, ends with the
// failure report (the droplet, its price), refuses a second run while it
// runs, and destroy leaves the account empty.
func TestServiceRun(t *testing.T) {
	fake := dofake.New(dofake.Options{Token: "tok", Addr: "127.0.0.1",
		Regions: []digitalocean.Region{{Slug: "fra1", Name: "Frankfurt 1", Available: true}},
		Sizes:   []digitalocean.Size{{Slug: "s-1vcpu-512mb-10gb", Memory: 512, PriceMonthly: 4, PriceHourly: 0.00595, Regions: []string{"fra1"}, Available: true}},
	})
	srv := httptest.NewServer(fake)
	defer srv.Close()
	dir := t.TempDir()
	bin := filepath.Join(dir, "portlama")
	os.WriteFile(bin, []byte("relay"), 0o755)
	keys, _ := keychain.Open(keychain.Options{Backend: keychain.BackendFile, File: filepath.Join(dir, "secrets.json")})
	release := make(chan struct{})
	s := NewService(ServiceConfig{
		APIBase: srv.URL, Keys: keys, Servers: servers.New(agent.Home{Dir: dir}, keys), StatePath: filepath.Join(dir, "provision.json"),
		Binary: bin, Poll: 10 * time.Millisecond, Boot: 200 * time.Millisecond,
		// The SSH dial waits for the test, so the run is observed while
		// it runs; then nothing answers.
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			<-release
			return nil, errors.New("connection refused")
		},
	})
	ctx := context.Background()
	if _, err := s.Options(ctx); !errors.Is(err, ErrNoToken) {
		t.Fatalf("options without a token: %v", err)
	}
	if _, err := s.SetToken(ctx, "tok"); err != nil {
		t.Fatal(err)
	}
	choices, err := s.Options(ctx)
	if err != nil || len(choices) != 1 || choices[0].Suggestion != "s-1vcpu-512mb-10gb" {
		t.Fatalf("options %+v %v", choices, err)
	}
	if err := s.Start(ctx, Request{Name: "r1", Region: "fra1", Size: "s-1vcpu-512mb-10gb"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx, Request{Name: "r2", Region: "fra1", Size: "s-1vcpu-512mb-10gb"}); err == nil {
		t.Fatal("a second job started while one runs")
	}
	if err := s.Destroy(ctx); !errors.Is(err, ErrBusy) {
		t.Fatalf("destroy while running: %v", err)
	}
	close(release)
	var p Progress
	if err := testutil.Eventually(10*time.Second, func() error {
		var err error
		if p, err = s.Progress(); err == nil && p.Running {
			err = errors.New("still running")
		}
		return err
	}); err != nil {
		t.Fatalf("the run did not end: %v", err)
	}
	if !strings.Contains(p.Error, "exists and costs $0.00595 an hour") || p.State == nil || p.State.Step != StepConnect {
		t.Fatalf("progress after the failure: %+v", p)
	}
	var created bool
	for _, e := range p.Events {
		created = created || (e.Step == StepCreate && e.Status == "done")
	}
	if !created {
		t.Fatalf("events %+v", p.Events)
	}
	if err := s.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	if k, d := fake.Counts(); k != 0 || d != 0 {
		t.Fatalf("after destroy: %d keys, %d droplets", k, d)
	}
}

func FuzzCheckToken(f *testing.F) {
	for _, s := range []string{"dop_v1_abc", "", "two words", "tab\there", "é", strings.Repeat("a", 201)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if checkToken(s) != nil {
			return
		}
		if s == "" || len(s) > 200 || strings.ContainsAny(s, " \t\r\n\x00") {
			t.Fatalf("accepted %q", s)
		}
		for _, r := range s {
			if r > '~' {
				t.Fatalf("accepted non-ASCII %q", s)
			}
		}
	})
}
