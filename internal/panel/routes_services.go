package panel

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/system"
)

// Services and live logs (docs/api.md, "Services and live logs").

const (
	// serviceActionTimeout bounds one action (systemctl waits for its job).
	serviceActionTimeout = 30 * time.Second
	// logBacklog is how many past lines a log stream starts with.
	logBacklog = 100
	// logQueueLimit bounds the frames queued for a slow client; beyond it
	// the oldest are dropped.
	logQueueLimit = 64 << 10
)

const msgCannotStopPanel = "Cannot stop the panel service from the UI — it would terminate this session"

var (
	errUnknownService = NewError(http.StatusBadRequest, "Unknown service")
	errInvalidAction  = NewError(http.StatusBadRequest, "Invalid action")
)

func managedService(name string) bool { return slices.Contains(system.ManagedServices, name) }

// registerServices: GET /api/services, POST /api/services/:name/:action,
// WS /api/services/:name/logs.
func (s *Server) registerServices() {
	s.Handle(Route{
		Method: http.MethodGet, Path: "/api/services",
		Access: AdminOrAgent, Capability: api.CapServicesRead, Gate: GateManagement,
		Handler: func(c *Ctx) error { return c.OK(s.listServices(c.R.Context())) },
	})
	s.Handle(Route{
		Method: http.MethodPost, Path: "/api/services/{name}/{action}",
		Access: AdminOrAgent, Capability: api.CapServicesWrite, Gate: GateManagement,
		Handler: s.serviceAction,
	})
	s.Handle(Route{
		Method: http.MethodGet, Path: "/api/services/{name}/logs",
		Access: AdminOnly, Gate: GateManagement,
		Handler: s.serviceLogs,
	})
}

// listServices reports every managed service; one whose state cannot be
// read is "unknown" (and logged).
func (s *Server) listServices(ctx context.Context) api.ServiceList {
	now := s.now()
	out := api.ServiceList{Services: make([]api.Service, 0, len(system.ManagedServices))}
	for _, name := range system.ManagedServices {
		svc := api.Service{Name: name, Status: api.ServiceUnknown}
		st, err := s.cfg.Services.Status(ctx, name)
		if err != nil {
			s.log.Warn("service status", "unit", name, "err", err)
		} else {
			svc.Status = api.ServiceStatus(st.State)
			if st.State == system.StateActive {
				up := system.FormatUptime(st.Uptime(now))
				svc.Uptime = &up
			}
		}
		out.Services = append(out.Services, svc)
	}
	return out
}

func (s *Server) serviceAction(c *Ctx) error {
	name := c.Param("name")
	if !managedService(name) {
		return errUnknownService
	}
	action, err := system.ParseAction(c.Param("action"))
	if err != nil {
		return errInvalidAction
	}
	if name == system.UnitPanel && action == system.ActionStop {
		return NewError(http.StatusBadRequest, msgCannotStopPanel)
	}
	res := api.ServiceActionResult{OK: true, Name: name, Action: api.ServiceAction(action)}
	run := func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, serviceActionTimeout)
		defer cancel()
		return system.Do(ctx, s.cfg.Services, name, action)
	}
	if name == system.UnitPanel {
		// Restarting the panel ends this request: answer first, then act
		// (clients poll /api/health).
		ctx := context.WithoutCancel(c.R.Context())
		log := c.Log
		defer func() {
			go func() {
				if err := run(ctx); err != nil {
					log.Warn("panel service action", "action", action, "err", err)
				}
			}()
		}()
		return c.OK(res)
	}
	if err := run(c.R.Context()); err != nil {
		c.Log.Warn("service action", "unit", name, "action", action, "err", err)
		return Failed("Failed to "+string(action)+" "+name, err)
	}
	s.log.Info("service action", "unit", name, "action", action)
	return c.OK(res)
}

// serviceLogs streams the unit's log: the last lines, then each new one,
// until the client goes away (the log reader ends with the request).
func (s *Server) serviceLogs(c *Ctx) error {
	conn, err := websocket.Accept(c.W, c.R, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		c.Log.Debug("log stream upgrade", "err", err)
		return nil
	}
	defer conn.CloseNow()
	name := c.Param("name")
	if !managedService(name) {
		conn.Close(websocket.StatusPolicyViolation, "Unknown service")
		return nil
	}
	// Reading is only for the close handshake; ctx ends when the client
	// goes away or the panel shuts down.
	ctx, cancel := context.WithCancel(conn.CloseRead(c.R.Context()))
	defer cancel()
	q := newLogQueue(logQueueLimit)
	writeDone := make(chan error, 1)
	go func() {
		writeDone <- q.drain(ctx, func(b []byte) error {
			wctx, done := context.WithTimeout(ctx, 30*time.Second)
			defer done()
			return conn.Write(wctx, websocket.MessageText, b)
		})
		cancel() // a failed write ends the reader too
	}()
	ferr := s.cfg.Services.Follow(ctx, name, logBacklog, func(l system.LogLine) error {
		return q.push(ctx, frame(api.LogLine{Timestamp: l.Timestamp, Message: l.Message}))
	})
	if ctx.Err() != nil {
		return nil // the client left
	}
	code := websocket.StatusNormalClosure
	msg := "[Log stream ended]"
	if errors.Is(ferr, system.ErrLogStart) {
		c.Log.Warn("log stream", "unit", name, "err", ferr)
		code, msg = websocket.StatusInternalError, "[Error: Failed to start log stream for "+name+"]"
	} else if ferr != nil && !errors.Is(ferr, system.ErrLogEnded) {
		c.Log.Debug("log stream", "unit", name, "err", ferr)
	}
	q.push(ctx, frame(api.LogLine{Timestamp: s.now().UTC().Format(time.RFC3339), Message: msg}))
	q.close()
	if err := <-writeDone; err != nil {
		return nil
	}
	conn.Close(code, "")
	return nil
}

func frame(l api.LogLine) []byte {
	b, _ := json.Marshal(l) // two strings: cannot fail
	return b
}

// logQueue holds the frames not yet written to a slow client: at most
// limit bytes; beyond that the oldest are dropped, and push waits until
// the writer has drained the queue, so the log reader pauses meanwhile.
type logQueue struct {
	limit int

	mu     sync.Mutex
	frames [][]byte
	size   int
	closed bool
	// ready is signalled (non-blocking) when frames arrive or the queue
	// closes; drained when it becomes empty.
	ready   chan struct{}
	drained chan struct{}
}

func newLogQueue(limit int) *logQueue {
	return &logQueue{limit: limit, ready: make(chan struct{}, 1), drained: make(chan struct{}, 1)}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// push queues b. It returns ctx's error when ctx ends while it waits.
func (q *logQueue) push(ctx context.Context, b []byte) error {
	q.mu.Lock()
	q.frames = append(q.frames, b)
	q.size += len(b)
	over := false
	for q.size > q.limit && len(q.frames) > 1 {
		q.size -= len(q.frames[0])
		q.frames = q.frames[1:]
		over = true
	}
	q.mu.Unlock()
	signal(q.ready)
	if !over {
		return nil
	}
	for {
		q.mu.Lock()
		empty := len(q.frames) == 0
		q.mu.Unlock()
		if empty {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-q.drained:
		}
	}
}

// close makes drain return once the queue is empty.
func (q *logQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	signal(q.ready)
}

// drain writes queued frames in order until the queue is closed and
// empty (nil), ctx ends (nil) or a write fails (its error).
func (q *logQueue) drain(ctx context.Context, write func([]byte) error) error {
	for {
		q.mu.Lock()
		if len(q.frames) == 0 {
			closed := q.closed
			q.mu.Unlock()
			signal(q.drained)
			if closed {
				return nil
			}
			select {
			case <-ctx.Done():
				return nil
			case <-q.ready:
			}
			continue
		}
		b := q.frames[0]
		q.frames = q.frames[1:]
		q.size -= len(b)
		q.mu.Unlock()
		if err := write(b); err != nil {
			return err
		}
	}
}
