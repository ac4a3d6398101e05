package privilege

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/portlama/portlama/internal/system"
)

// DefaultCallerUnits are the units whose processes (running as the service
// user) may use the helper.
var DefaultCallerUnits = []string{"portlama-panel.service", "portlama-renew.service"}

// ServerConfig configures the helper.
type ServerConfig struct {
	// ServiceUID is the uid of the relay's service user (portlama).
	ServiceUID int
	// CallerUnits are the units the service user must call from; default
	// DefaultCallerUnits.
	CallerUnits []string
	// Services carries out service actions (system.Systemd, as root).
	Services system.ServiceManager
	// NginxTest runs nginx -t and returns its output.
	NginxTest func(ctx context.Context) (string, error)
	// Publish lints the panel-written vhosts and publishes the checked
	// copies nginx reads (nginx.Publish).
	Publish func() error
	// IdleTimeout ends Serve after this long without a connection; 0
	// serves until ctx ends. Socket activation starts it again on demand.
	IdleTimeout time.Duration
	// ActionTimeout bounds one request; default 30 s (docs/api.md, "Services and live logs").
	ActionTimeout time.Duration
	// ProcDir is /proc (tests may point it elsewhere).
	ProcDir string
	Logger  *slog.Logger
}

// Server is the root helper.
type Server struct {
	cfg ServerConfig
	log *slog.Logger
	mu  sync.Mutex // one privileged action at a time
}

// NewServer returns a helper with cfg.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Services == nil || cfg.NginxTest == nil || cfg.Publish == nil {
		return nil, errors.New("root helper: services, nginx test and publish are required")
	}
	if cfg.ServiceUID <= 0 {
		return nil, errors.New("root helper: the service user's uid is required")
	}
	if cfg.CallerUnits == nil {
		cfg.CallerUnits = DefaultCallerUnits
	}
	if cfg.ActionTimeout <= 0 {
		cfg.ActionTimeout = 30 * time.Second
	}
	if cfg.ProcDir == "" {
		cfg.ProcDir = "/proc"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, log: log}, nil
}

// Serve answers connections on ln until ctx ends or the helper has been
// idle for IdleTimeout. It closes ln.
func (s *Server) Serve(ctx context.Context, ln *net.UnixListener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		if s.cfg.IdleTimeout > 0 {
			ln.SetDeadline(time.Now().Add(s.cfg.IdleTimeout))
		}
		c, err := ln.AcceptUnix()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				wg.Wait()
				return nil // idle: exit, the socket unit keeps listening
			}
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("root helper: accept: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.handle(ctx, c)
		}()
	}
}

func (s *Server) handle(ctx context.Context, c *net.UnixConn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(s.cfg.ActionTimeout + 5*time.Second))
	resp := s.serve(ctx, c)
	json.NewEncoder(c).Encode(resp)
}

func (s *Server) serve(ctx context.Context, c *net.UnixConn) Response {
	// The request is read before the caller is judged, so a refused
	// caller still gets the refusal instead of a broken pipe.
	line, err := bufio.NewReader(io.LimitReader(c, 4096)).ReadBytes('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return Response{Error: "read request: " + err.Error()}
	}
	caller, err := s.peer(c)
	if err != nil {
		s.log.Warn("root helper: caller refused", "err", err)
		return Response{Error: err.Error()}
	}
	var req Request
	dec := json.NewDecoder(strings.NewReader(string(line)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return Response{Error: fmt.Sprintf("%v: malformed request", ErrRefused)}
	}
	if err := Check(req); err != nil {
		s.log.Warn("root helper: request refused", "caller", caller, "verb", req.Verb, "action", req.Action, "unit", req.Unit, "err", err)
		return Response{Error: err.Error()}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ActionTimeout)
	defer cancel()
	out, err := s.do(ctx, req)
	s.log.Info("root helper", "caller", caller, "verb", req.Verb, "action", req.Action, "unit", req.Unit, "ok", err == nil)
	if err != nil {
		var ce *system.CommandError
		if errors.As(err, &ce) && out == "" {
			out = ce.Output
		}
		return Response{Output: out, Error: err.Error()}
	}
	return Response{OK: true, Output: out}
}

func (s *Server) do(ctx context.Context, r Request) (string, error) {
	switch r.Verb {
	case VerbNginxTest:
		if err := s.cfg.Publish(); err != nil {
			return "", err
		}
		return s.cfg.NginxTest(ctx)
	case VerbNginxReload:
		if err := s.cfg.Publish(); err != nil {
			return "", err
		}
		return "", s.cfg.Services.Reload(ctx, system.UnitNginx)
	case VerbService:
		if r.Unit == system.UnitNginx && r.Action != string(system.ActionStop) {
			if err := s.cfg.Publish(); err != nil {
				return "", err
			}
		}
		return "", system.Do(ctx, s.cfg.Services, r.Unit, system.Action(r.Action))
	case VerbEnable:
		return "", s.cfg.Services.Enable(ctx, r.Unit)
	}
	return "", fmt.Errorf("%w: unknown request %q", ErrRefused, r.Verb)
}

// peer identifies the caller and checks it may use the helper: root, or
// the service user in one of the caller units. The unit comes from the
// caller's cgroup (systemd puts every process of a unit in the unit's
// cgroup and only root can move it out).
func (s *Server) peer(c *net.UnixConn) (string, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return "", err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return "", err
	}
	if credErr != nil {
		return "", fmt.Errorf("%w: cannot identify the caller: %v", ErrRefused, credErr)
	}
	who := fmt.Sprintf("uid %d pid %d", cred.Uid, cred.Pid)
	if cred.Uid == 0 {
		return who, nil
	}
	if int(cred.Uid) != s.cfg.ServiceUID {
		return who, fmt.Errorf("%w: uid %d is not the relay's service user", ErrRefused, cred.Uid)
	}
	unit, err := CallerUnit(s.cfg.ProcDir, int(cred.Pid))
	if err != nil {
		return who, fmt.Errorf("%w: %v", ErrRefused, err)
	}
	who += " unit " + unit
	if !slices.Contains(s.cfg.CallerUnits, unit) {
		return who, fmt.Errorf("%w: callers in %s may not use the helper (only %s)", ErrRefused, unit, strings.Join(s.cfg.CallerUnits, ", "))
	}
	return who, nil
}

// CallerUnit returns the systemd unit a process belongs to, read from
// /proc/<pid>/cgroup: the last element of its systemd cgroup path (the
// unified "0::" line, or "name=systemd" on cgroup v1).
func CallerUnit(procDir string, pid int) (string, error) {
	data, err := os.ReadFile(filepath.Join(procDir, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return "", fmt.Errorf("read the caller's cgroup: %w", err)
	}
	return ParseCgroupUnit(string(data))
}

// ParseCgroupUnit finds the unit in the text of /proc/<pid>/cgroup.
func ParseCgroupUnit(text string) (string, error) {
	var path string
	for _, line := range strings.Split(text, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "name=systemd" || (parts[0] == "0" && parts[1] == "") {
			path = parts[2]
			if parts[1] == "name=systemd" {
				break
			}
		}
	}
	if path == "" {
		return "", errors.New("the caller has no systemd cgroup")
	}
	unit := filepath.Base(path)
	if !strings.HasSuffix(unit, ".service") || system.ValidUnit(unit) != nil {
		return "", fmt.Errorf("the caller's cgroup %q is not a service", path)
	}
	return unit, nil
}
