package launch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/portlama/portlama/internal/cloud/digitalocean"
	"github.com/portlama/portlama/internal/keychain"
	"github.com/portlama/portlama/internal/servers"
)

// tokenKey is the DigitalOcean API token's key in the keychain (it is
// kept nowhere else).
const tokenKey = "digitalocean/token"

// ServiceConfig is what the home app's provisioning needs.
type ServiceConfig struct {
	// APIBase is the DigitalOcean API (digitalocean.DefaultBaseURL).
	APIBase string
	HTTP    *http.Client
	Keys    keychain.Keychain
	Servers *servers.Registry
	// StatePath, Binary, Dev, Dial, Boot: as in Config.
	StatePath string
	Binary    string
	Dev       bool
	Dial      func(ctx context.Context, network, address string) (net.Conn, error)
	Boot      time.Duration
	Poll      time.Duration
}

// Service runs one provisioning job at a time in the background for the
// control UI, keeping its progress events.
type Service struct {
	cfg ServiceConfig

	mu      sync.Mutex
	running bool
	events  []Event
	err     string
}

// NewService returns the service.
func NewService(cfg ServiceConfig) *Service {
	if cfg.APIBase == "" {
		cfg.APIBase = digitalocean.DefaultBaseURL
	}
	return &Service{cfg: cfg}
}

// SetToken validates token against the API and keeps it in the keychain.
func (s *Service) SetToken(ctx context.Context, token string) (digitalocean.Account, error) {
	token = strings.TrimSpace(token)
	if err := checkToken(token); err != nil {
		return digitalocean.Account{}, err
	}
	acct, err := digitalocean.New(s.cfg.APIBase, token, s.cfg.HTTP).Account(ctx)
	if err != nil {
		return acct, err
	}
	if err := s.cfg.Keys.Set(tokenKey, token); err != nil {
		return acct, fmt.Errorf("keep the token in the keychain: %w", err)
	}
	return acct, nil
}

// checkToken refuses what cannot be a token before it is sent anywhere
// (it goes into a header): 1-200 printable ASCII characters, no spaces.
func checkToken(token string) error {
	if token == "" || len(token) > 200 {
		return errors.New("paste the DigitalOcean API token as the control panel shows it")
	}
	for _, r := range token {
		if r <= ' ' || r > '~' {
			return errors.New("the DigitalOcean API token has spaces or other characters a token does not have: paste it as the control panel shows it (one word)")
		}
	}
	return nil
}

// ErrNoToken: no token is saved yet.
var ErrNoToken = errors.New("no DigitalOcean API token is saved: enter one first")

func (s *Service) client() (*digitalocean.Client, error) {
	tok, err := s.cfg.Keys.Get(tokenKey)
	if errors.Is(err, keychain.ErrNotFound) {
		return nil, ErrNoToken
	}
	if err != nil {
		return nil, err
	}
	return digitalocean.New(s.cfg.APIBase, tok, s.cfg.HTTP), nil
}

// HasToken reports whether a token is saved.
func (s *Service) HasToken() bool {
	_, err := s.cfg.Keys.Get(tokenKey)
	return err == nil
}

// Choice is a size offered in a region, with its price.
type Choice struct {
	Region     digitalocean.Region
	Sizes      []digitalocean.Size
	Suggestion string // the cheapest size of at least 512 MB
}

// Options lists the available regions with their sizes (cheapest first).
func (s *Service) Options(ctx context.Context) ([]Choice, error) {
	c, err := s.client()
	if err != nil {
		return nil, err
	}
	regions, err := c.Regions(ctx)
	if err != nil {
		return nil, err
	}
	sizes, err := c.Sizes(ctx)
	if err != nil {
		return nil, err
	}
	var out []Choice
	for _, r := range regions {
		if !r.Available {
			continue
		}
		ch := Choice{Region: r}
		for _, sz := range sizes {
			if sz.Available && slices.Contains(sz.Regions, r.Slug) && sz.Memory >= 512 {
				ch.Sizes = append(ch.Sizes, sz)
			}
		}
		if len(ch.Sizes) == 0 {
			continue
		}
		slices.SortStableFunc(ch.Sizes, func(a, b digitalocean.Size) int {
			switch {
			case a.PriceMonthly < b.PriceMonthly:
				return -1
			case a.PriceMonthly > b.PriceMonthly:
				return 1
			}
			return a.Memory - b.Memory
		})
		if best, ok := digitalocean.Cheapest(ch.Sizes, r.Slug, 512); ok {
			ch.Suggestion = best.Slug
		}
		out = append(out, ch)
	}
	return out, nil
}

func (s *Service) job() (*Job, error) {
	c, err := s.client()
	if err != nil {
		return nil, err
	}
	return New(Config{API: c, Keys: s.cfg.Keys, Servers: s.cfg.Servers, StatePath: s.cfg.StatePath, Binary: s.cfg.Binary, Dev: s.cfg.Dev, Dial: s.cfg.Dial, Boot: s.cfg.Boot, Poll: s.cfg.Poll}), nil
}

// Progress is the job as the UI shows it.
type Progress struct {
	// State is the saved job (nil: none).
	State   *State
	Running bool
	Events  []Event
	// Error is the last run's failure, with what exists and costs.
	Error string
}

// Progress returns the saved job and the current run's events.
func (s *Service) Progress() (Progress, error) {
	s.mu.Lock()
	p := Progress{Running: s.running, Events: slices.Clone(s.events), Error: s.err}
	s.mu.Unlock()
	j := New(Config{StatePath: s.cfg.StatePath})
	st, err := j.State()
	if err != nil && !errors.Is(err, ErrNoJob) {
		return p, err
	}
	if err == nil {
		p.State = &st
	}
	return p, nil
}

// ErrBusy: a run is in progress.
var ErrBusy = errors.New("provisioning is running: wait for it to finish or fail")

// Start begins a job in the background (ctx bounds it, not the request).
func (s *Service) Start(ctx context.Context, req Request) error {
	j, err := s.job()
	if err != nil {
		return err
	}
	// Refusals (bad choice, a job already saved) answer at once.
	if _, err := j.checkChoice(ctx, req); err != nil {
		return err
	}
	if st, err := j.State(); err == nil {
		return savedJobError(st)
	}
	return s.goRun(ctx, func(ctx context.Context, progress func(Event)) error {
		_, err := j.Start(ctx, req, progress)
		return err
	})
}

// Resume runs the saved job again from its failed step, in the background.
func (s *Service) Resume(ctx context.Context) error {
	j, err := s.job()
	if err != nil {
		return err
	}
	if _, err := j.State(); err != nil {
		return err
	}
	return s.goRun(ctx, func(ctx context.Context, progress func(Event)) error {
		_, err := j.Resume(ctx, progress)
		return err
	})
}

func (s *Service) goRun(ctx context.Context, fn func(context.Context, func(Event)) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return ErrBusy
	}
	s.running, s.events, s.err = true, nil, ""
	go func() {
		err := fn(ctx, func(e Event) {
			s.mu.Lock()
			s.events = append(s.events, e)
			s.mu.Unlock()
		})
		s.mu.Lock()
		s.running = false
		if err != nil {
			s.err = err.Error()
		}
		s.mu.Unlock()
	}()
	return nil
}

// Destroy destroys the job's droplet and forgets the job.
func (s *Service) Destroy(ctx context.Context) error {
	return s.idle(func(j *Job) error { return j.Destroy(ctx) })
}

// ClosePort22 closes SSH on the finished relay's firewall.
func (s *Service) ClosePort22(ctx context.Context) error {
	return s.idle(func(j *Job) error { _, err := j.ClosePort22(ctx); return err })
}

// Finish forgets the finished job.
func (s *Service) Finish(ctx context.Context) error {
	return s.idle(func(j *Job) error { return j.Finish(ctx) })
}

// idle runs fn on the job while no run is in progress.
func (s *Service) idle(fn func(*Job) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return ErrBusy
	}
	j, err := s.job()
	if err != nil {
		return err
	}
	if err := fn(j); err != nil {
		return err
	}
	s.events, s.err = nil, ""
	return nil
}
