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
}

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
	fmt.Fprintf(&b, "worker_processes %s;\n", workers)
	fmt.Fprintf(&b, "pid %s;\n", pidPath(prefix))
	fmt.Fprintf(&b, "error_log %s warn;\n", errorLogPath(prefix))
	shutdown := c.ShutdownTimeout
	if shutdown <= 0 {
		shutdown = DefaultShutdownTimeout
	}
	fmt.Fprintf(&b, "worker_shutdown_timeout %ds;\n\n", int(shutdown/time.Second))
	b.WriteString("events {\n    worker_connections 4096;\n}\n\n")
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
	b.WriteString("    sendfile on;\n    tcp_nopush on;\n    keepalive_timeout 65;\n    server_tokens off;\n")
	fmt.Fprintf(&b, "    include %s/*.conf;\n", filepath.Join(dir, "conf.d"))
	fmt.Fprintf(&b, "    include %s/*;\n", filepath.Join(dir, "sites-enabled"))
	b.WriteString("}\n")
	return []byte(b.String()), nil
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
