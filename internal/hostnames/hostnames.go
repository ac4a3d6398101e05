// Package hostnames is the relay's one name space for the hosts it serves:
// tunnels and static sites take their names from it, so a name a tunnel
// uses is refused for a site and the other way round, including names
// whose creation is still under way (a certificate being obtained).
//
// Each service adds a Source that lists the names it has stored; a
// creation Reserves its name with a check that sees every stored and
// reserved name, and Releases it once the name is stored (or the creation
// failed). The check and the reservation happen under one lock, so two
// concurrent creations can never both take a name.
package hostnames

import (
	"errors"
	"slices"
	"sync"
)

// Kind is who holds a name.
type Kind string

// Kinds.
const (
	Tunnel Kind = "tunnel"
	Site   Kind = "site"
)

// Name is one name held on the relay.
type Name struct {
	Kind Kind
	// Label is the name's label directly under the base domain (a tunnel's
	// subdomain, a managed site's name, or the first label of a custom
	// domain one label below the base domain); "" otherwise.
	Label string
	// FQDN is the host name served.
	FQDN string
	// SiteName is a site's name (unique among sites, whatever its domain);
	// "" for tunnels.
	SiteName string
}

// Source lists the names a service has stored.
type Source func() ([]Name, error)

// Registry is the name space. The zero value is not usable; use New.
type Registry struct {
	mu      sync.Mutex
	sources []Source
	pending map[*Hold]Name
}

// New returns an empty registry.
func New() *Registry { return &Registry{pending: map[*Hold]Name{}} }

// AddSource adds the stored names of a service.
func (r *Registry) AddSource(src Source) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sources = append(r.sources, src)
}

// Hold is a reservation; Release it when the name is stored or the
// creation failed.
type Hold struct {
	r    *Registry
	once sync.Once
}

// Release ends the reservation (safe to call more than once, and on nil).
func (h *Hold) Release() {
	if h == nil {
		return
	}
	h.once.Do(func() {
		h.r.mu.Lock()
		defer h.r.mu.Unlock()
		delete(h.r.pending, h)
	})
}

// Reserve runs check over every name held (stored and reserved) and, when
// it returns nil, reserves n. The check decides what counts as a clash
// and with which message (the callers' contracts differ); use Clashes for
// the common test.
func (r *Registry) Reserve(n Name, check func(held []Name) error) (*Hold, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	held, err := r.heldLocked()
	if err != nil {
		return nil, err
	}
	if err := check(held); err != nil {
		return nil, err
	}
	h := &Hold{r: r}
	r.pending[h] = n
	return h, nil
}

// Held returns every name held, stored and reserved.
func (r *Registry) Held() ([]Name, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.heldLocked()
}

func (r *Registry) heldLocked() ([]Name, error) {
	var out []Name
	var errs []error
	for _, src := range r.sources {
		ns, err := src()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, ns...)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, n := range r.pending {
		out = append(out, n)
	}
	return out, nil
}

// LabelUnder returns fqdn's label when fqdn is exactly one label below
// domain, else "".
func LabelUnder(fqdn, domain string) string {
	if domain == "" || len(fqdn) <= len(domain)+1 || fqdn[len(fqdn)-len(domain)-1:] != "."+domain {
		return ""
	}
	label := fqdn[:len(fqdn)-len(domain)-1]
	for i := 0; i < len(label); i++ {
		if label[i] == '.' {
			return ""
		}
	}
	return label
}

// Clashes returns the first held name that has n's label or fqdn, of the
// given kinds (all kinds when none are given).
func Clashes(held []Name, n Name, kinds ...Kind) (Name, bool) {
	for _, h := range held {
		if len(kinds) > 0 && !slices.Contains(kinds, h.Kind) {
			continue
		}
		if (n.Label != "" && h.Label == n.Label) || (n.FQDN != "" && h.FQDN == n.FQDN) {
			return h, true
		}
	}
	return Name{}, false
}
