package nginx

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// MainConf describes the top-level nginx.conf of a self-run instance
// (demo and tests). Production uses the distribution's /etc/nginx/nginx.conf,
// which already includes conf.d/*.conf and sites-enabled/*.
type MainConf struct {
	// Prefix is the instance directory: pid file, logs and temp paths.
	Prefix string
	// NginxDir is the directory with conf.d/ and sites-enabled/
	// (config.Layout.NginxDir).
	NginxDir string
	// Workers is worker_processes; 0 means "auto".
	Workers int
	// AccessLog enables <prefix>/access.log (off by default: benchmarks).
	AccessLog bool
	// User is written as "user <User>;" when set. When nginx runs as root
	// set it to "root" so workers can read 0600 files and the temp dirs.
	User string
	// ShutdownTimeout is worker_shutdown_timeout; 0 means
	// DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// Modules are the dynamic modules to load (absolute paths of .so
	// files); Instance fills in RequiredModules.
	Modules []string
}

// Worker limits of every nginx.conf we write (docs/security.md,
// "Connection limits"). A worker holds at most WorkerConnections
// connections (client and upstream sides count separately: about 2,000
// proxied requests or agent tunnels per worker) and the open files they
// need. Idle connections cost a few hundred bytes, a busy TLS one some
// tens of KiB, so one or two workers stay well inside a 512 MB relay even
// when old workers still drain their connections after a reload.
const (
	WorkerConnections = 4096
	WorkerOpenFiles   = 10240
)

// RequiredModules are the dynamic modules the relay's configuration needs:
// njs runs the cookie filter (portlama.js). Debian and Ubuntu ship it as
// libnginx-mod-http-js.
var RequiredModules = []string{"ngx_http_js_module.so"}

// DefaultShutdownTimeout bounds how long the workers of a previous
// configuration keep running after a reload. They keep the connections they
// hold — agents' tunnel WebSockets, downloads in flight — until those close
// or this passes, then nginx cuts them and agents reconnect. Reloads follow
// tunnel changes, so a long timeout keeps a change from cutting running
// transfers, while a bound keeps old workers from piling up.
const DefaultShutdownTimeout = 10 * time.Minute

// Paths inside an instance prefix.
func confPath(prefix string) string     { return filepath.Join(prefix, "nginx.conf") }
func pidPath(prefix string) string      { return filepath.Join(prefix, "nginx.pid") }
func errorLogPath(prefix string) string { return filepath.Join(prefix, "error.log") }

// RenderMainConf renders nginx.conf for a self-run instance.
func RenderMainConf(c MainConf) ([]byte, error) {
	prefix, err := safePath("instance prefix", c.Prefix)
	if err != nil {
		return nil, err
	}
	dir, err := safePath("nginx dir", c.NginxDir)
	if err != nil {
		return nil, err
	}
	if c.Workers < 0 || c.Workers > 64 {
		return nil, fmt.Errorf("worker count %d out of range", c.Workers)
	}
	workers := "auto"
	if c.Workers > 0 {
		workers = strconv.Itoa(c.Workers)
	}
	var b strings.Builder
	b.WriteString("# Managed by Portlama: self-run nginx instance.\n")
	if c.User != "" {
		if err := validUser(c.User); err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "user %s;\n", c.User)
	}
	for _, mod := range c.Modules {
		p, err := safePath("module", mod)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "load_module %s;\n", p)
	}
	fmt.Fprintf(&b, "pid %s;\n", pidPath(prefix))
	fmt.Fprintf(&b, "error_log %s warn;\n", errorLogPath(prefix))
	writeWorkerLimits(&b, workers, c.ShutdownTimeout)
	b.WriteString("http {\n")
	b.WriteString("    types {\n")
	for _, t := range mimeTypes {
		fmt.Fprintf(&b, "        %s;\n", t)
	}
	b.WriteString("    }\n")
	b.WriteString("    default_type application/octet-stream;\n")
	if c.AccessLog {
		fmt.Fprintf(&b, "    access_log %s;\n", filepath.Join(prefix, "access.log"))
	} else {
		b.WriteString("    access_log off;\n")
	}
	for _, t := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&b, "    %s_temp_path %s;\n", t, filepath.Join(prefix, "tmp", t))
	}
	// Timeouts and limits are conf.d's (the same in production).
	b.WriteString("    sendfile on;\n    tcp_nopush on;\n    server_tokens off;\n")
	fmt.Fprintf(&b, "    include %s/*.conf;\n", filepath.Join(dir, "conf.d"))
	fmt.Fprintf(&b, "    include %s/*;\n", filepath.Join(dir, "sites-enabled"))
	b.WriteString("}\n")
	return []byte(b.String()), nil
}

// writeWorkerLimits writes the main-context worker settings and the events
// block.
func writeWorkerLimits(b *strings.Builder, workers string, shutdown time.Duration) {
	if shutdown <= 0 {
		shutdown = DefaultShutdownTimeout
	}
	fmt.Fprintf(b, "worker_processes %s;\n", workers)
	fmt.Fprintf(b, "worker_rlimit_nofile %d;\n", WorkerOpenFiles)
	fmt.Fprintf(b, "worker_shutdown_timeout %ds;\n\n", int(shutdown/time.Second))
	fmt.Fprintf(b, "events {\n    worker_connections %d;\n}\n\n", WorkerConnections)
}

// SystemConf describes the relay's /etc/nginx/nginx.conf (the installer
// writes it in place of the distribution's): Debian's paths and includes
// with our worker limits and worker_shutdown_timeout.
type SystemConf struct {
	// NginxDir is config.Layout.NginxDir (/etc/nginx).
	NginxDir string
	// User runs the workers; "" means "www-data".
	User string
	// Workers is worker_processes; 0 means "auto".
	Workers int
	// ShutdownTimeout is worker_shutdown_timeout; 0 means
	// DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// SitesDir holds the vhosts nginx includes; "" means
	// <NginxDir>/sites-enabled. An installed relay uses CheckedSitesDir
	// (only vhosts that passed the lint gate, nginx.Publish).
	SitesDir string
}

// SystemConfOrigSuffix is appended to the distribution's nginx.conf when the
// installer first replaces it; uninstall puts it back.
const SystemConfOrigSuffix = ".portlama-orig"

// RenderSystemConf renders the relay's nginx.conf. Its modules-enabled
// include loads the distribution's dynamic modules, njs among them.
func RenderSystemConf(c SystemConf) (File, error) {
	dir, err := safePath("nginx dir", c.NginxDir)
	if err != nil {
		return File{}, err
	}
	if c.Workers < 0 || c.Workers > 64 {
		return File{}, fmt.Errorf("worker count %d out of range", c.Workers)
	}
	workers := "auto"
	if c.Workers > 0 {
		workers = strconv.Itoa(c.Workers)
	}
	user := c.User
	if user == "" {
		user = "www-data"
	}
	if err := validUser(user); err != nil {
		return File{}, err
	}
	sites := c.SitesDir
	if sites == "" {
		sites = filepath.Join(dir, "sites-enabled")
	}
	if sites, err = safePath("sites dir", sites); err != nil {
		return File{}, err
	}
	var b strings.Builder
	b.WriteString("# Managed by Portlama: the relay's nginx.conf. Changes are overwritten.\n")
	fmt.Fprintf(&b, "user %s;\n", user)
	b.WriteString("pid /run/nginx.pid;\n")
	b.WriteString("error_log /var/log/nginx/error.log warn;\n")
	fmt.Fprintf(&b, "include %s/modules-enabled/*.conf;\n", dir)
	writeWorkerLimits(&b, workers, c.ShutdownTimeout)
	b.WriteString("http {\n")
	b.WriteString("    sendfile on;\n    tcp_nopush on;\n    types_hash_max_size 2048;\n    server_tokens off;\n")
	fmt.Fprintf(&b, "    include %s/mime.types;\n", dir)
	b.WriteString("    default_type application/octet-stream;\n")
	b.WriteString("    access_log /var/log/nginx/access.log;\n")
	fmt.Fprintf(&b, "    include %s/conf.d/*.conf;\n", dir)
	fmt.Fprintf(&b, "    include %s/*;\n", sites)
	b.WriteString("}\n")
	return File{Path: filepath.Join(dir, "nginx.conf"), Mode: 0o644, Content: []byte(b.String())}, nil
}

func validUser(u string) error {
	for i := 0; i < len(u); i++ {
		c := u[i]
		if !(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9') && c != '_' && c != '-' {
			return fmt.Errorf("invalid nginx user %q", u)
		}
	}
	if u == "" || len(u) > 32 {
		return fmt.Errorf("invalid nginx user %q", u)
	}
	return nil
}

// mimeTypes is the small types table of a self-run instance.
var mimeTypes = []string{
	"text/html html htm",
	"text/css css",
	"text/plain txt",
	"text/xml xml",
	"application/javascript js mjs",
	"application/json json",
	"application/wasm wasm",
	"image/png png",
	"image/jpeg jpg jpeg",
	"image/gif gif",
	"image/svg+xml svg",
	"image/x-icon ico",
	"image/webp webp",
	"font/woff woff",
	"font/woff2 woff2",
	"application/pdf pdf",
}
