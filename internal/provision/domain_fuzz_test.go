package provision

import (
	"regexp"
	"strings"
	"testing"

	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/nginx"
	"github.com/portlama/portlama/internal/validate"
)

// FuzzDomainToVhosts: the onboarding domain is the one free-form value
// provisioning writes into nginx configuration. Whatever is accepted
// (validate.Domain, then lower-cased as onboarding stores it) renders the
// three domain vhosts, and every server_name they contain is a plain host
// name under that domain; anything else is refused before it gets there.
func FuzzDomainToVhosts(f *testing.F) {
	for _, s := range []string{"example.com", "Sub.Example.COM", "a.b.c.d.example", "xn--80ak6aa92e.com", "ex ample.com",
		"example.com;", "example.com\nserver_name evil", "-a.com", "a..b", "localhost", "demo.localhost", "x.y${z}"} {
		f.Add(s)
	}
	r, err := nginx.NewRenderer(config.DirLayout("/srv/portlama"), config.DefaultAddrs())
	if err != nil {
		f.Fatal(err)
	}
	serverName := regexp.MustCompile(`(?m)^\s*server_name\s+([^;]*);`)
	host := regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$`)
	tls := nginx.TLSFiles{Cert: "/srv/portlama/certs/x/fullchain.pem", Key: "/srv/portlama/certs/x/privkey.pem"}
	f.Fuzz(func(t *testing.T, domain string) {
		if validate.Domain(domain) != nil {
			return
		}
		d := strings.ToLower(domain)
		for _, render := range []func(string, nginx.TLSFiles) (nginx.Vhost, error){r.PanelDomain, r.Auth, r.Tunnel} {
			v, err := render(d, tls)
			if err != nil {
				// The renderer may be stricter (length limits); never looser.
				continue
			}
			names := serverName.FindAllStringSubmatch(string(v.Content), -1)
			if len(names) == 0 {
				t.Fatalf("%s: no server_name", v.Name)
			}
			for _, m := range names {
				for _, n := range strings.Fields(m[1]) {
					if !host.MatchString(n) || !strings.HasSuffix(n, "."+d) {
						t.Fatalf("domain %q put server_name %q into %s", domain, n, v.Name)
					}
				}
			}
		}
	})
}
