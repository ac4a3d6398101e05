package panelclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/coder/websocket"

	"github.com/portlama/portlama/internal/api"
)

// Services calls GET /api/services.
func (c *Client) Services(ctx context.Context) ([]api.Service, error) {
	var out api.ServiceList
	if err := c.do(ctx, http.MethodGet, "/api/services", nil, &out); err != nil {
		return nil, err
	}
	return out.Services, nil
}

// ServiceAction calls POST /api/services/:name/:action.
func (c *Client) ServiceAction(ctx context.Context, name string, action api.ServiceAction) (api.ServiceActionResult, error) {
	var out api.ServiceActionResult
	return out, c.do(ctx, http.MethodPost, "/api/services/"+url.PathEscape(name)+"/"+url.PathEscape(string(action)), nil, &out)
}

// LogStream is WS /api/services/:name/logs: the unit's last lines, then
// each new one.
type LogStream struct {
	conn *websocket.Conn
}

// OpenLogs dials WS /api/services/:name/logs. A refusal before the upgrade
// (403, 503) is an *api.Error.
func (c *Client) OpenLogs(ctx context.Context, name string) (*LogStream, error) {
	conn, err := c.dialWS(ctx, "/api/services/"+url.PathEscape(name)+"/logs", "log stream of "+name)
	if err != nil {
		return nil, err
	}
	return &LogStream{conn: conn}, nil
}

// Next reads the next line. When the panel closes the stream it returns an
// error for which CloseStatus reports the close code (1000 when
// the log ended, 1008 for an unknown service, 1011 when the log could not
// be read).
func (s *LogStream) Next(ctx context.Context) (api.LogLine, error) {
	_, data, err := s.conn.Read(ctx)
	if err != nil {
		return api.LogLine{}, err
	}
	var l api.LogLine
	if err := json.Unmarshal(data, &l); err != nil {
		return l, fmt.Errorf("log frame %q: %w", data, err)
	}
	return l, nil
}

// Until reads lines until match accepts one (returned) or the stream or
// ctx ends (the error).
func (s *LogStream) Until(ctx context.Context, match func(api.LogLine) bool) (api.LogLine, error) {
	for {
		l, err := s.Next(ctx)
		if err != nil {
			return l, err
		}
		if match(l) {
			return l, nil
		}
	}
}

// CloseStatus is the close code the panel ended the stream with, -1 when
// err is not a close.
func CloseStatus(err error) int {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return int(ce.Code)
	}
	return -1
}

// Close closes the socket.
func (s *LogStream) Close() error { return s.conn.Close(websocket.StatusNormalClosure, "") }
