package nginx

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// RelayConf describes the relay's /etc/nginx/nginx.conf. The installer
// replaces the distribution's file with it (keeping the original as
// nginx.conf.portlama-orig) because the settings a relay needs live in the
// main and events contexts, which conf.d/ cannot reach.
type RelayConf struct {
	// NginxDir holds conf.d/, sites-enabled/, modules-enabled/ and
	// mime.types (config.Layout.NginxDir).
	NginxDir string
	// SitesDir holds the vhosts nginx includes; "" means
	// <NginxDir>/sites-enabled. A relay uses CheckedSitesDir.
	SitesDir string
	// User runs the workers; "" means www-data (Debian and Ubuntu).
	User string
	// PidFile, ErrorLog and AccessLog default to Debian's paths.
	PidFile   string
	ErrorLog  string
	AccessLog string
	// WorkerConnections per worker; 0 means DefaultWorkerConnections.
	WorkerConnections int
	// ShutdownTimeout is worker_shutdown_timeout; 0 means
	// DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
}

// Sizing for a 512 MB relay: a worker holds at most 4096 connections
// (client and upstream sides count separately); idle ones cost a few
// hundred bytes, a busy TLS one some tens of KiB, and worker_processes
// auto is one or two workers on such a machine. Each connection needs a
// descriptor, plus files, hence the rlimit. The per-address limit
// (limit_conn, 100 requests in progress) is set per public server by
// conf.d and the vhosts, so the tunnel vhost can be left out of it.
const DefaultWorkerConnections = 4096

// RelayConfOrigSuffix is appended to the distribution's nginx.conf when the
// installer first replaces it.
const RelayConfOrigSuffix = ".portlama-orig"

// RenderRelayConf renders the relay's nginx.conf.
func RenderRelayConf(c RelayConf) ([]byte, error) {
	dir, err := safePath("nginx dir", c.NginxDir)
	if err != nil {
		return nil, err
	}
	sites := c.SitesDir
	if sites == "" {
		sites = filepath.Join(dir, "sites-enabled")
	}
	if _, err := safePath("sites dir", sites); err != nil {
		return nil, err
	}
	user := c.User
	if user == "" {
		user = "www-data"
	}
	if err := validUser(user); err != nil {
		return nil, err
	}
	paths := map[string]*string{"pid file": &c.PidFile, "error log": &c.ErrorLog, "access log": &c.AccessLog}
	defaults := map[string]string{"pid file": "/run/nginx.pid", "error log": "/var/log/nginx/error.log", "access log": "/var/log/nginx/access.log"}
	for what, p := range paths {
		if *p == "" {
			*p = defaults[what]
		}
		if _, err := safePath(what, *p); err != nil {
			return nil, err
		}
	}
	conns := c.WorkerConnections
	if conns == 0 {
		conns = DefaultWorkerConnections
	}
	if conns < 64 || conns > 65536 {
		return nil, fmt.Errorf("worker connections %d out of range", conns)
	}
	shutdown := c.ShutdownTimeout
	if shutdown <= 0 {
		shutdown = DefaultShutdownTimeout
	}
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# Managed by Portlama (portlama install). The distribution's file is")
	w("# kept as nginx.conf%s; portlama uninstall puts it back.", RelayConfOrigSuffix)
	w("user %s;", user)
	w("worker_processes auto;")
	w("worker_rlimit_nofile %d;", conns*5/2)
	w("# Old workers keep agents' tunnel WebSockets after a reload until they")
	w("# close or this passes; without it they would linger for a day.")
	w("worker_shutdown_timeout %ds;", int(shutdown/time.Second))
	w("pid %s;", c.PidFile)
	w("error_log %s;", c.ErrorLog)
	w("include %s/*.conf;", filepath.Join(dir, "modules-enabled"))
	w("")
	w("events {")
	w("    worker_connections %d;", conns)
	w("}")
	w("")
	w("http {")
	w("    include %s;", filepath.Join(dir, "mime.types"))
	w("    default_type application/octet-stream;")
	w("    sendfile on;")
	w("    tcp_nopush on;")
	w("    types_hash_max_size 2048;")
	w("    server_tokens off;")
	w("    keepalive_timeout 65;")
	w("    access_log %s;", c.AccessLog)
	w("    gzip on;")
	w("")
	w("    include %s/*.conf;", filepath.Join(dir, "conf.d"))
	w("    include %s/*;", sites)
	w("}")
	return []byte(b.String()), nil
}
