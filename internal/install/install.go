// Package install turns a fresh Ubuntu 24.04 or Debian 12 server into a
// Portlama relay (`portlama install`) and takes it away again
// (`portlama uninstall`).
//
// The installer is a list of tasks (Installer.Tasks). Each task is
// idempotent: it looks at the machine, changes only what differs from the
// wanted state and says whether it changed anything, so a second run
// changes nothing and a re-run after an upgrade only updates what the new
// version does differently. Configuration and certificates are never
// regenerated. Commands run as argv through system.Run; files are written
// atomically with their owner and mode. Progress is a stream of Events
// (the CLI prints them, or emits NDJSON with --json).
package install

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/privilege"
	"github.com/portlama/portlama/internal/system"
)

// Options are the installer's inputs (the CLI flags).
type Options struct {
	// Dev accepts a private or documentation IP address (labs, LANs).
	Dev bool
	// SkipHarden leaves swap, firewall, fail2ban and SSH alone.
	SkipHarden bool
	// IP is the relay's public IPv4; empty: detect it.
	IP string
	// Binary is the portlama executable to install (the running one).
	Binary string
}

// Paths are the system files the installer touches; DefaultPaths on a
// real machine.
type Paths struct {
	Binary      string // /usr/local/bin/portlama
	SystemdDir  string // /etc/systemd/system
	StateDir    string // /var/lib/portlama
	SSHDConfig  string // /etc/ssh/sshd_config
	Fail2banDir string // /etc/fail2ban
	Swapfile    string // /swapfile
	Fstab       string // /etc/fstab
	SysctlFile  string // /etc/sysctl.d/99-portlama.conf
	OSRelease   string // /etc/os-release
	ProcDir     string // /proc
	Socket      string // the root helper's socket
	// StateFile records what the installer found and did, for uninstall.
	StateFile string // /etc/portlama/install-state.json
}

// DefaultPaths are the paths on a relay.
func DefaultPaths() Paths {
	return Paths{
		Binary:      "/usr/local/bin/portlama",
		SystemdDir:  "/etc/systemd/system",
		StateDir:    "/var/lib/portlama",
		SSHDConfig:  "/etc/ssh/sshd_config",
		Fail2banDir: "/etc/fail2ban",
		Swapfile:    "/swapfile",
		Fstab:       "/etc/fstab",
		SysctlFile:  "/etc/sysctl.d/99-portlama.conf",
		OSRelease:   "/etc/os-release",
		ProcDir:     "/proc",
		Socket:      privilege.DefaultSocket,
		StateFile:   "/etc/portlama/install-state.json",
	}
}

// ServiceUser is the system user the relay's services run as.
const ServiceUser = "portlama"

// Event statuses.
const (
	StatusRunning = api.InstallRunning
	StatusDone    = api.InstallDone
	StatusSkipped = api.InstallSkipped
	StatusFailed  = api.InstallFailed
	StatusSummary = api.InstallSummary
)

// Event is one progress report (one NDJSON line with --json); the wire
// type lives in internal/api.
type Event = api.InstallEvent

// Result is what a task did.
type Result struct {
	Changed bool
	Skipped bool
	Message string
}

func done(changed bool, format string, args ...any) (Result, error) {
	return Result{Changed: changed, Message: fmt.Sprintf(format, args...)}, nil
}

func skipped(format string, args ...any) (Result, error) {
	return Result{Skipped: true, Message: fmt.Sprintf(format, args...)}, nil
}

// Task is one step of the installer.
type Task struct {
	Name  string
	Title string
	// Changes says what the task changes on the machine (--help).
	Changes string
	// Harden marks the tasks --skip-harden leaves out.
	Harden bool
	Run    func(ctx context.Context) (Result, error)
}

// Summary is what the installer tells the user at the end.
type Summary = api.InstallResult

// Installer runs the install (Run) or uninstall (Uninstall) tasks.
type Installer struct {
	opts   Options
	paths  Paths
	layout config.Layout
	addrs  config.Addrs
	cmd    system.CommandFunc
	sd     system.Systemd
	emit   func(Event)
	http   *http.Client
	log    *slog.Logger
	now    func() time.Time

	// Learned while running.
	ip      string
	uid     int
	gid     int
	state   State
	changed map[string]bool // what changed, for restarts
}

// Config builds an Installer. Zero fields get the real machine's values.
type Config struct {
	Options Options
	Paths   Paths
	Layout  config.Layout
	Addrs   config.Addrs
	// Command runs the installer's commands; nil: on this machine.
	Command system.CommandFunc
	// Emit receives progress; nil drops it.
	Emit func(Event)
	// HTTP is used for cloud metadata and the health check.
	HTTP   *http.Client
	Logger *slog.Logger
}

// New returns an Installer.
func New(c Config) *Installer {
	if c.Paths == (Paths{}) {
		c.Paths = DefaultPaths()
	}
	if c.Layout == (config.Layout{}) {
		c.Layout = config.ProductionLayout()
	}
	if c.Addrs == (config.Addrs{}) {
		c.Addrs = config.DefaultAddrs()
	}
	if c.Emit == nil {
		c.Emit = func(Event) {}
	}
	if c.HTTP == nil {
		c.HTTP = &http.Client{Timeout: 10 * time.Second}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return &Installer{
		opts: c.Options, paths: c.Paths, layout: c.Layout, addrs: c.Addrs,
		cmd: c.Command, sd: system.Systemd{Command: c.Command}, emit: c.Emit,
		http: c.HTTP, log: c.Logger, now: time.Now, changed: map[string]bool{},
	}
}

// run runs a command of the installer.
func (in *Installer) run(ctx context.Context, argv ...string) ([]byte, error) {
	return system.Run(ctx, in.cmd, argv...)
}

// Tasks lists the install tasks in order.
func (in *Installer) Tasks() []Task {
	return []Task{
		{Name: "root", Title: "Running as root", Changes: "nothing (refuses to run as another user)", Run: in.checkRoot},
		{Name: "os", Title: "Operating system", Changes: "nothing (refuses anything but Ubuntu 24.04 and Debian 12)", Run: in.checkOS},
		{Name: "ip", Title: "Public IP address", Changes: "nothing (reads cloud metadata, else the network interfaces; refuses a private address without --dev)", Run: in.detectIP},
		{Name: "packages", Title: "Packages", Changes: "installs nginx, libnginx-mod-http-js, ca-certificates and, unless --skip-harden, ufw, fail2ban and python3-systemd with apt-get, when missing", Run: in.packages},
		{Name: "swap", Title: "Swap", Harden: true, Changes: "creates a 1 GiB /swapfile (in /etc/fstab) and sets vm.swappiness=10 in " + in.paths.SysctlFile + ", unless the machine has swap or is a container", Run: in.swap},
		{Name: "firewall", Title: "Firewall (ufw)", Harden: true, Changes: "ufw: deny incoming, allow outgoing, allow the SSH port, 80, 443 and 9292/tcp; enables ufw; existing rules are kept", Run: in.firewall},
		{Name: "fail2ban", Title: "fail2ban", Harden: true, Changes: "writes " + in.paths.Fail2banDir + "/jail.d/portlama.conf (jails sshd and portlama-auth, banning through ufw) and filter.d/portlama-auth.conf; enables fail2ban", Run: in.fail2ban},
		{Name: "ssh", Title: "SSH password login", Harden: true, Changes: "turns SSH password login off at the top of " + in.paths.SSHDConfig + " (backup " + in.paths.SSHDConfig + sshBackupSuffix + ", validated with sshd -t first); only when an SSH key is authorized, so you are not locked out", Run: in.ssh},
		{Name: "user", Title: "Service user", Changes: "creates the system user and group " + ServiceUser + " (no login shell, home " + in.paths.StateDir + ")", Run: in.user},
		{Name: "binary", Title: "Binary", Changes: "copies this portlama binary to " + in.paths.Binary + " (root, 0755)", Run: in.binary},
		{Name: "directories", Title: "Directories", Changes: "creates " + in.layout.DataDir + " (0700) with pki/, tunnel/, auth/, certs/ (0700), " + in.layout.WWWDir + " and its ACME webroot (0755), all owned by " + ServiceUser + "; makes nginx's sites-available and sites-enabled writable by the group " + ServiceUser, Run: in.directories},
		{Name: "pki", Title: "Certificates (PKI)", Changes: "creates the Portlama CA, the admin client certificate (client.p12 and its password), the IP certificate and an empty CRL in " + in.layout.PKIDir() + "; existing files are kept", Run: in.pki},
		{Name: "config", Title: "Panel configuration", Changes: "writes the proxy secret and panel.json (ip and dataDir; everything else is kept) in " + in.layout.DataDir, Run: in.panelConfig},
		{Name: "ownership", Title: "File owners", Changes: "gives the relay's files to " + ServiceUser + " (never following links)", Run: in.ownership},
		{Name: "units", Title: "systemd units", Changes: "writes portlama-panel, portlama-tunnel, portlama-auth, portlama-helper (socket and service) and portlama-renew (service and timer) in " + in.paths.SystemdDir, Run: in.units},
		{Name: "nginx", Title: "nginx", Changes: "replaces /etc/nginx/nginx.conf with the relay's (original kept as nginx.conf.portlama-orig), adds a nginx.service drop-in (lint gate, restart on failure), writes conf.d/portlama.conf, snippets/portlama-*, the portlama-http, portlama-default and portlama-panel-ip vhosts, removes sites-enabled/default, runs nginx -t, enables nginx", Run: in.nginx},
		{Name: "services", Title: "Services", Changes: "enables and starts portlama-helper.socket and portlama-panel (portlama-tunnel and portlama-auth are enabled by provisioning), the renewal timer when this version has `portlama certs renew`; restarts what an update changed", Run: in.services},
		{Name: "health", Title: "Health check", Changes: "nothing (asks the panel directly and through nginx with the admin certificate)", Run: in.health},
	}
}

// HelpText lists every change install makes, for --help.
func HelpText() string {
	in := New(Config{})
	var b strings.Builder
	for _, t := range in.Tasks() {
		tag := ""
		if t.Harden {
			tag = " [hardening: skipped with --skip-harden]"
		}
		fmt.Fprintf(&b, "  %-12s %s%s\n", t.Name, t.Changes, tag)
	}
	return b.String()
}

// Run runs every task, stopping at the first failure, and returns the
// summary.
func (in *Installer) Run(ctx context.Context) (*Summary, error) {
	if in.opts.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find the portlama binary: %w", err)
		}
		in.opts.Binary = exe
	}
	for i, t := range in.Tasks() {
		if i == 1 {
			// After the root check: what an earlier run recorded.
			if err := in.loadState(); err != nil {
				return nil, err
			}
		}
		if t.Harden && in.opts.SkipHarden {
			in.event(Event{Task: t.Name, Title: t.Title, Status: StatusSkipped, Message: "--skip-harden"})
			continue
		}
		if err := in.runTask(ctx, t); err != nil {
			return nil, err
		}
	}
	s := in.summary()
	in.event(Event{Status: StatusSummary, Summary: s})
	return s, nil
}

func (in *Installer) runTask(ctx context.Context, t Task) error {
	in.event(Event{Task: t.Name, Title: t.Title, Status: StatusRunning})
	res, err := t.Run(ctx)
	if err != nil {
		in.event(Event{Task: t.Name, Title: t.Title, Status: StatusFailed, Error: err.Error()})
		return &TaskError{Task: t.Name, Err: err}
	}
	st := StatusDone
	if res.Skipped {
		st = StatusSkipped
	}
	if res.Changed {
		in.changed[t.Name] = true
	}
	in.event(Event{Task: t.Name, Title: t.Title, Status: st, Changed: res.Changed, Message: res.Message})
	return nil
}

func (in *Installer) event(e Event) {
	e.Time = in.now().UTC().Format("2006-01-02T15:04:05.000Z")
	in.emit(e)
}

// TaskError is a failed task.
type TaskError struct {
	Task string
	Err  error
}

func (e *TaskError) Error() string { return e.Task + ": " + e.Err.Error() }
func (e *TaskError) Unwrap() error { return e.Err }

// ErrRefused is wrapped by the environment checks' refusals.
var ErrRefused = errors.New("refused")
