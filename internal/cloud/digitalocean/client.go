// Package digitalocean is the home app's client of the DigitalOcean API
// (v2) for provisioning a relay: validate the token, pick region and size,
// upload an SSH key, create the droplet with a host key generated here
// (passed through cloud-init, so the first SSH connection is verified, not
// trusted on first use), wait for its address, and delete what was made.
// Only the endpoints used are implemented; the tests run against a fake of
// exactly those (the one mock the project allows: no real API can run
// here).
package digitalocean

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// DefaultBaseURL is the API's address.
const DefaultBaseURL = "https://api.digitalocean.com"

// Client calls the API with one token.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// New returns a client for base (DefaultBaseURL in production).
func New(base, token string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{base: base, token: token, http: hc}
}

// APIError is a non-2xx answer: {"id": "...", "message": "..."}.
type APIError struct {
	Status  int    `json:"-"`
	ID      string `json:"id"`
	Message string `json:"message"`
}

func (e *APIError) Error() string {
	if e.Status == http.StatusUnauthorized {
		return "DigitalOcean refused the API token (it is wrong, expired or revoked): create a token with read and write scope in the DigitalOcean control panel under API"
	}
	return fmt.Sprintf("DigitalOcean API: %s (HTTP %d, %s)", e.Message, e.Status, e.ID)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("reach the DigitalOcean API: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("read the DigitalOcean answer: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := &APIError{Status: resp.StatusCode}
		_ = json.Unmarshal(data, e)
		if e.Message == "" {
			e.Message = http.StatusText(resp.StatusCode)
		}
		return e
	}
	if out == nil || len(data) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("parse the DigitalOcean answer to %s %s: %w", method, path, err)
	}
	return nil
}

// Account is the token's account.
type Account struct {
	UUID         string `json:"uuid"`
	Email        string `json:"email"`
	Status       string `json:"status"`
	DropletLimit int    `json:"droplet_limit"`
}

// Account validates the token (GET /v2/account).
func (c *Client) Account(ctx context.Context) (Account, error) {
	var out struct {
		Account Account `json:"account"`
	}
	if err := c.do(ctx, http.MethodGet, "/v2/account", nil, &out); err != nil {
		return Account{}, err
	}
	if out.Account.Status != "" && out.Account.Status != "active" {
		return out.Account, fmt.Errorf("the DigitalOcean account is %q, not active: check its billing in the control panel", out.Account.Status)
	}
	return out.Account, nil
}

// Region is a data centre.
type Region struct {
	Slug      string   `json:"slug"`
	Name      string   `json:"name"`
	Available bool     `json:"available"`
	Sizes     []string `json:"sizes"`
}

// Regions lists the regions (GET /v2/regions).
func (c *Client) Regions(ctx context.Context) ([]Region, error) {
	var out struct {
		Regions []Region `json:"regions"`
	}
	return out.Regions, c.do(ctx, http.MethodGet, "/v2/regions?per_page=200", nil, &out)
}

// Size is a droplet size with its price.
type Size struct {
	Slug         string   `json:"slug"`
	Memory       int      `json:"memory"` // MiB
	VCPUs        int      `json:"vcpus"`
	Disk         int      `json:"disk"` // GB
	PriceMonthly float64  `json:"price_monthly"`
	PriceHourly  float64  `json:"price_hourly"`
	Regions      []string `json:"regions"`
	Available    bool     `json:"available"`
}

// Sizes lists the sizes (GET /v2/sizes).
func (c *Client) Sizes(ctx context.Context) ([]Size, error) {
	var out struct {
		Sizes []Size `json:"sizes"`
	}
	return out.Sizes, c.do(ctx, http.MethodGet, "/v2/sizes?per_page=200", nil, &out)
}

// Cheapest returns the cheapest available size with at least minMemory
// MiB offered in region ("" when none): the preselected size (512 MiB is
// enough for a relay).
func Cheapest(sizes []Size, region string, minMemory int) (Size, bool) {
	var best Size
	found := false
	for _, s := range sizes {
		if !s.Available || s.Memory < minMemory || (region != "" && !slices.Contains(s.Regions, region)) {
			continue
		}
		if !found || s.PriceMonthly < best.PriceMonthly || (s.PriceMonthly == best.PriceMonthly && s.Memory < best.Memory) {
			best, found = s, true
		}
	}
	return best, found
}

// SSHKey is a key in the account.
type SSHKey struct {
	ID          int    `json:"id"`
	Name        string `json:"name"`
	Fingerprint string `json:"fingerprint"`
	PublicKey   string `json:"public_key"`
}

// CreateKey uploads a public key (POST /v2/account/keys).
func (c *Client) CreateKey(ctx context.Context, name, publicKey string) (SSHKey, error) {
	var out struct {
		Key SSHKey `json:"ssh_key"`
	}
	err := c.do(ctx, http.MethodPost, "/v2/account/keys", map[string]string{"name": name, "public_key": publicKey}, &out)
	return out.Key, err
}

// DeleteKey removes a key from the account (a missing one is not an error).
func (c *Client) DeleteKey(ctx context.Context, id int) error {
	err := c.do(ctx, http.MethodDelete, "/v2/account/keys/"+strconv.Itoa(id), nil, nil)
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		return nil
	}
	return err
}

// CreateDropletRequest is the body of POST /v2/droplets.
type CreateDropletRequest struct {
	Name     string   `json:"name"`
	Region   string   `json:"region"`
	Size     string   `json:"size"`
	Image    string   `json:"image"`
	SSHKeys  []int    `json:"ssh_keys"`
	UserData string   `json:"user_data"`
	Tags     []string `json:"tags,omitempty"`
}

// Droplet is a droplet's state.
type Droplet struct {
	ID       int    `json:"id"`
	Name     string `json:"name"`
	Status   string `json:"status"` // new, active, off, archive
	Networks struct {
		V4 []struct {
			IPAddress string `json:"ip_address"`
			Type      string `json:"type"`
		} `json:"v4"`
	} `json:"networks"`
	Size struct {
		PriceMonthly float64 `json:"price_monthly"`
	} `json:"size"`
}

// PublicIPv4 returns the droplet's public IPv4 address ("" until it has one).
func (d Droplet) PublicIPv4() string {
	for _, n := range d.Networks.V4 {
		if n.Type == "public" {
			return n.IPAddress
		}
	}
	return ""
}

// CreateDroplet creates a droplet (POST /v2/droplets).
func (c *Client) CreateDroplet(ctx context.Context, r CreateDropletRequest) (Droplet, error) {
	var out struct {
		Droplet Droplet `json:"droplet"`
	}
	err := c.do(ctx, http.MethodPost, "/v2/droplets", r, &out)
	return out.Droplet, err
}

// Droplet reads a droplet (GET /v2/droplets/:id).
func (c *Client) Droplet(ctx context.Context, id int) (Droplet, error) {
	var out struct {
		Droplet Droplet `json:"droplet"`
	}
	err := c.do(ctx, http.MethodGet, "/v2/droplets/"+strconv.Itoa(id), nil, &out)
	return out.Droplet, err
}

// WaitActive polls the droplet every interval until it is active with a
// public address, or ctx ends.
func (c *Client) WaitActive(ctx context.Context, id int, interval time.Duration) (Droplet, error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		d, err := c.Droplet(ctx, id)
		if err != nil {
			return d, err
		}
		if d.Status == "active" && d.PublicIPv4() != "" {
			return d, nil
		}
		select {
		case <-ctx.Done():
			return d, fmt.Errorf("droplet %d is %q after waiting: %w", id, d.Status, ctx.Err())
		case <-t.C:
		}
	}
}

// DeleteDroplet destroys a droplet (a missing one is not an error).
func (c *Client) DeleteDroplet(ctx context.Context, id int) error {
	err := c.do(ctx, http.MethodDelete, "/v2/droplets/"+strconv.Itoa(id), nil, nil)
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		return nil
	}
	return err
}

// DropletsByTag lists the droplets carrying tag (GET /v2/droplets?tag_name=):
// how a provisioning job that lost the answer to its create request finds
// the droplet it made.
func (c *Client) DropletsByTag(ctx context.Context, tag string) ([]Droplet, error) {
	var out struct {
		Droplets []Droplet `json:"droplets"`
	}
	err := c.do(ctx, http.MethodGet, "/v2/droplets?per_page=200&tag_name="+url.QueryEscape(tag), nil, &out)
	return out.Droplets, err
}
