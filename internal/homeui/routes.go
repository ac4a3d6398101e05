package homeui

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/portlama/portlama/internal/agent"
	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/discover"
	"github.com/portlama/portlama/internal/servers"
	"github.com/portlama/portlama/internal/validate"
)

// bodyLimit bounds request bodies (an admin P12 in base64 is a few KiB).
const bodyLimit = 1 << 20

// handlerFunc returns an error that is answered as JSON (httpError, a
// panel *api.Error, or anything else as 500).
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, a ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, a...)}
}

func (s *Server) handle(mux *http.ServeMux, pattern string, h handlerFunc) {
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.log.Warn("request failed", "method", r.Method, "path", r.URL.Path, "err", err.Error())
			s.answerError(w, err)
		}
	})
}

func (s *Server) answerError(w http.ResponseWriter, err error) {
	var he *httpError
	var ae *api.Error
	switch {
	case errors.As(err, &he):
		writeError(w, he.status, he.msg)
	case errors.As(err, &ae):
		// The relay's refusal, with the agent's advice; 5xx from the relay
		// is a bad gateway from here.
		status := ae.Status
		if status >= 500 || status < 400 {
			status = http.StatusBadGateway
		}
		writeError(w, status, agent.Explain(ae).Error())
	case errors.Is(err, servers.ErrNoServer):
		writeError(w, http.StatusConflict, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

// decode reads a JSON body into v: one object, no unknown fields.
func decode(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return &httpError{http.StatusUnsupportedMediaType, "Send the body as application/json."}
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, bodyLimit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("Invalid request body: %v", err)
	}
	return nil
}

func (s *Server) routes(mux *http.ServeMux) {
	s.handle(mux, "GET /api/home/status", s.getStatus)
	s.handle(mux, "GET /api/home/servers", s.listServers)
	s.handle(mux, "POST /api/home/servers", s.addServer)
	s.handle(mux, "POST /api/home/servers/import-p12", s.importP12)
	s.handle(mux, "POST /api/home/servers/{id}/use", s.useServer)
	s.handle(mux, "DELETE /api/home/servers/{id}", s.removeServer)
	s.handle(mux, "GET /api/home/services", s.listServices)
	s.handle(mux, "GET /api/home/tunnels", s.listTunnels)
	s.handle(mux, "POST /api/home/tunnels", s.createTunnel)
	s.handle(mux, "PATCH /api/home/tunnels/{id}", s.updateTunnel)
	s.handle(mux, "DELETE /api/home/tunnels/{id}", s.deleteTunnel)
	s.handle(mux, "POST /api/home/login-link", func(w http.ResponseWriter, r *http.Request) error {
		writeJSON(w, http.StatusOK, api.HomeLoginLink{URL: s.LoginURL()})
		return nil
	})
	s.handle(mux, "GET /api/home/logs", func(w http.ResponseWriter, r *http.Request) error {
		writeJSON(w, http.StatusOK, api.HomeLogs{Lines: s.logs.Lines()})
		return nil
	})
	s.cloudRoutes(mux)
	s.handle(mux, "/api/", func(http.ResponseWriter, *http.Request) error {
		return &httpError{http.StatusNotFound, "Not found"}
	})
}

func serverView(sv servers.Server, current string) api.HomeServer {
	return api.HomeServer{ID: sv.ID, Kind: sv.Kind, PanelURL: sv.PanelURL, AddedAt: sv.AddedAt, Current: sv.ID == current}
}

func (s *Server) getStatus(w http.ResponseWriter, r *http.Request) error {
	out := api.HomeStatus{Version: s.cfg.Version, Keychain: s.cfg.KeychainBackend, KeychainError: s.cfg.KeychainError}
	if cur, err := s.cfg.Registry.Current(); err == nil {
		v := serverView(cur, cur.ID)
		out.Server = &v
	} else if !errors.Is(err, servers.ErrNoServer) {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) listServers(w http.ResponseWriter, r *http.Request) error {
	f, err := s.cfg.Registry.List()
	if err != nil {
		return err
	}
	out := api.HomeServerList{Servers: []api.HomeServer{}}
	for _, sv := range f.Servers {
		out.Servers = append(out.Servers, serverView(sv, f.Current))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) addServer(w http.ResponseWriter, r *http.Request) error {
	var b api.HomeAddServerRequest
	if err := decode(r, &b); err != nil {
		return err
	}
	if validate.Token(b.Token) != nil {
		return badRequest("The enrollment token is not valid: paste it as the panel shows it.")
	}
	u, err := agent.NormalizePanelURL(b.PanelURL)
	if err != nil {
		return badRequest("Panel URL: %v", err)
	}
	if b.Label != "" {
		if err := agent.ValidateLabel(b.Label); err != nil {
			return badRequest("%v", err)
		}
	}
	if b.PanelFingerprint != "" {
		if b.PanelFingerprint, err = agent.NormalizeFingerprint(b.PanelFingerprint); err != nil {
			return badRequest("Panel fingerprint: %v", err)
		}
	}
	// With Accept: application/x-ndjson each step is sent as it happens
	// (api.HomeSetupFrame lines); otherwise one JSON answer at the end.
	stream := strings.Contains(r.Header.Get("Accept"), "application/x-ndjson")
	var enc *json.Encoder
	flush := func() {}
	if stream {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		enc = json.NewEncoder(w)
		if f, ok := w.(http.Flusher); ok {
			flush = f.Flush
		}
	}
	var steps []api.HomeSetupStep
	sv, err := s.cfg.Registry.AddByToken(r.Context(), agent.SetupOptions{
		Token: b.Token, PanelURL: u, Label: b.Label, PanelFingerprint: b.PanelFingerprint,
		Report: func(e agent.Event) {
			st := api.HomeSetupStep{Step: e.Step, Status: e.Status, Message: e.Message, Error: e.Error}
			steps = append(steps, st)
			if stream {
				_ = enc.Encode(api.HomeSetupFrame{Step: &st})
				flush()
			}
		},
	})
	if err != nil {
		// Enrollment failures are the user's to fix (token, URL, trust):
		// the steps say where it stopped.
		msg := agent.Explain(err).Error()
		if stream {
			_ = enc.Encode(api.HomeSetupFrame{Error: msg})
			return nil
		}
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": msg, "details": steps})
		return nil
	}
	s.log.Info("server added", "server", sv.ID, "panel", sv.PanelURL)
	if err := s.engine.ensure(r.Context(), sv.ID); err != nil {
		s.log.Error("could not start the tunnels", "server", sv.ID, "err", err)
	}
	done := api.HomeAddServerResponse{Server: serverView(sv, sv.ID), Steps: steps}
	if stream {
		_ = enc.Encode(api.HomeSetupFrame{Done: &done})
		return nil
	}
	writeJSON(w, http.StatusOK, done)
	return nil
}

func (s *Server) importP12(w http.ResponseWriter, r *http.Request) error {
	var b api.HomeImportP12Request
	if err := decode(r, &b); err != nil {
		return err
	}
	if err := agent.ValidateLabel(b.ID); err != nil {
		return badRequest("%v", err)
	}
	p12, err := base64.StdEncoding.DecodeString(b.P12)
	if err != nil || len(p12) == 0 {
		return badRequest("The P12 file is missing or not base64.")
	}
	sv, err := s.cfg.Registry.ImportP12(b.ID, b.PanelURL, p12, b.Password)
	if err != nil {
		return badRequest("%v", err)
	}
	s.engine.Stop()
	writeJSON(w, http.StatusOK, api.HomeAddServerResponse{Server: serverView(sv, sv.ID), Steps: []api.HomeSetupStep{}})
	return nil
}

func serverID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if err := agent.ValidateLabel(id); err != nil {
		return "", badRequest("%v", err)
	}
	return id, nil
}

func (s *Server) useServer(w http.ResponseWriter, r *http.Request) error {
	id, err := serverID(r)
	if err != nil {
		return err
	}
	if err := s.cfg.Registry.Use(id); err != nil {
		return &httpError{http.StatusNotFound, err.Error()}
	}
	cur, err := s.cfg.Registry.Current()
	if err != nil {
		return err
	}
	label := ""
	if cur.Kind == servers.KindAgent {
		label = cur.ID
	}
	if err := s.engine.ensure(r.Context(), label); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, serverView(cur, cur.ID))
	return nil
}

func (s *Server) removeServer(w http.ResponseWriter, r *http.Request) error {
	id, err := serverID(r)
	if err != nil {
		return err
	}
	f, err := s.cfg.Registry.List()
	if err != nil {
		return err
	}
	known := false
	for _, sv := range f.Servers {
		known = known || sv.ID == id
	}
	if !known {
		return &httpError{http.StatusNotFound, fmt.Sprintf("No server %q is set up.", id)}
	}
	if f.Current == id {
		s.engine.Stop()
	}
	rm, err := s.cfg.Registry.Remove(r.Context(), id)
	if err != nil {
		return err
	}
	s.log.Info("server removed", "server", id, "revoked", rm.Revoked)
	writeJSON(w, http.StatusOK, api.HomeServerRemoved{OK: true, Revoked: rm.Revoked, Warning: rm.Warning})
	return nil
}

// agentClient returns the current server's agent identity and client.
func (s *Server) agentClient() (servers.Server, *agent.Client, error) {
	cur, err := s.cfg.Registry.Current()
	if err != nil {
		return cur, nil, err
	}
	if cur.Kind != servers.KindAgent {
		return cur, nil, &httpError{http.StatusConflict,
			fmt.Sprintf("%q is an admin certificate: tunnels run from agent enrollments. Add this machine with an enrollment token, or switch to one.", cur.ID)}
	}
	id, err := s.cfg.Home.LoadIdentity(cur.ID)
	if err != nil {
		return cur, nil, err
	}
	tc, err := id.PanelTLSConfig()
	if err != nil {
		return cur, nil, err
	}
	return cur, agent.NewClient(id.Profile.PanelURL, tc), nil
}

// withRelay calls fn with the current agent server's client and a
// bounded context.
func (s *Server) withRelay(r *http.Request, fn func(ctx context.Context, cur servers.Server, c *agent.Client) error) error {
	cur, c, err := s.agentClient()
	if err != nil {
		return err
	}
	defer c.CloseIdle()
	ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
	defer cancel()
	return fn(ctx, cur, c)
}

func (s *Server) listServices(w http.ResponseWriter, r *http.Request) error {
	tunnelled := map[int]string{}
	// Without a reachable agent server nothing is marked; discovery still
	// works.
	_ = s.withRelay(r, func(ctx context.Context, _ servers.Server, c *agent.Client) error {
		ts, err := c.ListTunnels(ctx)
		for _, t := range ts {
			if t.Type != api.TypePanel && isLoopbackTarget(t.TargetHost) {
				tunnelled[t.Port] = t.Subdomain
			}
		}
		return err
	})
	svcs, err := discover.Discover(r.Context(), discover.Options{
		Catalog: discover.DefaultCatalog(), Exclude: []int{s.Port()}, Tunnelled: tunnelled,
	})
	if err != nil {
		return err
	}
	out := api.HomeServiceList{Services: []api.HomeService{}}
	for _, v := range svcs {
		// The relay lets only admins make a tunnel public; an agent's
		// suggestion is the login-protected mode (an admin can open it up
		// on the panel).
		if v.Access == string(api.AccessPublic) {
			v.Access = string(api.AccessAuthenticated)
		}
		out.Services = append(out.Services, api.HomeService{
			Port: v.Port, PID: v.PID, Process: v.Process, HTTP: v.HTTP, Status: v.Status, Title: v.Title,
			AppID: v.AppID, AppName: v.AppName, Subdomain: v.Subdomain, Access: api.AccessMode(v.Access), Tunnel: v.Tunnel,
		})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func isLoopbackTarget(h string) bool {
	if h == "" || h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func (s *Server) listTunnels(w http.ResponseWriter, r *http.Request) error {
	var ts []api.Tunnel
	var cur servers.Server
	err := s.withRelay(r, func(ctx context.Context, sv servers.Server, c *agent.Client) (err error) {
		cur = sv
		ts, err = c.ListTunnels(ctx)
		return err
	})
	if err != nil {
		return err
	}
	out := api.HomeTunnelList{Tunnels: []api.HomeTunnel{}}
	live := map[string]agent.TunnelState{}
	st := s.engine.state(cur.ID)
	if st == nil {
		// Nothing keeps these tunnels up (the other agent process that did
		// has stopped): take over.
		if err := s.engine.ensure(r.Context(), cur.ID); err != nil {
			s.log.Error("could not start the tunnels", "server", cur.ID, "err", err)
		}
	}
	if st != nil {
		out.Connection, out.Error = st.Connection, st.Error
		for _, t := range st.Tunnels {
			live[t.FQDN] = t
		}
	}
	for _, t := range ts {
		ht := api.HomeTunnel{Tunnel: t}
		if !t.IsEnabled() {
			ht.State = "disabled"
		} else if l, ok := live[t.FQDN]; ok {
			ht.State, ht.Reason = l.State, l.Reason
		}
		out.Tunnels = append(out.Tunnels, ht)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) createTunnel(w http.ResponseWriter, r *http.Request) error {
	var b api.CreateTunnelRequest
	if err := decode(r, &b); err != nil {
		return err
	}
	if err := validate.Subdomain(b.Subdomain); err != nil {
		return badRequest("Subdomain: %v", err)
	}
	if err := validate.Port(b.Port); err != nil {
		return badRequest("Port: %v", err)
	}
	if err := checkAccess(b.AccessMode, b.AllowedUsers, b.AllowedGroups); err != nil {
		return err
	}
	if b.TargetHost != "" {
		if err := agent.ValidateTargetHost(b.TargetHost); err != nil {
			return badRequest("%v", err)
		}
	}
	if b.AgentLabel != "" || b.Type != "" {
		return badRequest("A tunnel made here is an app tunnel of this machine: leave agentLabel and type out.")
	}
	var t api.Tunnel
	err := s.withRelay(r, func(ctx context.Context, _ servers.Server, c *agent.Client) (err error) {
		t, err = c.CreateTunnel(ctx, b)
		return err
	})
	if err != nil {
		return err
	}
	s.log.Info("tunnel created", "fqdn", t.FQDN, "port", t.Port, "access", string(t.AccessMode))
	writeJSON(w, http.StatusCreated, t)
	return nil
}

// maxAllowList bounds an allow-list sent from here.
const maxAllowList = 100

// checkAccess checks an access mode and its allow-lists with the relay's
// rules. Public is refused before the relay refuses it: only admins may.
func checkAccess(mode api.AccessMode, users, groups []string) error {
	switch mode {
	case "", api.AccessAuthenticated, api.AccessRestricted:
	case api.AccessPublic:
		return &httpError{http.StatusForbidden, "Only an admin can make a tunnel public (on the relay's panel); choose authenticated or restricted."}
	default:
		return badRequest("Access must be authenticated or restricted.")
	}
	if len(users) > maxAllowList || len(groups) > maxAllowList {
		return badRequest("At most %d users and %d groups.", maxAllowList, maxAllowList)
	}
	for _, u := range users {
		if err := validate.Username(u); err != nil {
			return badRequest("Allowed user %q: %v", u, err)
		}
	}
	for _, g := range groups {
		if err := validate.GroupName(g); err != nil {
			return badRequest("Allowed group %q: %v", g, err)
		}
	}
	return nil
}

func tunnelID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if validate.UUID(id) != nil {
		return "", badRequest("Invalid tunnel ID.")
	}
	return id, nil
}

func (s *Server) updateTunnel(w http.ResponseWriter, r *http.Request) error {
	id, err := tunnelID(r)
	if err != nil {
		return err
	}
	var b api.UpdateTunnelRequest
	if err := decode(r, &b); err != nil {
		return err
	}
	if b.Enabled == nil && b.AccessMode == nil && b.AllowedUsers == nil && b.AllowedGroups == nil {
		return badRequest("Send enabled, accessMode, allowedUsers or allowedGroups.")
	}
	var mode api.AccessMode
	if b.AccessMode != nil {
		if mode = *b.AccessMode; mode == "" {
			return badRequest("Access must be authenticated or restricted.")
		}
	}
	var users, groups []string
	if b.AllowedUsers != nil {
		users = *b.AllowedUsers
	}
	if b.AllowedGroups != nil {
		groups = *b.AllowedGroups
	}
	if err := checkAccess(mode, users, groups); err != nil {
		return err
	}
	var t api.Tunnel
	err = s.withRelay(r, func(ctx context.Context, _ servers.Server, c *agent.Client) (err error) {
		t, err = c.UpdateTunnel(ctx, id, b)
		return err
	})
	if err != nil {
		return err
	}
	s.log.Info("tunnel changed", "fqdn", t.FQDN, "enabled", t.IsEnabled(), "access", string(t.AccessMode))
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (s *Server) deleteTunnel(w http.ResponseWriter, r *http.Request) error {
	id, err := tunnelID(r)
	if err != nil {
		return err
	}
	err = s.withRelay(r, func(ctx context.Context, _ servers.Server, c *agent.Client) error {
		return c.DeleteTunnel(ctx, id)
	})
	if err != nil {
		return err
	}
	s.log.Info("tunnel deleted", "id", id)
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}
