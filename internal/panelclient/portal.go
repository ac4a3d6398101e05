package panelclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/portlama/portlama/internal/api"
)

// Portal calls the auth server's JSON login API (https://auth.<d>).
type Portal struct {
	base string
	http *http.Client
}

// NewPortal returns a client for the login portal at baseURL.
func NewPortal(baseURL string, hc *http.Client) *Portal {
	return &Portal{base: strings.TrimRight(baseURL, "/"), http: hc}
}

// FirstFactor calls POST /api/firstfactor and returns the half-signed-in
// session cookie.
func (p *Portal) FirstFactor(ctx context.Context, r api.FirstFactorRequest) (*http.Cookie, error) {
	return p.post(ctx, "/api/firstfactor", nil, r)
}

// SecondFactorTOTP calls POST /api/secondfactor/totp with the session of
// the first factor and returns the signed-in session cookie.
func (p *Portal) SecondFactorTOTP(ctx context.Context, session *http.Cookie, r api.TOTPRequest) (*http.Cookie, error) {
	return p.post(ctx, "/api/secondfactor/totp", session, r)
}

// Login signs in with password and TOTP code and returns the session
// cookie.
func (p *Portal) Login(ctx context.Context, username, password, code, targetURL string) (*http.Cookie, error) {
	half, err := p.FirstFactor(ctx, api.FirstFactorRequest{Username: username, Password: password, TargetURL: targetURL})
	if err != nil {
		return nil, err
	}
	return p.SecondFactorTOTP(ctx, half, api.TOTPRequest{Token: code, TargetURL: targetURL})
}

func (p *Portal) post(ctx context.Context, path string, session *http.Cookie, in any) (*http.Cookie, error) {
	b, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.base+path, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if session != nil {
		req.AddCookie(&http.Cookie{Name: session.Name, Value: session.Value})
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("POST %s: %w", p.base+path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var st api.PortalStatus
	if resp.StatusCode != http.StatusOK || json.Unmarshal(data, &st) != nil || st.Status != "OK" {
		e := &api.Error{Status: resp.StatusCode, Message: st.Message}
		if e.Message == "" {
			e.Message = http.StatusText(resp.StatusCode)
		}
		return nil, e
	}
	for _, c := range resp.Cookies() {
		if c.Name == api.PortalCookieName && c.Value != "" {
			return c, nil
		}
	}
	return nil, fmt.Errorf("POST %s: the answer set no session cookie", path)
}
