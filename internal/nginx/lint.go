package nginx

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/store"
)

// Lint gate for the vhosts the panel writes.
//
// The panel runs unprivileged, yet it writes sites-available and
// sites-enabled, and nginx's master process, running as root, reads its
// configuration: it opens log files, certificate keys and includes as
// root. A vhost with "access_log /etc/cron.d/x" or "include /etc/shadow"
// would turn a compromised panel into root. So on a relay nginx does not
// read sites-enabled: Publish lints every entry there and copies what
// passes into CheckedSitesDir (root-owned), which the relay's nginx.conf
// includes instead. The copy is what was checked, so changing a file after
// the check changes nothing nginx reads. The root helper publishes before
// every "nginx -t" and reload, and the installer's nginx.service drop-in
// before nginx starts or reloads (docs/security.md).
//
// Entries that are root's own (a regular file owned by root, writable by
// no one else, with one link: the distribution's default site, vhosts an
// administrator wrote) are copied as they are. Everything else must pass
// LintConfig: only the directives Portlama's templates use, with file
// arguments confined to the relay's own directories.

// CheckedSitesDir is where Publish puts the checked copies of
// sites-enabled: <nginx>/portlama-checked.
func CheckedSitesDir(l config.Layout) string { return filepath.Join(l.NginxDir, "portlama-checked") }

// LintError lists what the gate refused, one problem per entry.
type LintError struct {
	Problems []string
}

func (e *LintError) Error() string {
	return "nginx configuration refused: " + strings.Join(e.Problems, "; ")
}

// lintAllowed are the directives a vhost may contain, in any context.
// Logs may only be off or /dev/null (checked below). Everything else —
// log_format, *_temp_path, *_cache_path,
// proxy_store, ssl_password_file, ssl_session_ticket_key, ssl_dhparam,
// proxy_ssl_* files, perl/js/lua, … — is refused.
var lintAllowed = map[string]bool{
	"server": true, "types": true, "listen": true, "server_name": true, "location": true, "if": true, "set": true,
	"return": true, "rewrite": true, "break": true, "error_page": true, "internal": true,
	"index": true, "try_files": true, "default_type": true, "charset": true,
	"add_header": true, "expires": true, "etag": true, "if_modified_since": true,
	"absolute_redirect": true, "port_in_redirect": true, "server_name_in_redirect": true,
	"recursive_error_pages": true, "log_not_found": true, "log_subrequest": true, "server_tokens": true,
	"client_max_body_size": true, "client_body_buffer_size": true, "client_body_timeout": true,
	"client_header_timeout": true, "client_header_buffer_size": true, "large_client_header_buffers": true,
	"keepalive_timeout": true, "keepalive_requests": true, "keepalive": true, "keepalive_time": true,
	"send_timeout": true, "sendfile": true, "tcp_nodelay": true, "tcp_nopush": true,
	"underscores_in_headers": true, "ignore_invalid_headers": true, "chunked_transfer_encoding": true,
	"http2": true, "gzip": true, "gzip_types": true, "gzip_proxied": true, "gzip_min_length": true, "gzip_vary": true,
	"allow": true, "deny": true, "satisfy": true,
	"auth_request": true, "auth_request_set": true,
	"limit_req": true, "limit_req_status": true, "limit_req_zone": true,
	"limit_conn": true, "limit_conn_status": true, "limit_conn_zone": true,
	"map": true, "upstream": true, "zone": true, "least_conn": true, "hash": true, "ip_hash": true,
	"sub_filter": true, "sub_filter_once": true, "sub_filter_types": true,
	"real_ip_header": true, "set_real_ip_from": true, "real_ip_recursive": true,
	"ssl_certificate": true, "ssl_certificate_key": true, "ssl_client_certificate": true, "ssl_crl": true,
	"ssl_trusted_certificate": true, "ssl_verify_client": true, "ssl_verify_depth": true,
	"ssl_protocols": true, "ssl_ciphers": true, "ssl_prefer_server_ciphers": true,
	"ssl_session_cache": true, "ssl_session_timeout": true, "ssl_session_tickets": true,
	"ssl_reject_handshake": true, "ssl_early_data": true,
	"include": true, "root": true, "alias": true, "access_log": true, "error_log": true,
	"reset_timedout_connection": true, "limit_conn_log_level": true, "limit_req_log_level": true,
	// njs: vhosts may call functions of modules that conf.d (root's)
	// imports; js_import itself, which reads a file, is not allowed here.
	"js_header_filter": true, "js_body_filter": true, "js_set": true, "js_var": true, "js_content": true,
	"proxy_pass": true, "proxy_set_header": true, "proxy_http_version": true, "proxy_method": true,
	"proxy_pass_request_body": true, "proxy_pass_request_headers": true, "proxy_pass_header": true,
	"proxy_hide_header": true, "proxy_ignore_headers": true, "proxy_redirect": true,
	"proxy_buffering": true, "proxy_buffers": true, "proxy_buffer_size": true, "proxy_busy_buffers_size": true,
	"proxy_request_buffering": true, "proxy_max_temp_file_size": true,
	"proxy_connect_timeout": true, "proxy_read_timeout": true, "proxy_send_timeout": true,
	"proxy_next_upstream": true, "proxy_next_upstream_tries": true, "proxy_next_upstream_timeout": true,
	"proxy_intercept_errors": true, "proxy_cookie_path": true, "proxy_cookie_domain": true, "proxy_cookie_flags": true,
	"proxy_socket_keepalive": true, "proxy_ssl_server_name": true, "proxy_ssl_name": true,
}

// lintData are blocks whose children are data (key value pairs), not
// directives.
var lintData = map[string]bool{"map": true, "types": true}

// lintLimits are the file arguments the gate checks, and the directories
// each may point into.
func lintPaths(l config.Layout) map[string][]string {
	tls := []string{l.PKIDir(), l.CertsDir}
	return map[string][]string{
		"include":                 {l.NginxSnippets()},
		"ssl_certificate":         tls,
		"ssl_certificate_key":     tls,
		"ssl_client_certificate":  {l.PKIDir()},
		"ssl_crl":                 {l.PKIDir()},
		"ssl_trusted_certificate": {l.PKIDir()},
		"root":                    {l.WWWDir, l.ACMEWebroot},
		"alias":                   {l.WWWDir, l.ACMEWebroot},
	}
}

// Lint checks every entry of the layout's sites-enabled and returns the
// content nginx may read, by entry name. Entries must be files in
// sites-available (or in sites-enabled itself), linked or not. It also
// refuses a layout whose root-owned pieces (conf.d, snippets) are writable
// by anyone but root, since the gate would not cover them.
func Lint(l config.Layout) (map[string][]byte, error) {
	var problems []string
	for _, dir := range []string{l.NginxConfD(), l.NginxSnippets()} {
		if err := rootOnly(dir); err != nil {
			problems = append(problems, err.Error())
		}
	}
	entries, err := os.ReadDir(l.NginxSitesEnabled())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("lint nginx configuration: %w", err)
	}
	checked := map[string][]byte{}
	for _, e := range entries {
		name := e.Name()
		if name == routesName {
			problems = append(problems, lintRoutes(l, checked)...)
			continue
		}
		data, trusted, err := readEnabled(l, l.NginxSitesEnabled(), name)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		if !trusted {
			if err := LintConfig(l, data); err != nil {
				var le *LintError
				if errors.As(err, &le) {
					for _, p := range le.Problems {
						problems = append(problems, name+": "+p)
					}
					continue
				}
				problems = append(problems, fmt.Sprintf("%s: %v", name, err))
				continue
			}
		}
		checked[name] = data
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, &LintError{Problems: problems}
	}
	return checked, nil
}

// Publish lints sites-enabled and makes CheckedSitesDir hold exactly the
// checked entries (root-owned, 0644). On a lint failure it changes nothing.
func Publish(l config.Layout) error {
	checked, err := Lint(l)
	if err != nil {
		return err
	}
	dir := CheckedSitesDir(l)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("publish nginx vhosts: %w", err)
	}
	if err := rootOnly(dir); err != nil {
		return fmt.Errorf("publish nginx vhosts: %w", err)
	}
	if err := os.MkdirAll(RoutesDir(dir), 0o755); err != nil {
		return fmt.Errorf("publish nginx routes: %w", err)
	}
	for name, data := range checked {
		p := filepath.Join(dir, name)
		if cur, err := os.ReadFile(p); err == nil && string(cur) == string(data) {
			continue
		}
		if err := store.WriteFileAtomic(p, data, 0o644); err != nil {
			return fmt.Errorf("publish nginx vhost %s: %w", name, err)
		}
	}
	// Stale entries go, in the routes directory too.
	for _, sub := range []string{dir, RoutesDir(dir)} {
		entries, err := os.ReadDir(sub)
		if err != nil {
			return err
		}
		for _, e := range entries {
			rel, _ := filepath.Rel(dir, filepath.Join(sub, e.Name()))
			if _, ok := checked[rel]; !ok && rel != routesName {
				if err := os.Remove(filepath.Join(sub, e.Name())); err != nil {
					return fmt.Errorf("publish nginx vhosts: %w", err)
				}
			}
		}
	}
	return nil
}

// routesName is the routes directory's name in a sites directory.
const routesName = ".routes"

// lintRoutes checks sites-enabled/.routes: every entry must be a link to
// sites-available/<name>.route, name an app vhost's, holding exactly that
// app's route (ParseRoute). Passing routes are added to checked as
// ".routes/<name>"; it returns the problems.
func lintRoutes(l config.Layout, checked map[string][]byte) []string {
	dir := RoutesDir(l.NginxSitesEnabled())
	fi, err := os.Lstat(dir)
	if err != nil || !fi.IsDir() {
		return []string{routesName + ": is not a directory"}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", routesName, err)}
	}
	var problems []string
	for _, e := range entries {
		name := e.Name()
		where := routesName + "/" + name
		if fi, err := os.Lstat(filepath.Join(dir, name)); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			problems = append(problems, where+": is not a link to a route in sites-available")
			continue
		}
		data, _, err := readEnabled(l, dir, name)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", where, err))
			continue
		}
		target, _ := os.Readlink(filepath.Join(dir, name))
		if filepath.Base(target) != name+routeSuffix {
			problems = append(problems, where+": links to "+filepath.Base(target)+", not to "+name+routeSuffix)
			continue
		}
		rt, err := ParseRoute(data)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", where, err))
			continue
		}
		if want := AppVhostName(rt.Subdomain()); name != want {
			problems = append(problems, fmt.Sprintf("%s: the route of %s must be named %s", where, rt.FQDN, want))
			continue
		}
		checked[routesName+"/"+name] = data
	}
	return problems
}

// readEnabled reads <enabled>/<name> (sites-enabled or its routes
// directory): a regular file, or a symbolic link to a file directly inside
// sites-available. The target is opened
// through an os.Root of that directory without following links, so a link
// planted further down cannot lead the reader (root) elsewhere. trusted
// reports a file that is root's own (see above), judged on the opened file.
func readEnabled(l config.Layout, enabled, name string) (data []byte, trusted bool, err error) {
	fi, err := os.Lstat(filepath.Join(enabled, name))
	if err != nil {
		return nil, false, err
	}
	dir, file := enabled, name
	if fi.Mode()&fs.ModeSymlink != 0 {
		target, err := os.Readlink(filepath.Join(enabled, name))
		if err != nil {
			return nil, false, err
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(enabled, target)
		}
		target = filepath.Clean(target)
		if filepath.Dir(target) != filepath.Clean(l.NginxSitesAvailable()) {
			return nil, false, errors.New("links outside sites-available")
		}
		dir, file = l.NginxSitesAvailable(), filepath.Base(target)
	} else if !fi.Mode().IsRegular() {
		return nil, false, errors.New("is neither a file nor a link to one")
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, false, err
	}
	defer root.Close()
	f, err := root.OpenFile(file, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, false, err
	}
	if !st.Mode().IsRegular() {
		return nil, false, errors.New("is not a regular file")
	}
	if st.Size() > 1<<20 {
		return nil, false, errors.New("is larger than 1 MiB")
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		trusted = sys.Uid == 0 && sys.Nlink == 1 && st.Mode().Perm()&0o022 == 0
	}
	buf := make([]byte, st.Size())
	n, err := f.ReadAt(buf, 0)
	if err != nil && n != len(buf) {
		return nil, false, err
	}
	return buf, trusted, nil
}

// rootOnly checks that dir, if it exists, and the files in it are owned by
// root and writable by nobody else.
func rootOnly(dir string) error {
	check := func(p string) error {
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		if os.Geteuid() == 0 && st.Uid != 0 || fi.Mode().Perm()&0o022 != 0 {
			return fmt.Errorf("%s must be owned by root and writable only by root", p)
		}
		return nil
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := check(dir); err != nil {
		return err
	}
	for _, e := range entries {
		if err := check(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// LintConfig checks one configuration file's text against the gate.
func LintConfig(l config.Layout, data []byte) error {
	dirs, err := parseConf(data)
	if err != nil {
		return &LintError{Problems: []string{err.Error()}}
	}
	var problems []string
	paths := lintPaths(l)
	routes := RoutesDir(CheckedSitesDir(l)) + "/*"
	var walk func(ds []confDirective, parent string)
	walk = func(ds []confDirective, parent string) {
		data := lintData[parent]
		for _, d := range ds {
			if data && d.name != "include" {
				continue
			}
			// The shared wildcard server's host map reads the checked
			// routes, and nothing else.
			if parent == "map" {
				if d.bad || len(d.args) != 1 || d.escaped[0] || d.args[0] != routes {
					problems = append(problems, fmt.Sprintf("line %d: a map may only include %s", d.line, routes))
				}
				continue
			}
			if d.bad || !lintAllowed[d.name] {
				problems = append(problems, fmt.Sprintf("line %d: directive %q is not allowed in a Portlama vhost", d.line, d.name))
				continue
			}
			if d.name == "access_log" && !(len(d.args) == 1 && (d.args[0] == "off" || d.args[0] == "/dev/null")) {
				problems = append(problems, fmt.Sprintf("line %d: access_log may only be off", d.line))
			}
			// error_log cannot be off; /dev/null (with a level) is how a
			// location silences it.
			if d.name == "error_log" && !(len(d.args) >= 1 && len(d.args) <= 2 && d.args[0] == "/dev/null" && !d.escaped[0]) {
				problems = append(problems, fmt.Sprintf("line %d: error_log may only go to /dev/null", d.line))
			}
			if dirs, ok := paths[d.name]; ok {
				if err := lintPathArg(d, dirs); err != nil {
					problems = append(problems, fmt.Sprintf("line %d: %v", d.line, err))
				}
			}
			walk(d.block, d.name)
		}
	}
	walk(dirs, "")
	problems = append(problems, lintUpstreamOnly(dirs)...)
	if len(problems) > 0 {
		return &LintError{Problems: problems}
	}
	return nil
}

func lintPathArg(d confDirective, dirs []string) error {
	if len(d.args) != 1 {
		return fmt.Errorf("%s takes exactly one path here", d.name)
	}
	p := d.args[0]
	if d.escaped[0] || strings.ContainsAny(p, "$*?[\\") || !filepath.IsAbs(p) || filepath.Clean(p) != p {
		return fmt.Errorf("%s %q must be a plain absolute path", d.name, p)
	}
	for _, dir := range dirs {
		if d := filepath.Clean(dir); p == d || strings.HasPrefix(p, d+"/") {
			return nil
		}
	}
	return fmt.Errorf("%s %q is outside %s", d.name, p, strings.Join(dirs, " and "))
}

// confDirective is one parsed directive: its name, arguments (unquoted)
// and block, if any.
type confDirective struct {
	name    string
	args    []string
	escaped []bool // per argument: it had a backslash
	block   []confDirective
	line    int
	bad     bool // the name had a backslash
}

type confToken struct {
	text    string
	quoted  bool
	escaped bool
	line    int
}

// parseConf parses nginx configuration syntax: words and quoted strings,
// ";" ending a directive, "{" "}" around blocks, "#" comments.
func parseConf(data []byte) ([]confDirective, error) {
	toks, err := tokenizeConf(string(data))
	if err != nil {
		return nil, err
	}
	pos := 0
	var parse func(depth int) ([]confDirective, error)
	parse = func(depth int) ([]confDirective, error) {
		var out []confDirective
		for pos < len(toks) {
			t := toks[pos]
			if !t.quoted && t.text == "}" {
				if depth == 0 {
					return nil, fmt.Errorf("line %d: unexpected \"}\"", t.line)
				}
				pos++
				return out, nil
			}
			if !t.quoted && (t.text == ";" || t.text == "{") {
				return nil, fmt.Errorf("line %d: unexpected %q", t.line, t.text)
			}
			d := confDirective{name: t.text, line: t.line, bad: t.escaped}
			pos++
			for {
				if pos >= len(toks) {
					return nil, fmt.Errorf("line %d: directive %q is not terminated", d.line, d.name)
				}
				a := toks[pos]
				pos++
				if !a.quoted && a.text == ";" {
					break
				}
				if !a.quoted && a.text == "{" {
					b, err := parse(depth + 1)
					if err != nil {
						return nil, err
					}
					d.block = b
					break
				}
				if !a.quoted && a.text == "}" {
					return nil, fmt.Errorf("line %d: unexpected \"}\"", a.line)
				}
				d.args = append(d.args, a.text)
				d.escaped = append(d.escaped, a.escaped)
			}
			out = append(out, d)
		}
		if depth > 0 {
			return nil, errors.New("unexpected end of file: a block is not closed")
		}
		return out, nil
	}
	return parse(0)
}

// tokenizeConf follows nginx's ngx_conf_read_token: at the start of a
// token ";", "{" and "}" stand alone, "#" starts a comment and a quote
// starts a quoted string; inside a word only white space, ";" and "{" end
// it ("}" does not, and "{" right after "$" is part of a variable). A token
// with a backslash is marked escaped: names and paths must not have one.
func tokenizeConf(s string) ([]confToken, error) {
	var toks []confToken
	line := 1
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == ';' || c == '{' || c == '}':
			toks = append(toks, confToken{text: string(c), line: line})
			i++
		case c == '"' || c == '\'':
			start := line
			tok := confToken{quoted: true, line: start}
			var b strings.Builder
			i++
			for {
				if i >= len(s) {
					return nil, fmt.Errorf("line %d: unterminated quoted string", start)
				}
				if s[i] == '\\' && i+1 < len(s) {
					tok.escaped = true
					b.WriteByte(s[i+1])
					if s[i+1] == '\n' {
						line++
					}
					i += 2
					continue
				}
				if s[i] == c {
					i++
					break
				}
				if s[i] == '\n' {
					line++
				}
				b.WriteByte(s[i])
				i++
			}
			// nginx wants white space or a terminator after a quote.
			if i < len(s) && !strings.ContainsRune(" \t\r\n;{})", rune(s[i])) {
				return nil, fmt.Errorf("line %d: unexpected %q after a quoted string", line, s[i])
			}
			tok.text = b.String()
			toks = append(toks, tok)
		default:
			tok := confToken{line: line}
			var b strings.Builder
			variable := false
			for i < len(s) {
				c := s[i]
				if c == '{' && variable {
					b.WriteByte(c)
					i++
					variable = false
					continue
				}
				variable = false
				if c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ';' || c == '{' {
					break
				}
				if c == '\\' && i+1 < len(s) {
					tok.escaped = true
					b.WriteByte(s[i+1])
					if s[i+1] == '\n' {
						line++
					}
					i += 2
					continue
				}
				if c == '$' {
					variable = true
				}
				b.WriteByte(c)
				i++
			}
			tok.text = b.String()
			toks = append(toks, tok)
		}
	}
	return toks, nil
}

// lintUpstreamOnly checks a file of upstream blocks only (an app served by
// the shared wildcard server): exactly one upstream portlama_app_<sub>
// with one loopback server and at most a keepalive, nothing else.
func lintUpstreamOnly(dirs []confDirective) []string {
	if len(dirs) == 0 {
		return nil
	}
	for _, d := range dirs {
		if d.name != "upstream" {
			return nil
		}
	}
	if len(dirs) != 1 {
		return []string{"a file of upstreams must hold exactly one"}
	}
	u := dirs[0]
	var problems []string
	if len(u.args) != 1 || !upstreamPattern().MatchString(u.args[0]) {
		problems = append(problems, fmt.Sprintf("line %d: upstream must be named portlama_app_<subdomain>", u.line))
	}
	servers, keepalives := 0, 0
	for _, c := range u.block {
		switch {
		case c.name == "server" && len(c.args) == 1 && loopbackPort(c.args[0]):
			servers++
		case c.name == "keepalive" && len(c.args) == 1 && smallCount(c.args[0]):
			keepalives++
		default:
			problems = append(problems, fmt.Sprintf("line %d: an app upstream holds only \"server 127.0.0.1:<port>\" and \"keepalive <n>\"", c.line))
		}
	}
	if servers != 1 || keepalives > 1 {
		problems = append(problems, fmt.Sprintf("line %d: an app upstream has one server and at most one keepalive", u.line))
	}
	return problems
}

// upstreamPattern is an app upstream's name (upstreamName("app", sub)).
var upstreamPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^portlama_app_[a-z0-9_]{1,63}$`) })

func loopbackPort(s string) bool {
	p, ok := strings.CutPrefix(s, "127.0.0.1:")
	n, err := strconv.Atoi(p)
	return ok && err == nil && n >= 1 && n <= 65535 && strconv.Itoa(n) == p
}

func smallCount(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 1 && n <= 1024 && strconv.Itoa(n) == s
}
