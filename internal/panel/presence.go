package panel

import (
	"context"
	"slices"
	"time"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/tunnel"
)

// TunnelStatus reports the tunnel server's live sessions and bound ports
// (*tunnel.ManageClient is one).
type TunnelStatus interface {
	Status(ctx context.Context) (tunnel.Status, error)
}

// presenceTimeout bounds the status call of a list route: the lists answer
// without connection state rather than wait for a stuck tunnel server.
const presenceTimeout = 500 * time.Millisecond

// presence asks the tunnel server who is connected. ok is false when it
// does not answer; the lists then omit the connection fields (unknown is
// not "disconnected").
func (s *Server) presence(ctx context.Context) (map[string]tunnel.AgentStatus, bool) {
	ctx, cancel := context.WithTimeout(ctx, presenceTimeout)
	defer cancel()
	st, err := s.cfg.Relay.Presence.Status(ctx)
	if err != nil {
		s.log.Debug("tunnel server status unavailable: lists without connection state", "err", err)
		return nil, false
	}
	by := make(map[string]tunnel.AgentStatus, len(st.Agents))
	for _, a := range st.Agents {
		by[a.Label] = a
	}
	return by, true
}

// withTunnelPresence sets Connected on each tunnel: its agent has bound
// the tunnel's relay port, so visitors reach the app.
func withTunnelPresence(list []api.Tunnel, by map[string]tunnel.AgentStatus) {
	for i := range list {
		c := slices.Contains(by[list[i].AgentLabel].BoundPorts, list[i].RelayPort)
		list[i].Connected = &c
	}
}

// withAgentPresence sets Connected and ConnectedSince (the oldest live
// session's start) on each agent that is not revoked.
func withAgentPresence(list []api.Agent, by map[string]tunnel.AgentStatus) {
	for i := range list {
		if list[i].Revoked {
			continue
		}
		a := by[list[i].Label]
		c := a.Sessions > 0
		list[i].Connected = &c
		var since time.Time
		for _, cl := range a.Clients {
			if since.IsZero() || cl.Since.Before(since) {
				since = cl.Since
			}
		}
		if c && !since.IsZero() {
			list[i].ConnectedSince = api.FormatTime(since)
		}
	}
}
