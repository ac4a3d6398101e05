package tunnel

import (
	"context"
	"net/http"
	"time"

	"github.com/portlama/portlama/internal/manage"
)

// Routes of the tunnel server's management socket (besides manage's
// /v1/health and /v1/reload).
const (
	// StatusPath answers GET with Status.
	StatusPath = "/v1/status"
	// MigratePath: POST asks every Portlama session to reconnect
	// make-before-break (MigrateAll) and answers MigrateResult, waiting at
	// most ?wait=<Go duration> (default 10s, at most 5m).
	MigratePath = "/v1/migrate"
)

const defaultMigrateWait = 10 * time.Second

func (s *Server) manageHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST "+manage.ReloadPath, manage.ReloadHandler(s.Reload))
	mux.HandleFunc("GET "+StatusPath, func(w http.ResponseWriter, r *http.Request) {
		manage.WriteJSON(w, http.StatusOK, s.Status())
	})
	mux.HandleFunc("POST "+MigratePath, func(w http.ResponseWriter, r *http.Request) {
		wait := defaultMigrateWait
		if v := r.URL.Query().Get("wait"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 || d > 5*time.Minute {
				manage.WriteError(w, http.StatusBadRequest, "wait must be a duration between 1ms and 5m, e.g. 10s")
				return
			}
			wait = d
		}
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		defer cancel()
		res, _ := s.MigrateAll(ctx)
		manage.WriteJSON(w, http.StatusOK, res)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		manage.WriteError(w, http.StatusNotFound, "Not found")
	})
	return mux
}

// ManageClient is the panel's client of the tunnel server's management
// socket.
type ManageClient struct {
	mc  *manage.Client
	acl string
}

// NewManageClient returns a client for the tunnel server listening on
// socket that serves aclFile (normally DirConfig(dir).ManageSocket and
// .ACLFile).
func NewManageClient(socket, aclFile string) *ManageClient {
	return &ManageClient{mc: manage.NewClient("tunnel server", socket), acl: aclFile}
}

// Notify asks the tunnel server to apply acl.json now and confirms that it
// serves the file's current content (see manage.Client.Notify): when it
// returns nil, bindings and sessions that lost access are closed.
func (c *ManageClient) Notify(ctx context.Context) error {
	return c.mc.Notify(ctx, c.acl)
}

// Status returns the tunnel server's agents, sessions and bound ports.
func (c *ManageClient) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.mc.Do(ctx, http.MethodGet, StatusPath, nil, &st)
	return st, err
}

// Migrate asks every Portlama session to reconnect make-before-break and
// waits up to wait for them (see Server.MigrateAll).
func (c *ManageClient) Migrate(ctx context.Context, wait time.Duration) (MigrateResult, error) {
	var res MigrateResult
	err := c.mc.WithTimeout(wait+2*time.Second).Do(ctx, http.MethodPost, MigratePath+"?wait="+wait.String(), nil, &res)
	return res, err
}
