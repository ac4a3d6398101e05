package nginx

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/portlama/portlama/internal/validate"
)

// Route is an app's entry in the shared wildcard server's host map
// (docs/architecture.md, "Apps under the wildcard certificate"): its host, access class and upstream.
type Route struct {
	FQDN      string
	Protected bool   // forward authentication; false: public
	Upstream  string // portlama_app_<sub>
}

// Subdomain is the route's first label, the app's subdomain.
func (r Route) Subdomain() string { sub, _, _ := strings.Cut(r.FQDN, "."); return sub }

// maxRoute bounds a route file (the header and one entry).
const maxRoute = 4 << 10

// routeLine is the one entry a route file holds. Compiled on first use:
// {1,253} compiles to 253 copies (about 0.35 MB), which every daemon's
// start paid.
var routeLine = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^([a-z0-9.-]{1,253}) (public|protected):(portlama_app_[a-z0-9_]{1,63});$`)
})

// ParseRoute checks a route file as the lint gate does: comment lines and
// exactly one line "<fqdn> <public|protected>:portlama_app_<sub>;" whose
// upstream is the one of the fqdn's first label. Anything else — another
// directive, an include, a second entry, a value nginx would expand — is
// refused, since nginx reads the file as root inside a map.
func ParseRoute(data []byte) (Route, error) {
	if len(data) > maxRoute {
		return Route{}, errors.New("route is larger than 4 KiB")
	}
	var rt Route
	found := false
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := routeLine().FindStringSubmatch(line)
		if m == nil {
			return Route{}, fmt.Errorf("line %d: a route is \"<fqdn> <public|protected>:portlama_app_<sub>;\"", i+1)
		}
		if found {
			return Route{}, fmt.Errorf("line %d: a route file holds one route", i+1)
		}
		if err := validate.FQDN(m[1]); err != nil {
			return Route{}, fmt.Errorf("line %d: %w", i+1, err)
		}
		rt = Route{FQDN: m[1], Protected: m[2] == "protected", Upstream: m[3]}
		if err := validate.Subdomain(rt.Subdomain()); err != nil {
			return Route{}, fmt.Errorf("line %d: %w", i+1, err)
		}
		if want := upstreamName("app", rt.Subdomain()); rt.Upstream != want {
			return Route{}, fmt.Errorf("line %d: the upstream of %s is %s", i+1, rt.FQDN, want)
		}
		found = true
	}
	if !found {
		return Route{}, errors.New("route file holds no route")
	}
	return rt, nil
}
