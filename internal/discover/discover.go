package discover

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/portlama/portlama/internal/validate"
)

// Service is a discovered listener with what the probe and the catalog
// tell about it.
type Service struct {
	Port    int    `json:"port"`
	PID     int    `json:"pid,omitempty"`
	Process string `json:"process,omitempty"`
	// HTTP: GET / answered (Status, Title and Server are from it).
	HTTP   bool   `json:"http"`
	Status int    `json:"status,omitempty"`
	Title  string `json:"title,omitempty"`
	Server string `json:"server,omitempty"`
	// AppID and AppName name the catalog entry that recognised it.
	AppID   string `json:"appId,omitempty"`
	AppName string `json:"appName,omitempty"`
	// Subdomain and Access are the suggestions for a tunnel.
	Subdomain string `json:"subdomain"`
	Access    string `json:"access"`
	// Tunnel is the subdomain of the tunnel that already serves this port
	// ("" when none).
	Tunnel string `json:"tunnel,omitempty"`
}

// Options configure Discover.
type Options struct {
	Catalog Catalog
	// Exclude are ports not to list (the control UI's own).
	Exclude []int
	// Tunnelled maps the ports tunnels already serve to their subdomain.
	Tunnelled map[int]string
	// Timeout bounds each HTTP probe (default 1.5 s).
	Timeout time.Duration
	// List returns the listeners (default Listeners).
	List func(context.Context) ([]Listener, error)
}

// Discover lists the listeners reachable on loopback, probes each over
// HTTP (in parallel, each probe bounded by o.Timeout), and recognises them
// with the catalog.
func Discover(ctx context.Context, o Options) ([]Service, error) {
	if o.Timeout <= 0 {
		o.Timeout = 1500 * time.Millisecond
	}
	if o.List == nil {
		o.List = Listeners
	}
	ls, err := o.List(ctx)
	if err != nil {
		return nil, err
	}
	skip := map[int]bool{}
	for _, p := range o.Exclude {
		skip[p] = true
	}
	var kept []Listener
	for _, l := range ls {
		if l.Local() && !skip[l.Port] {
			kept = append(kept, l)
		}
	}
	out := make([]Service, len(kept))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, l := range kept {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i] = describe(ctx, l, o)
		}()
	}
	wg.Wait()
	// Recognised apps first, then the pages that answer, then the rest;
	// by port within each.
	rank := func(s Service) int {
		switch {
		case s.AppID != "" && s.HTTP:
			return 0
		case s.HTTP && s.Status < 400:
			return 1
		case s.HTTP:
			return 2
		}
		return 3
	}
	slices.SortStableFunc(out, func(a, b Service) int { return rank(a) - rank(b) })
	return out, nil
}

func describe(ctx context.Context, l Listener, o Options) Service {
	s := Service{Port: l.Port, PID: l.PID, Process: l.Process, Access: "authenticated", Tunnel: o.Tunnelled[l.Port]}
	p, err := ProbeHTTP(ctx, l.Port, o.Timeout)
	if err == nil {
		s.HTTP, s.Status, s.Title, s.Server = true, p.Status, p.Title, p.Server
	} else {
		p = nil
	}
	if a := o.Catalog.Recognise(l.Port, p); a != nil {
		s.AppID, s.AppName, s.Subdomain, s.Access = a.ID, a.Name, a.Subdomain, a.Access
	}
	if s.Subdomain == "" || s.AppID == "http-server" {
		if n := SubdomainFrom(l.Process); n != "" {
			s.Subdomain = n
		}
	}
	if s.Subdomain == "" {
		s.Subdomain = "app-" + strconv.Itoa(l.Port)
	}
	return s
}

// SubdomainFrom turns a process name into a valid subdomain ("" when
// nothing usable is left): lower case, runs of other characters become one
// hyphen, at most 30 characters.
func SubdomainFrom(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		case !dash && b.Len() > 0:
			b.WriteByte('-')
			dash = true
		}
		if b.Len() >= 30 {
			break
		}
	}
	s := strings.Trim(b.String(), "-")
	if len(s) > 30 {
		s = strings.Trim(s[:30], "-")
	}
	if validate.Subdomain(s) != nil || validate.IsReservedSubdomain(s) || validate.HasAgentPanelPrefix(s) {
		return ""
	}
	return s
}
