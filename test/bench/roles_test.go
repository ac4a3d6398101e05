package bench

// The tunnel server and the agents run as child processes (this test
// binary re-executed with PORTLAMA_BENCH_ROLE set), with the GC settings
// and code paths of `portlama tunnel-server` and `portlama-agent run`, so
// their CPU and memory are measured apart from nginx, the load tools and
// the sample app.

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // the roles' profiling endpoint
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/agent"
	"github.com/portlama/portlama/internal/tunnel"
)

const roleEnv = "PORTLAMA_BENCH_ROLE"

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "":
		os.Exit(m.Run())
	case "tunnel-server":
		exitRole(runServerRole())
	case "agent":
		exitRole(runAgentRole())
	default:
		exitRole(fmt.Errorf("unknown role %q", os.Getenv(roleEnv)))
	}
}

func exitRole(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "role failed:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// serverSpec configures the tunnel-server role.
type serverSpec struct {
	Dir   string // the tunnel directory
	Addr  string
	Pprof bool
}

// agentSpec configures the agent role: a Runner with a fixed agent-config.
type agentSpec struct {
	Server      string // tunnel endpoint URL
	Auth        string
	Fingerprint string
	CAFile      string            // https: the relay CA
	CertFile    string            // https: the agent's client certificate
	KeyFile     string            // https: its key (PKCS #1 PEM)
	Header      map[string]string // ws://: the proof headers (the bench plays nginx)
	Tunnels     []agent.AgentTunnel
	Ciphers     []string
	Pprof       bool
}

func roleSpec(v any) error {
	return json.Unmarshal([]byte(os.Getenv(roleEnv+"_SPEC")), v)
}

func roleLog() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func roleContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
}

// startPprof serves net/http/pprof on a loopback port and announces it.
func startPprof(on bool) {
	if !on {
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return
	}
	go http.Serve(ln, nil)
	fmt.Println("PPROF", ln.Addr().String())
}

func runServerRole() error {
	var spec serverSpec
	if err := roleSpec(&spec); err != nil {
		return err
	}
	ctx, cancel := roleContext()
	defer cancel()
	tunnel.TuneServer(ctx)
	cfg := tunnel.DirConfig(spec.Dir)
	cfg.Addr = spec.Addr
	cfg.Logger = roleLog()
	srv, err := tunnel.NewServer(cfg)
	if err != nil {
		return err
	}
	if err := srv.Start(ctx); err != nil {
		return err
	}
	startPprof(spec.Pprof)
	fmt.Println("READY")
	return srv.Wait()
}

func runAgentRole() error {
	var spec agentSpec
	if err := roleSpec(&spec); err != nil {
		return err
	}
	// The process ends with the role.
	tunnel.TuneAgent(context.Background())
	var tc *tls.Config
	if spec.CAFile != "" {
		caPEM, err := os.ReadFile(spec.CAFile)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(caPEM)
		cert, err := tls.LoadX509KeyPair(spec.CertFile, spec.KeyFile)
		if err != nil {
			return err
		}
		tc = &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}
	}
	header := http.Header{}
	for k, v := range spec.Header {
		header.Set(k, v)
	}
	cfg := &agent.AgentConfig{ChiselServerURL: spec.Server, Auth: spec.Auth, Fingerprint: spec.Fingerprint, Tunnels: spec.Tunnels}
	r, err := agent.NewRunner(agent.RunnerConfig{
		Fetch: func(context.Context) (*agent.AgentConfig, error) { return cfg, nil },
		NewClient: func(s agent.TunnelServer) (agent.TunnelClient, error) {
			return tunnel.NewClient(tunnel.ClientConfig{ServerURL: s.URL, Auth: s.Auth, Fingerprint: s.Fingerprint,
				TLS: tc, Header: header, Ciphers: spec.Ciphers, Logger: roleLog()})
		},
		PollInterval: time.Hour,
		Logger:       roleLog(),
	})
	if err != nil {
		return err
	}
	ctx, cancel := roleContext()
	defer cancel()
	startPprof(spec.Pprof)
	start := time.Now()
	go func() {
		// Announce when every tunnel is up (once per (re)connect).
		ready := false
		for ctx.Err() == nil {
			st := r.State()
			up := st.Connection == agent.TunnelConnected && len(st.Tunnels) == len(spec.Tunnels)
			for _, t := range st.Tunnels {
				up = up && t.State == agent.TunnelConnected
			}
			if up && !ready {
				fmt.Println("READY", time.Since(start).Microseconds())
			}
			ready = up
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return r.Run(ctx)
}

// child is a role process.
type child struct {
	name  string
	cmd   *exec.Cmd
	pprof string
	lines chan string
	mu    sync.Mutex
	errb  strings.Builder
}

// startChild starts role with spec and waits for its READY line.
func startChild(b testing.TB, name, role string, spec any, env ...string) *child {
	b.Helper()
	return startChildFrom(b, os.Args[0], name, role, spec, env...)
}

// startChildFrom is startChild with the role run by exe, a build of this
// test binary.
func startChildFrom(b testing.TB, exe, name, role string, spec any, env ...string) *child {
	b.Helper()
	c := spawnChildFrom(b, exe, name, role, spec, env...)
	c.waitReady(b, 60*time.Second)
	return c
}

// spawnChild starts role with spec without waiting for it.
func spawnChild(b testing.TB, name, role string, spec any, env ...string) *child {
	b.Helper()
	return spawnChildFrom(b, os.Args[0], name, role, spec, env...)
}

func spawnChildFrom(b testing.TB, exe, name, role string, spec any, env ...string) *child {
	b.Helper()
	data, err := json.Marshal(spec)
	if err != nil {
		b.Fatal(err)
	}
	c := &child{name: name, lines: make(chan string, 64)}
	c.cmd = exec.Command(exe, "-test.run=^$")
	c.cmd.Env = append(os.Environ(), roleEnv+"="+role, roleEnv+"_SPEC="+string(data))
	c.cmd.Env = append(c.cmd.Env, env...)
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	c.cmd.Stderr = writerFunc(func(p []byte) (int, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.errb.Len() < 64<<10 {
			c.errb.Write(p)
		}
		return len(p), nil
	})
	if err := c.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if addr, ok := strings.CutPrefix(line, "PPROF "); ok {
				c.mu.Lock()
				c.pprof = addr
				c.mu.Unlock()
				continue
			}
			select {
			case c.lines <- line:
			default:
			}
		}
		close(c.lines)
	}()
	b.Cleanup(c.stop)
	return c
}

// startCmd starts a plain program (a stock chisel binary) as a child;
// readiness is the caller's to check.
func startCmd(b testing.TB, name, bin string, args ...string) *child {
	b.Helper()
	c := &child{name: name, lines: make(chan string)}
	c.cmd = exec.Command(bin, args...)
	c.cmd.Stdout = writerFunc(func(p []byte) (int, error) { return len(p), nil })
	c.cmd.Stderr = writerFunc(func(p []byte) (int, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.errb.Len() < 64<<10 {
			c.errb.Write(p)
		}
		return len(p), nil
	})
	if err := c.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.stop)
	return c
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// waitReady waits for the next READY line and returns its figure (the
// agent's microseconds from start to all tunnels up), or -1.
func (c *child) waitReady(b testing.TB, within time.Duration) int64 {
	b.Helper()
	t := time.NewTimer(within)
	defer t.Stop()
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				b.Fatalf("%s exited before it was ready:\n%s", c.name, c.stderr())
			}
			if f := strings.Fields(line); len(f) > 0 && f[0] == "READY" {
				if len(f) == 2 {
					n, _ := strconv.ParseInt(f[1], 10, 64)
					return n
				}
				return -1
			}
		case <-t.C:
			b.Fatalf("%s not ready within %s:\n%s", c.name, within, c.stderr())
		}
	}
}

func (c *child) stderr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.errb.String()
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) stop() {
	if c.cmd.ProcessState != nil {
		return
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}

// kill ends the process with SIGKILL (a crash).
func (c *child) kill() {
	c.cmd.Process.Kill()
	c.cmd.Wait()
}

// profile fetches a CPU profile of d from the child's pprof endpoint into
// path; the returned function waits for it.
func (c *child) profile(d time.Duration, path string) func() {
	c.mu.Lock()
	addr := c.pprof
	c.mu.Unlock()
	if addr == "" || path == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds())))
		if err != nil {
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(path)
		if err != nil {
			return
		}
		defer f.Close()
		io.Copy(f, resp.Body)
	}()
	return func() { <-done }
}

// heap saves the child's heap profile into path (-profile-dir).
func (c *child) heap(path string) {
	c.mu.Lock()
	addr := c.pprof
	c.mu.Unlock()
	if addr == "" {
		return
	}
	resp, err := http.Get("http://" + addr + "/debug/pprof/heap?debug=1")
	if err != nil {
		return
	}
	defer resp.Body.Close()
	if f, err := os.Create(path); err == nil {
		io.Copy(f, resp.Body)
		f.Close()
	}
}

// procRSS is the resident set size of pid in MiB (/proc/<pid>/status).
func procRSS(pid int) float64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, _ := strconv.ParseFloat(f[0], 64)
				return kb / 1024
			}
		}
	}
	return 0
}

// tunnelGC is the GC target the role processes run with by default.
func tunnelGC() int { return tunnel.GCPercent }
