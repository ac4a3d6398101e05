package panelclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/coder/websocket"

	"github.com/portlama/portlama/internal/api"
)

// StartProvisioning calls POST /api/onboarding/provision (202).
func (c *Client) StartProvisioning(ctx context.Context) (api.ProvisionStarted, error) {
	var out api.ProvisionStarted
	return out, c.do(ctx, http.MethodPost, "/api/onboarding/provision", struct{}{}, &out)
}

// ProvisionStream is the provisioning WebSocket: the snapshot first, then
// every event.
type ProvisionStream struct {
	conn *websocket.Conn
}

// OpenProvisionStream dials WS /api/onboarding/provision/stream. A refusal
// before the upgrade (410 after completion, 403) is an *api.Error.
func (c *Client) OpenProvisionStream(ctx context.Context) (*ProvisionStream, error) {
	conn, err := c.dialWS(ctx, "/api/onboarding/provision/stream", "provisioning stream")
	if err != nil {
		return nil, err
	}
	return &ProvisionStream{conn: conn}, nil
}

// dialWS opens the WebSocket at path with the client's certificate and
// 2FA session. A refusal before the upgrade is an *api.Error.
func (c *Client) dialWS(ctx context.Context, path, what string) (*websocket.Conn, error) {
	u := "ws" + strings.TrimPrefix(c.base, "http") + path
	h := http.Header{}
	if ck := c.TwoFASession(); ck != nil {
		h.Add("Cookie", ck.String())
	}
	conn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: c.http, HTTPHeader: h})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			e := &api.Error{Status: resp.StatusCode}
			if resp.Body != nil {
				json.NewDecoder(resp.Body).Decode(e)
				resp.Body.Close()
			}
			if e.Message == "" {
				e.Message = http.StatusText(resp.StatusCode)
			}
			return nil, e
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	conn.SetReadLimit(1 << 20)
	return conn, nil
}

// Next reads the next frame; its raw JSON is returned too.
func (s *ProvisionStream) Next(ctx context.Context) (api.ProvisionFrame, []byte, error) {
	_, data, err := s.conn.Read(ctx)
	if err != nil {
		return api.ProvisionFrame{}, nil, err
	}
	var f api.ProvisionFrame
	if err := json.Unmarshal(data, &f); err != nil {
		return f, data, fmt.Errorf("provisioning frame %q: %w", data, err)
	}
	return f, data, nil
}

// Close closes the socket.
func (s *ProvisionStream) Close() error { return s.conn.Close(websocket.StatusNormalClosure, "") }

// AutoRenewStatus calls GET /api/certs/auto-renew-status.
func (c *Client) AutoRenewStatus(ctx context.Context) (api.AutoRenewStatus, error) {
	var out api.AutoRenewStatus
	return out, c.do(ctx, http.MethodGet, "/api/certs/auto-renew-status", nil, &out)
}

// RenewCert calls POST /api/certs/:domain/renew.
func (c *Client) RenewCert(ctx context.Context, name string) (api.CertRenewed, error) {
	var out api.CertRenewed
	return out, c.do(ctx, http.MethodPost, "/api/certs/"+url.PathEscape(name)+"/renew", struct{}{}, &out)
}
