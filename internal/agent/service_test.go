package agent

import (
	"context"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portlama/portlama/internal/testutil"
)

func testSpec(t *testing.T) ServiceSpec {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return ServiceSpec{Label: "home", Executable: exe, Home: "/home/ann/my dir/.portlama%x$y", LogFile: "/home/ann/.portlama/home/agent.log"}
}

func TestSystemdUserUnit(t *testing.T) {
	spec := testSpec(t)
	unit, err := SystemdUnit(spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"ExecStart=" + systemdQuote(spec.Executable) + ` "run" "--label" "home" "--home" "/home/ann/my dir/.portlama%%x$$y"`,
		"Restart=always\n", "RestartSec=5\n", "NoNewPrivileges=yes\n", "UMask=0077\n", "WantedBy=default.target\n",
		"StartLimitIntervalSec=0\n",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}
	for _, bad := range []string{"User=", "network-online", "multi-user.target"} {
		if strings.Contains(unit, bad) {
			t.Errorf("user unit contains %q", bad)
		}
	}
}

func TestServiceRunsTheUI(t *testing.T) {
	spec := testSpec(t)
	spec.UI = true
	unit, err := SystemdUnit(spec)
	if err != nil {
		t.Fatal(err)
	}
	if want := "ExecStart=" + systemdQuote(spec.Executable) + ` "ui" "--no-browser" "--home" "/home/ann/my dir/.portlama%%x$$y"`; !strings.Contains(unit, want) {
		t.Errorf("unit lacks %q:\n%s", want, unit)
	}
	plist, err := LaunchdPlist(spec)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plist, "<string>ui</string>") || !strings.Contains(plist, "<string>--no-browser</string>") {
		t.Errorf("plist does not run the UI:\n%s", plist)
	}
}

func TestSystemdSystemUnit(t *testing.T) {
	spec := testSpec(t)
	spec.System, spec.User = true, "ann"
	unit, err := SystemdUnit(spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"User=ann\n", "ProtectSystem=strict\n", "ProtectHome=read-only\n", "CapabilityBoundingSet=\n",
		`ReadWritePaths="/home/ann/my dir/.portlama%%x$y"` + "\n",
		"After=network-online.target\n", "WantedBy=multi-user.target\n"} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q", want)
		}
	}
}

func TestServiceSpecRejects(t *testing.T) {
	good := testSpec(t)
	for name, mod := range map[string]func(*ServiceSpec){
		"bad label":        func(s *ServiceSpec) { s.Label = "Home;rm" },
		"relative exe":     func(s *ServiceSpec) { s.Executable = "portlama-agent" },
		"newline in home":  func(s *ServiceSpec) { s.Home = "/x\nExecStartPre=/bin/evil" },
		"system no user":   func(s *ServiceSpec) { s.System = true },
		"system bad user":  func(s *ServiceSpec) { s.System, s.User = true, "root\nx" },
		"system quote":     func(s *ServiceSpec) { s.System, s.User, s.Home = true, "ann", `/home/ann/a"b` },
		"system backslash": func(s *ServiceSpec) { s.System, s.User, s.Home = true, "ann", `/home/ann/a\b` },
		"relative logfile": func(s *ServiceSpec) { s.LogFile = "agent.log" },
	} {
		t.Run(name, func(t *testing.T) {
			s := good
			mod(&s)
			_, err1 := SystemdUnit(s)
			_, err2 := LaunchdPlist(s)
			if err1 == nil || err2 == nil {
				t.Fatalf("accepted: systemd err %v, launchd err %v", err1, err2)
			}
		})
	}
}

// TestSystemdUnitVerifies lints both unit flavours with systemd-analyze.
func TestSystemdUnitVerifies(t *testing.T) {
	bin := testutil.NeedBinary(t, "systemd-analyze")
	for _, system := range []bool{false, true} {
		spec := testSpec(t)
		spec.Home = t.TempDir()
		if system {
			spec.System, spec.User = true, "root"
		}
		unit, err := SystemdUnit(spec)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		path := filepath.Join(dir, SystemdUnitName(spec.Label))
		if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
			t.Fatal(err)
		}
		args := []string{"verify", path}
		if !system {
			args = []string{"--user", "verify", path}
		}
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+t.TempDir(), "SYSTEMD_LOG_LEVEL=notice")
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "" {
			t.Fatalf("systemd-analyze %v: %v\n%s\n%s", args, err, out, unit)
		}
	}
}

func TestLaunchdPlist(t *testing.T) {
	spec := testSpec(t)
	spec.Home = "/Users/ann/<odd & dir>"
	p, err := LaunchdPlist(spec)
	if err != nil {
		t.Fatal(err)
	}
	// Decode the plist's dict generically: keys followed by values.
	type node struct {
		XMLName xml.Name
		Content string `xml:",chardata"`
		Nodes   []node `xml:",any"`
	}
	var doc struct {
		Dict node `xml:"dict"`
	}
	if err := xml.Unmarshal([]byte(p), &doc); err != nil {
		t.Fatalf("plist is not XML: %v\n%s", err, p)
	}
	vals := map[string]node{}
	n := doc.Dict.Nodes
	for i := 0; i+1 < len(n); i += 2 {
		if n[i].XMLName.Local != "key" {
			t.Fatalf("expected key at %d, got %s", i, n[i].XMLName.Local)
		}
		vals[n[i].Content] = n[i+1]
	}
	if v := vals["Label"].Content; v != "com.portlama.agent.home" {
		t.Errorf("Label = %q", v)
	}
	var args []string
	for _, a := range vals["ProgramArguments"].Nodes {
		args = append(args, a.Content)
	}
	want := []string{spec.Executable, "run", "--label", "home", "--home", "/Users/ann/<odd & dir>"}
	if strings.Join(args, "|") != strings.Join(want, "|") {
		t.Errorf("ProgramArguments = %q, want %q", args, want)
	}
	for _, k := range []string{"RunAtLoad", "KeepAlive"} {
		if vals[k].XMLName.Local != "true" {
			t.Errorf("%s = <%s/>, want <true/>", k, vals[k].XMLName.Local)
		}
	}
	for _, k := range []string{"StandardOutPath", "StandardErrorPath"} {
		if vals[k].Content != spec.LogFile {
			t.Errorf("%s = %q", k, vals[k].Content)
		}
	}
	if plutil, err := exec.LookPath("plutil"); err == nil {
		f := filepath.Join(t.TempDir(), "x.plist")
		_ = os.WriteFile(f, []byte(p), 0o644)
		if out, err := exec.Command(plutil, "-lint", f).CombinedOutput(); err != nil {
			t.Fatalf("plutil: %v %s", err, out)
		}
	}
}

type recorder struct{ calls []string }

func (r *recorder) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	r.calls = append(r.calls, name+" "+strings.Join(args, " "))
	if len(args) >= 2 && args[len(args)-2] == "is-active" {
		return []byte("active\n"), nil
	}
	return nil, nil
}

func TestServiceManagerSystemdUser(t *testing.T) {
	rec := &recorder{}
	m := ServiceManager{GOOS: "linux", Spec: testSpec(t), UnitDir: t.TempDir(), Run: rec.run}
	path, err := m.Install(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(path) != "portlama-agent-home.service" {
		t.Fatalf("path %s", path)
	}
	want := []string{
		"systemctl --user daemon-reload",
		"systemctl --user enable --now portlama-agent-home.service",
		"systemctl --user restart portlama-agent-home.service",
	}
	if strings.Join(rec.calls, "\n") != strings.Join(want, "\n") {
		t.Fatalf("calls:\n%s", strings.Join(rec.calls, "\n"))
	}
	st, err := m.Status(context.Background())
	if err != nil || !st.Installed || st.Active != "active" {
		t.Fatalf("status = %+v, %v", st, err)
	}
	rec.calls = nil
	if err := m.Uninstall(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("unit file still there")
	}
	if rec.calls[0] != "systemctl --user disable --now portlama-agent-home.service" || rec.calls[1] != "systemctl --user daemon-reload" {
		t.Fatalf("uninstall calls: %v", rec.calls)
	}
	argv, _ := m.LogsCommand(true, 50)
	if strings.Join(argv, " ") != "journalctl --user -u portlama-agent-home.service -n 50 --no-pager -o short-iso -f" {
		t.Fatalf("logs argv %v", argv)
	}
}

func TestServiceManagerSystemdSystem(t *testing.T) {
	rec := &recorder{}
	spec := testSpec(t)
	spec.System, spec.User = true, "ann"
	m := ServiceManager{GOOS: "linux", Spec: spec, UnitDir: t.TempDir(), Run: rec.run}
	if _, err := m.Install(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rec.calls[1] != "systemctl enable --now portlama-agent-home.service" {
		t.Fatalf("calls %v", rec.calls)
	}
	argv, _ := m.LogsCommand(false, 10)
	if strings.Join(argv, " ") != "journalctl -u portlama-agent-home.service -n 10 --no-pager -o short-iso" {
		t.Fatalf("logs argv %v", argv)
	}
}

func TestServiceManagerLaunchd(t *testing.T) {
	rec := &recorder{}
	spec := testSpec(t)
	spec.LogFile = filepath.Join(t.TempDir(), "logs", "agent.log")
	m := ServiceManager{GOOS: "darwin", Spec: spec, LaunchAgentsDir: t.TempDir(), UID: 501, Run: rec.run}
	path, err := m.Install(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(path) != "com.portlama.agent.home.plist" {
		t.Fatalf("path %s", path)
	}
	want := []string{"launchctl bootout gui/501/com.portlama.agent.home", "launchctl bootstrap gui/501 " + path}
	if strings.Join(rec.calls, "\n") != strings.Join(want, "\n") {
		t.Fatalf("calls:\n%s", strings.Join(rec.calls, "\n"))
	}
	if _, err := os.Stat(filepath.Dir(spec.LogFile)); err != nil {
		t.Fatal("log directory not created")
	}
	argv, _ := m.LogsCommand(true, 20)
	if strings.Join(argv, " ") != "tail -n 20 -F "+spec.LogFile {
		t.Fatalf("logs argv %v", argv)
	}
	rec.calls = nil
	if err := m.Uninstall(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(rec.calls) != 1 || rec.calls[0] != "launchctl bootout gui/501/com.portlama.agent.home" {
		t.Fatalf("uninstall calls %v", rec.calls)
	}
}

func TestServiceManagerUnsupportedOS(t *testing.T) {
	m := ServiceManager{GOOS: "windows", Spec: testSpec(t)}
	if _, err := m.Install(context.Background()); err == nil {
		t.Fatal("install on windows succeeded")
	}
}
