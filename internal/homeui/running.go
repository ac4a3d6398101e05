package homeui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/store"
)

// runningFile names the running UI (ui.json in the home directory): the
// background service's UI is found by `portlama-agent ui`, which then asks
// it for a login link instead of starting a second one.
type runningFile struct {
	PID  int `json:"pid"`
	Port int `json:"port"`
}

func runningPath(dir string) string { return filepath.Join(dir, "ui.json") }

func (s *Server) writeRunning() error {
	if err := os.MkdirAll(s.cfg.Home.Dir, 0o700); err != nil {
		return err
	}
	data, _ := json.Marshal(runningFile{PID: os.Getpid(), Port: s.Port()})
	return store.WriteFileAtomic(runningPath(s.cfg.Home.Dir), data, 0o600)
}

func (s *Server) removeRunning() {
	path := runningPath(s.cfg.Home.Dir)
	if b, err := os.ReadFile(path); err == nil {
		var rf runningFile
		if json.Unmarshal(b, &rf) == nil && rf.PID == os.Getpid() {
			_ = os.Remove(path)
		}
	}
}

// ErrNotRunning: no control UI answers for this home directory.
var ErrNotRunning = errors.New("no control UI is running")

// RunningLoginURL asks the UI already running for dir (the background
// service) for a one-time login link, authenticated with the token.
func RunningLoginURL(ctx context.Context, dir, token string) (string, error) {
	b, err := os.ReadFile(runningPath(dir))
	if err != nil {
		return "", ErrNotRunning
	}
	var rf runningFile
	if json.Unmarshal(b, &rf) != nil || rf.Port <= 0 || rf.Port > 65535 {
		return "", ErrNotRunning
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	base := "http://127.0.0.1:" + strconv.Itoa(rf.Port)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/home/login-link", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set(TokenHeader, token)
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		return "", ErrNotRunning // a stale file: the UI is gone
	}
	defer resp.Body.Close()
	var out api.HomeLoginLink
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&out) != nil || out.URL == "" {
		return "", fmt.Errorf("the control UI on port %d refused to give a login link (HTTP %d): stop it, or remove %s", rf.Port, resp.StatusCode, runningPath(dir))
	}
	return out.URL, nil
}
