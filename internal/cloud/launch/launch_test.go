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
)

// The whole flow with SSH and the real installer runs in the lab
// (test/lab TestProvisionLab); these tests cover what needs no droplet:
// refusals, failure reports, the lost create answer, destroy.

type rig struct {
	job  *Job
	fake *dofake.API
	keys keychain.Keychain
	dir  string
	base string
}

func newRig(t *testing.T) rig {
	t.Helper()
	fake := dofake.New(dofake.Options{
		Token: "tok", Addr: "127.0.0.1",
		Sizes: []digitalocean.Size{
			{Slug: "s-1vcpu-512mb-10gb", Memory: 512, PriceMonthly: 4, PriceHourly: 0.00595, Regions: []string{"fra1"}, Available: true},
			{Slug: "s-gone", Memory: 512, PriceMonthly: 3, Regions: []string{"fra1"}, Available: false},
		},
	})
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	bin := filepath.Join(dir, "portlama")
	if err := os.WriteFile(bin, []byte("relay"), 0o755); err != nil {
		t.Fatal(err)
	}
	keys, err := keychain.Open(keychain.Options{Backend: keychain.BackendFile, File: filepath.Join(dir, "secrets.json")})
	if err != nil {
		t.Fatal(err)
	}
	job := New(Config{
		API: digitalocean.New(srv.URL, "tok", nil), Keys: keys, Servers: servers.New(agent.Home{Dir: dir}, keys),
		StatePath: filepath.Join(dir, "provision.json"), Binary: bin, Poll: 10 * time.Millisecond, Boot: 300 * time.Millisecond,
		// Nothing listens: the SSH step cannot connect.
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return nil, errors.New("connection refused")
		},
	})
	return rig{job: job, fake: fake, keys: keys, dir: dir, base: srv.URL}
}

var good = Request{Name: "relay-1", Region: "fra1", Size: "s-1vcpu-512mb-10gb"}

func TestStartRefusals(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		req  Request
		want string
	}{
		{"bad name", Request{Name: "Relay One", Region: "fra1", Size: good.Size}, "invalid label"},
		{"bad image", Request{Name: "r", Region: "fra1", Size: good.Size, Image: "windows"}, "not supported"},
		{"unknown size", Request{Name: "r", Region: "fra1", Size: "s-huge"}, `no droplet size "s-huge"`},
		{"unavailable size", Request{Name: "r", Region: "fra1", Size: "s-gone"}, "not available in region fra1"},
		{"size not in region", Request{Name: "r", Region: "nyc3", Size: good.Size}, "not available in region nyc3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.job.Start(ctx, tc.req, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if _, err := r.job.State(); !errors.Is(err, ErrNoJob) {
				t.Fatalf("a refused request saved a job: %v", err)
			}
			if k, d := r.fake.Counts(); k != 0 || d != 0 {
				t.Fatalf("a refused request made %d keys, %d droplets", k, d)
			}
		})
	}
	bad := New(Config{API: r.job.cfg.API, Keys: r.keys, StatePath: filepath.Join(r.dir, "p2.json"), Binary: filepath.Join(r.dir, "missing")})
	if _, err := bad.Start(ctx, good, nil); err == nil || !strings.Contains(err.Error(), "relay binary") {
		t.Fatalf("missing binary: %v", err)
	}
	wrong := New(Config{API: digitalocean.New(r.base, "bad", nil), Keys: r.keys, StatePath: filepath.Join(r.dir, "p3.json"), Binary: r.job.cfg.Binary})
	if _, err := wrong.Start(ctx, good, nil); err == nil || !strings.Contains(err.Error(), "refused the API token") {
		t.Fatalf("bad token: %v", err)
	}
}

// TestLostCreateAnswer: the create request made a droplet but its answer
// was lost. The failure says a droplet may exist; resuming finds it by its
// tag instead of making a second; a later failure names it with its price;
// destroy leaves nothing behind.
func TestLostCreateAnswer(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	r.fake.LoseNextCreateAnswer()
	var events []Event
	_, err := r.job.Start(ctx, good, func(e Event) { events = append(events, e) })
	var fe *FailedError
	if !errors.As(err, &fe) || fe.Step != StepCreate || !fe.MaybeDroplet || !strings.Contains(err.Error(), "may have been created") {
		t.Fatalf("lost answer: %v", err)
	}
	if last := events[len(events)-1]; last.Step != StepCreate || last.Status != "failed" {
		t.Fatalf("last event %+v", last)
	}
	if _, err := r.job.Start(ctx, good, nil); err == nil || !strings.Contains(err.Error(), "already being provisioned") {
		t.Fatalf("a second job while one is saved: %v", err)
	}
	_, err = r.job.Resume(ctx, nil)
	if !errors.As(err, &fe) || fe.Step != StepConnect || fe.DropletID == 0 || !strings.Contains(err.Error(), "exists and costs $0.00595 an hour ($4.00 a month)") {
		t.Fatalf("resume: %v", err)
	}
	if _, d := r.fake.Counts(); d != 1 {
		t.Fatalf("%d droplets after resuming, want the one made before", d)
	}
	st, err := r.job.State()
	if err != nil || st.Step != StepConnect || st.IP != "127.0.0.1" || !strings.Contains(st.Error, "connection refused") {
		t.Fatalf("state %+v %v", st, err)
	}
	info, err := os.Stat(filepath.Join(r.dir, "provision.json"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("provision.json mode: %v %v", info, err)
	}
	if err := r.job.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	if k, d := r.fake.Counts(); k != 0 || d != 0 {
		t.Fatalf("after destroy: %d keys, %d droplets", k, d)
	}
	if _, err := r.keys.Get(secretKey(good.Name, "ssh-key")); !errors.Is(err, keychain.ErrNotFound) {
		t.Fatalf("the SSH key is still in the keychain: %v", err)
	}
	if _, err := r.job.State(); !errors.Is(err, ErrNoJob) {
		t.Fatalf("state after destroy: %v", err)
	}
}

// TestNoDropletYet: a failure before the droplet says none was made.
func TestNoDropletYet(t *testing.T) {
	r := newRig(t)
	ctx, cancel := context.WithCancel(context.Background())
	_, err := r.job.Start(ctx, good, func(e Event) {
		if e.Step == StepKey && e.Status == "running" {
			cancel()
		}
	})
	var fe *FailedError
	if !errors.As(err, &fe) || fe.Step != StepKey || fe.DropletID != 0 || !strings.Contains(err.Error(), "No droplet was created") {
		t.Fatalf("%v", err)
	}
}
