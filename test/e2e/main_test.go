// Package e2e runs the whole relay — real nginx, the panel, the tunnel
// server, the auth server and the portlama-agent binary — through the demo
// stack, and checks what a visitor, an admin and an agent see.
package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/demo"
	"github.com/portlama/portlama/internal/testutil"
)

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "portlama-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, b := range []string{"portlama", "portlama-agent"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b), "github.com/portlama/portlama/cmd/"+b)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", b, err, out)
			os.Exit(1)
		}
	}
	binDir = dir
	code := m.Run()
	stopShared()
	os.RemoveAll(dir)
	os.Exit(code)
}

// relayPortBase hands each stack its own relay-port range, so stacks of
// parallel tests never race for the same port.
var relayPortBase atomic.Int32

func startStack(t *testing.T) *demo.Stack {
	t.Helper()
	testutil.NeedBinary(t, "nginx")
	base := 21000 + int(relayPortBase.Add(1))*100
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := demo.Start(ctx, stackOptions(t.TempDir(), base, base+99))
	if err != nil {
		t.Fatalf("start demo stack: %v", err)
	}
	t.Cleanup(st.Stop)
	return st
}

func stackOptions(dir string, min, max int) demo.Options {
	return demo.Options{
		Dir:          dir,
		RelayBinary:  filepath.Join(binDir, "portlama"),
		AgentBinary:  filepath.Join(binDir, "portlama-agent"),
		HTTPSPort:    -1,
		PanelPort:    -1,
		HTTPPort:     -1,
		RelayPortMin: min,
		RelayPortMax: max,
	}
}

// visitor is an HTTP client without a client certificate that trusts the
// relay CA (the demo's domain certificates) and reaches the demo's names on
// loopback; it does not follow redirects.
func visitor(st *demo.Stack) *http.Client {
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(st.Info.CACert)
	pool.AppendCertsFromPEM(pem)
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool},
			DialContext:     st.DialContext,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func appURL(st *demo.Stack, access string) string {
	for _, a := range st.Info.Apps {
		if a.Access == access {
			return a.URL
		}
	}
	panic("no app with access " + access)
}

func get(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// eventually retries fn until it returns nil or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, fn func() error) time.Duration {
	t.Helper()
	start := time.Now()
	var err error
	for time.Since(start) < within {
		if err = fn(); err == nil {
			return time.Since(start)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v: %v", what, within, err)
	return 0
}

func decode(t *testing.T, body string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
