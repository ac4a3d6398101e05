package discover

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/portlama/portlama/internal/validate"
)

//go:embed catalog.json
var catalogJSON []byte

// App is a catalog entry: how a common app is recognised, and the
// subdomain and access mode suggested for its tunnel.
type App struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Ports     []int  `json:"ports"`
	Match     Match  `json:"match"`
	Subdomain string `json:"subdomain"`
	Access    string `json:"access"`
}

// Match says what in an HTTP answer recognises an app (any one item, case
// insensitive, substring): the body, the title, the Server header, or a
// header line "name: value".
type Match struct {
	Body   []string `json:"body,omitempty"`
	Title  []string `json:"title,omitempty"`
	Server []string `json:"server,omitempty"`
	Header []string `json:"header,omitempty"`
}

// Catalog is the list of known apps.
type Catalog []App

// LoadCatalog parses a catalog and checks every entry (the embedded one is
// checked by a test).
func LoadCatalog(data []byte) (Catalog, error) {
	var c Catalog
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("parse the app catalog: %w", err)
	}
	for _, a := range c {
		if a.ID == "" || a.Name == "" {
			return nil, fmt.Errorf("catalog entry %q: id and name are required", a.ID)
		}
		if err := validate.Subdomain(a.Subdomain); err != nil {
			return nil, fmt.Errorf("catalog entry %q: subdomain: %w", a.ID, err)
		}
		if a.Access != "public" && a.Access != "authenticated" && a.Access != "restricted" {
			return nil, fmt.Errorf("catalog entry %q: access must be public, authenticated or restricted", a.ID)
		}
	}
	return c, nil
}

// DefaultCatalog is the embedded catalog.
func DefaultCatalog() Catalog {
	c, err := LoadCatalog(catalogJSON)
	if err != nil {
		panic(err) // the embedded file is checked by TestDefaultCatalog
	}
	return c
}

// Recognise returns the best entry for a listener on port that answered p
// (nil: no HTTP answer): an entry whose answer matches wins over one that
// only has the port; an entry without match rules is the generic fallback
// for an HTTP answer on one of its ports.
func (c Catalog) Recognise(port int, p *Probe) *App {
	var byPort, generic *App
	for i := range c {
		a := &c[i]
		if p != nil && a.Match.matches(p) {
			return a
		}
		onPort := false
		for _, ap := range a.Ports {
			onPort = onPort || ap == port
		}
		if !onPort {
			continue
		}
		if a.Match.empty() {
			if generic == nil && p != nil {
				generic = a
			}
		} else if byPort == nil && p == nil {
			byPort = a
		}
	}
	if byPort != nil {
		return byPort
	}
	return generic
}

func (m Match) empty() bool {
	return len(m.Body)+len(m.Title)+len(m.Server)+len(m.Header) == 0
}

func (m Match) matches(p *Probe) bool {
	has := func(hay string, needles []string) bool {
		hay = strings.ToLower(hay)
		for _, n := range needles {
			if n != "" && strings.Contains(hay, strings.ToLower(n)) {
				return true
			}
		}
		return false
	}
	if has(p.body, m.Body) || has(p.Title, m.Title) || has(p.Server, m.Server) {
		return true
	}
	for _, hv := range m.Header {
		name, val, _ := strings.Cut(hv, ":")
		got := p.header.Get(strings.TrimSpace(name))
		if got != "" && strings.Contains(strings.ToLower(got), strings.ToLower(strings.TrimSpace(val))) {
			return true
		}
	}
	return false
}
