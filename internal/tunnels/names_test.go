package tunnels

import (
	"context"
	"testing"

	"github.com/portlama/portlama/internal/errkind"
	"github.com/portlama/portlama/internal/hostnames"
)

// A name held elsewhere in the relay's name space (a site) is refused.
func TestCreateRefusesNamesHeldBySites(t *testing.T) {
	names := hostnames.New()
	names.AddSource(func() ([]hostnames.Name, error) {
		return []hostnames.Name{{Kind: hostnames.Site, Label: "blog", FQDN: "blog.example.com", SiteName: "blog"}}, nil
	})
	s, r := newService(t, "home")
	s.cfg.Names = names
	names.AddSource(s.hostNames)
	_, err := s.Create(context.Background(), admin, CreateRequest{Subdomain: "blog", Port: 8080})
	if err == nil || errkind.Message(err) != "Subdomain 'blog' is already in use" || len(r.calls) != 0 {
		t.Fatalf("err %v, calls %v", err, r.calls)
	}
	if _, err := s.Create(context.Background(), admin, CreateRequest{Subdomain: "app", Port: 8080}); err != nil {
		t.Fatal(err)
	}
	held, _ := names.Held()
	if _, clash := hostnames.Clashes(held, hostnames.Name{Label: "app"}, hostnames.Tunnel); !clash {
		t.Fatalf("the new tunnel is not in the name space: %+v", held)
	}
}
