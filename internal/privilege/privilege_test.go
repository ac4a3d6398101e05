package privilege

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/system"
	"github.com/portlama/portlama/internal/testutil"
)

func TestCheck(t *testing.T) {
	allowed := []Request{
		{Verb: VerbNginxTest},
		{Verb: VerbNginxReload},
		{Verb: VerbEnable, Unit: "portlama-tunnel"},
		{Verb: VerbEnable, Unit: "portlama-auth"},
	}
	for _, u := range system.ManagedServices {
		for _, a := range system.Actions {
			if u == "portlama-panel" && a == system.ActionStop {
				continue
			}
			allowed = append(allowed, Request{Verb: VerbService, Action: string(a), Unit: u})
		}
	}
	for _, r := range allowed {
		if err := Check(r); err != nil {
			t.Errorf("%+v refused: %v", r, err)
		}
	}
	for _, r := range []Request{
		{},
		{Verb: "exec"},
		{Verb: "NGINX-TEST"},
		{Verb: VerbNginxTest, Unit: "nginx"},
		{Verb: VerbNginxReload, Action: "restart"},
		{Verb: VerbService, Action: "stop", Unit: "portlama-panel"},
		{Verb: VerbService, Action: "kill", Unit: "nginx"},
		{Verb: VerbService, Action: "restart", Unit: "ssh"},
		{Verb: VerbService, Action: "restart", Unit: "nginx.service"},
		{Verb: VerbService, Action: "restart", Unit: "--all"},
		{Verb: VerbService, Action: "restart"},
		{Verb: VerbEnable, Unit: "portlama-panel"},
		{Verb: VerbEnable, Unit: "nginx"},
		{Verb: VerbEnable, Unit: "portlama-auth", Action: "start"},
		{Verb: "disable", Unit: "portlama-auth"},
	} {
		if err := Check(r); !errors.Is(err, ErrRefused) {
			t.Errorf("%+v admitted (%v)", r, err)
		}
	}
}

func FuzzCheck(f *testing.F) {
	f.Add("service", "restart", "nginx")
	f.Add("enable", "", "portlama-auth")
	f.Add("nginx-test", "", "")
	f.Fuzz(func(t *testing.T, verb, action, unit string) {
		if Check(Request{Verb: verb, Action: action, Unit: unit}) != nil {
			return
		}
		managed := false
		for _, u := range system.ManagedServices {
			managed = managed || u == unit
		}
		_, actErr := system.ParseAction(action)
		ok := (verb == VerbNginxTest || verb == VerbNginxReload) && action == "" && unit == "" ||
			verb == VerbService && actErr == nil && managed && !(unit == "portlama-panel" && action == "stop") ||
			verb == VerbEnable && action == "" && (unit == "portlama-tunnel" || unit == "portlama-auth")
		if !ok {
			t.Fatalf("admitted %q %q %q", verb, action, unit)
		}
	})
}

func TestParseCgroupUnit(t *testing.T) {
	for in, want := range map[string]string{
		"0::/system.slice/portlama-panel.service\n":                                                    "portlama-panel.service",
		"12:pids:/\n1:name=systemd:/system.slice/portlama-renew.service\n0::/\n":                       "portlama-renew.service",
		"1:name=systemd:/machine.slice/x/system.slice/portlama-panel.service\n":                        "portlama-panel.service",
		"13:memory:/lab\n1:name=systemd:/system.slice/run-u3.service\n0::/system.slice/run-u3.service": "run-u3.service",
	} {
		got, err := ParseCgroupUnit(in)
		if err != nil || got != want {
			t.Errorf("%q: %q %v, want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0::/\n", "0::/user.slice/user-1000.slice/session-3.scope\n", "garbage", "1:name=systemd:/system.slice/x y.service"} {
		if u, err := ParseCgroupUnit(in); err == nil {
			t.Errorf("%q: unit %q", in, u)
		}
	}
}

func FuzzParseCgroupUnit(f *testing.F) {
	f.Add("0::/system.slice/portlama-panel.service\n")
	f.Add("1:name=systemd:/a/b.service\n0::/c.service")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseCgroupUnit(s)
		if err == nil && (system.ValidUnit(u) != nil || !strings.HasSuffix(u, ".service")) {
			t.Fatalf("unit %q from %q", u, s)
		}
	})
}

// recorder is a ServiceManager that records the actions the helper carries
// out (the systemd side is exercised in the lab).
type recorder struct {
	system.Systemd
	mu    sync.Mutex
	calls []string
	fail  error
}

func (r *recorder) rec(s string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, s)
	return r.fail
}
func (r *recorder) Start(_ context.Context, u string) error   { return r.rec("start " + u) }
func (r *recorder) Stop(_ context.Context, u string) error    { return r.rec("stop " + u) }
func (r *recorder) Restart(_ context.Context, u string) error { return r.rec("restart " + u) }
func (r *recorder) Reload(_ context.Context, u string) error  { return r.rec("reload " + u) }
func (r *recorder) Enable(_ context.Context, u string) error  { return r.rec("enable " + u) }
func (r *recorder) Disable(_ context.Context, u string) error { return r.rec("disable " + u) }
func (r *recorder) got() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.calls, ",")
}

type fixture struct {
	sock   string
	rec    *recorder
	lint   error
	tested int
	mu     sync.Mutex
}

func startHelper(t *testing.T, uid int) *fixture {
	t.Helper()
	dir, err := os.MkdirTemp("", "portlama-helper-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755) // the unprivileged child must reach the socket
	f := &fixture{sock: filepath.Join(dir, "helper.sock"), rec: &recorder{}}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: f.sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(f.sock, 0o666)
	srv, err := NewServer(ServerConfig{
		ServiceUID: uid,
		Services:   f.rec,
		NginxTest: func(context.Context) (string, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.tested++
			return "syntax is ok", nil
		},
		Publish: func() error { f.mu.Lock(); defer f.mu.Unlock(); return f.lint },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return f
}

func TestServerAsRoot(t *testing.T) {
	testutil.NeedRoot(t, "the helper's peer checks are tested as root")
	f := startHelper(t, 65534)
	c := Client{Socket: f.sock}
	ctx := context.Background()
	out, err := Nginx{Client: c}.Test(ctx)
	if err != nil || out != "syntax is ok" {
		t.Fatalf("nginx-test: %q %v", out, err)
	}
	s := Services{Client: c}
	if err := s.Restart(ctx, "portlama-tunnel"); err != nil {
		t.Fatal(err)
	}
	if err := s.Enable(ctx, "portlama-auth"); err != nil {
		t.Fatal(err)
	}
	if err := (Nginx{Client: c}).Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.rec.got(); got != "restart portlama-tunnel,enable portlama-auth,reload nginx" {
		t.Fatalf("actions %q", got)
	}

	// Refusals change nothing.
	for _, r := range []Request{
		{Verb: VerbService, Action: "stop", Unit: "portlama-panel"},
		{Verb: VerbService, Action: "restart", Unit: "ssh"},
		{Verb: "exec", Unit: "/bin/sh"},
	} {
		if _, err := c.Do(ctx, r); err == nil || !strings.Contains(err.Error(), "refused") {
			t.Errorf("%+v: %v", r, err)
		}
	}
	if err := s.Disable(ctx, "portlama-auth"); err == nil {
		t.Error("disable admitted")
	}
	conn, err := net.Dial("unix", f.sock)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(conn, `{"verb":"nginx-test","cmd":"/bin/sh"}`)
	buf := make([]byte, 200)
	n, _ := conn.Read(buf)
	conn.Close()
	if !strings.Contains(string(buf[:n]), "malformed request") {
		t.Errorf("unknown field: %s", buf[:n])
	}
	if got := f.rec.got(); got != "restart portlama-tunnel,enable portlama-auth,reload nginx" {
		t.Fatalf("a refused request acted: %q", got)
	}

	// A failing lint stops nginx -t and nginx reloads and starts.
	f.mu.Lock()
	f.lint = errors.New("nginx configuration refused: portlama-app-x: line 2: directive \"error_log\" is not allowed")
	f.tested = 0
	f.mu.Unlock()
	for _, r := range []Request{{Verb: VerbNginxTest}, {Verb: VerbNginxReload}, {Verb: VerbService, Action: "restart", Unit: "nginx"}} {
		if _, err := c.Do(ctx, r); err == nil || !strings.Contains(err.Error(), "error_log") {
			t.Errorf("%+v with a failing lint: %v", r, err)
		}
	}
	if f.tested != 0 || f.rec.got() != "restart portlama-tunnel,enable portlama-auth,reload nginx" {
		t.Fatalf("acted despite the lint: tested %d, actions %q", f.tested, f.rec.got())
	}
}

// TestMain lets the tests run this binary as an unprivileged client, and
// as a stand-in systemctl/journalctl printing PORTLAMA_FAKE_OUTPUT.
func TestMain(m *testing.M) {
	if out, ok := os.LookupEnv("PORTLAMA_FAKE_OUTPUT"); ok {
		fmt.Print(out)
		os.Exit(0)
	}
	if sock := os.Getenv("PORTLAMA_HELPER_CLIENT"); sock != "" {
		_, err := Client{Socket: sock}.Do(context.Background(), Request{Verb: VerbNginxTest})
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Println("allowed")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// clientBinary copies the test binary where an unprivileged user can run it.
func clientBinary(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "portlama-helper-client-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "client")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

func runAs(t *testing.T, bin string, uid int, sock string) string {
	t.Helper()
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), "PORTLAMA_HELPER_CLIENT="+sock)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	out, err := cmd.CombinedOutput()
	if err != nil && len(out) == 0 {
		t.Fatalf("run the client as uid %d: %v", uid, err)
	}
	return strings.TrimSpace(string(out))
}

func TestServerRefusesOtherCallers(t *testing.T) {
	testutil.NeedRoot(t, "running a client as another user needs root")
	bin := clientBinary(t)
	// A user that is not the service user.
	f := startHelper(t, 4242)
	if out := runAs(t, bin, 65534, f.sock); !strings.Contains(out, "uid 65534 is not the relay's service user") {
		t.Fatalf("foreign uid: %s", out)
	}
	// The service user, but outside the panel's unit (this test's cgroup).
	f2 := startHelper(t, 65534)
	if out := runAs(t, bin, 65534, f2.sock); !strings.Contains(out, "refused") || strings.Contains(out, "allowed") {
		t.Fatalf("service user outside the panel: %s", out)
	}
	if f.tested+f2.tested != 0 {
		t.Fatal("a refused caller ran nginx -t")
	}
}

func TestServerIdleExit(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "s"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(ServerConfig{ServiceUID: 1, Services: &recorder{}, NginxTest: func(context.Context) (string, error) { return "", nil }, Publish: func() error { return nil }, IdleTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), ln) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an idle helper keeps running")
	}
}

// Services sends actions to the helper and reads status and logs itself.
func TestServicesThroughHelper(t *testing.T) {
	testutil.NeedRoot(t, "the helper's peer checks are tested as root")
	f := startHelper(t, 65534)
	var argv [][]string
	fake := func(out string) system.Systemd {
		return system.Systemd{Command: func(ctx context.Context, a []string) *exec.Cmd {
			argv = append(argv, a)
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "PORTLAMA_FAKE_OUTPUT="+out)
			return cmd
		}}
	}
	ctx := context.Background()
	s := Services{Client: Client{Socket: f.sock}, Systemd: fake("ActiveState=active\nLoadState=loaded\nMainPID=7\nActiveEnterTimestamp=@1764752179\n")}
	for _, step := range []func() error{
		func() error { return s.Start(ctx, "portlama-tunnel") },
		func() error { return s.Stop(ctx, "portlama-auth") },
		func() error { return s.Restart(ctx, "nginx") },
		func() error { return s.Reload(ctx, "portlama-panel") },
		func() error { return s.Enable(ctx, "portlama-tunnel") },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.rec.got(); got != "start portlama-tunnel,stop portlama-auth,restart nginx,reload portlama-panel,enable portlama-tunnel" {
		t.Fatalf("actions %q", got)
	}
	if err := s.Stop(ctx, "portlama-panel"); err == nil {
		t.Fatal("the helper stopped the panel")
	}
	st, err := s.Status(ctx, "portlama-panel")
	if err != nil || st.State != system.StateActive || st.MainPID != 7 {
		t.Fatalf("status %+v %v", st, err)
	}
	s.Systemd = fake("2026-12-03T08:56:19+0000 droplet portlama[7]: up\n")
	var lines []system.LogLine
	fctx, stop := context.WithCancel(ctx)
	err = s.Follow(fctx, "portlama-panel", 10, func(l system.LogLine) error { lines = append(lines, l); stop(); return nil })
	stop()
	if err != nil || len(lines) != 1 || lines[0].Message != "droplet portlama[7]: up" {
		t.Fatalf("follow: %v %+v", err, lines)
	}
	if len(argv) != 2 || argv[0][0] != "systemctl" || argv[1][0] != "journalctl" {
		t.Fatalf("status and logs must not go through the helper: %v", argv)
	}
}
