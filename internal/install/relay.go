package install

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/nginx"
	"github.com/portlama/portlama/internal/pki"
	"github.com/portlama/portlama/internal/system"
	"github.com/portlama/portlama/internal/tunnel"
)

// lintedNginx is the installer's nginx controller: the lint gate before
// nginx -t, because nginx -t already opens the files a configuration
// names and the vhost directories are the panel's to write.
type lintedNginx struct {
	layout config.Layout
	ctl    nginx.Controller
}

func (n lintedNginx) Test(ctx context.Context) (string, error) {
	if err := nginx.Publish(n.layout); err != nil {
		return err.Error(), err
	}
	return n.ctl.Test(ctx)
}

func (n lintedNginx) Reload(ctx context.Context) error { return n.ctl.Reload(ctx) }

func (in *Installer) nginxController() lintedNginx {
	return lintedNginx{layout: in.layout, ctl: nginx.System{Run: func(ctx context.Context, argv []string) ([]byte, error) {
		return system.Run(ctx, in.cmd, argv...)
	}}}
}

func (in *Installer) nginxConfPath() string { return filepath.Join(in.layout.NginxDir, "nginx.conf") }

func (in *Installer) nginx(ctx context.Context) (Result, error) {
	var what []string
	ctl := in.nginxController()

	// 1. The relay's nginx.conf.
	// nginx reads the checked copies of sites-enabled, never the panel's
	// files themselves (nginx.Publish).
	if err := nginx.Publish(in.layout); err != nil {
		return Result{}, err
	}
	cf, err := nginx.RenderSystemConf(nginx.SystemConf{NginxDir: in.layout.NginxDir, SitesDir: nginx.CheckedSitesDir(in.layout)})
	if err != nil {
		return Result{}, err
	}
	conf := cf.Content
	path := in.nginxConfPath()
	confChanged := false
	if !sameContent(path, conf) {
		old, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return Result{}, err
		}
		orig := path + nginx.SystemConfOrigSuffix
		if _, err := os.Stat(orig); errors.Is(err, fs.ErrNotExist) && err != nil && len(old) > 0 && !strings.HasPrefix(string(old), "# Managed by Portlama") {
			if err := writeLike(orig, old, 0o644); err != nil {
				return Result{}, fmt.Errorf("keep the distribution's nginx.conf: %w", err)
			}
		}
		if err := writeLike(path, conf, 0o644); err != nil {
			return Result{}, err
		}
		if out, err := ctl.Test(ctx); err != nil {
			if len(old) > 0 {
				writeLike(path, old, 0o644)
			}
			return Result{}, fmt.Errorf("nginx -t fails with the relay's nginx.conf (the previous one is back): %s", out)
		}
		confChanged = true
		what = append(what, "nginx.conf")
	}

	// 2. nginx runs and starts at boot.
	st, err := in.sd.Status(ctx, system.UnitNginx)
	if err != nil {
		return Result{}, err
	}
	if st.UnitFileState != "enabled" {
		if _, err := in.run(ctx, "systemctl", "enable", "nginx"); err != nil {
			return Result{}, err
		}
		what = append(what, "enabled")
	}
	switch {
	case st.State != system.StateActive:
		if err := in.sd.Start(ctx, system.UnitNginx); err != nil {
			return Result{}, err
		}
		what = append(what, "started")
	case confChanged || in.changed["unit:"+NginxDropIn]:
		// The drop-in and the main configuration apply on a restart
		// (worker limits); no agent is connected before provisioning, and
		// after it agents reconnect on their own.
		if err := in.sd.Restart(ctx, system.UnitNginx); err != nil {
			return Result{}, err
		}
		what = append(what, "restarted")
	}

	// 3. The shared pieces and the IP vhosts.
	r, err := nginx.NewRenderer(in.layout, in.addrs)
	if err != nil {
		return Result{}, err
	}
	secret, err := os.ReadFile(in.layout.ProxySecretFile())
	if err != nil {
		return Result{}, err
	}
	twoFA := false
	if c, err := config.NewPanelStore(in.layout.PanelConfig()).Load(); err == nil {
		twoFA = c.Panel2FA.Enabled
	}
	sh, err := r.Shared(nginx.SharedParams{ProxySecret: strings.TrimSpace(string(secret)), PanelIPDisabled: twoFA})
	if err != nil {
		return Result{}, err
	}
	// The tunnel vhost (written at provisioning, by the unprivileged
	// panel) includes the tunnel server's secret snippet, which only root
	// can write into nginx's snippets: make the secret now, the tunnel
	// server's to read.
	tsPath := tunnel.DirConfig(in.layout.TunnelDir()).SecretFile
	tsecret, err := tunnel.EnsureProxySecret(tsPath)
	if err != nil {
		return Result{}, err
	}
	if err := os.Lchown(tsPath, in.uid, in.gid); err != nil {
		return Result{}, fmt.Errorf("give the tunnel secret to %s: %w", ServiceUser, err)
	}
	tsFile, err := r.TunnelSecret(tsecret)
	if err != nil {
		return Result{}, err
	}
	sh.Files = append(sh.Files, tsFile)
	defaultLink := filepath.Join(in.layout.NginxSitesEnabled(), "default")
	_, defErr := os.Lstat(defaultLink)
	if !in.sharedCurrent(sh) || defErr == nil {
		if defErr == nil && !in.state.DefaultSiteRemoved {
			in.state.DefaultSiteRemoved = true
			if err := in.saveState(); err != nil {
				return Result{}, err
			}
		}
		m := nginx.NewManager(in.layout, ctl, in.log)
		if err := m.WriteShared(ctx, sh); err != nil {
			return Result{}, err
		}
		what = append(what, "vhosts portlama-http, portlama-default, portlama-panel-ip")
	}
	// Portlama's entries in the vhost directories (vhosts, backups, the
	// nginx lock file) are the panel's to rewrite.
	for _, dir := range []string{in.layout.NginxSitesAvailable(), in.layout.NginxSitesEnabled()} {
		n, err := chownPortlamaEntries(dir, in.uid, in.gid)
		if err != nil {
			return Result{}, err
		}
		if n > 0 && len(what) == 0 {
			what = append(what, "vhost owners")
		}
	}
	if len(what) == 0 {
		return done(false, "configuration current, nginx active")
	}
	return done(true, "%s", strings.Join(what, ", "))
}

// chownPortlamaEntries gives the entries of dir named portlama-* or
// .portlama* (links themselves, never their targets) to uid:gid.
func chownPortlamaEntries(dir string, uid, gid int) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "portlama-") && !strings.HasPrefix(e.Name(), ".portlama") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		fi, err := os.Lstat(p)
		if err != nil {
			return n, err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == uid && int(st.Gid) == gid {
			continue
		}
		if err := os.Lchown(p, uid, gid); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// sharedCurrent reports whether every shared file and vhost is on disk as
// rendered, with the right links.
func (in *Installer) sharedCurrent(sh nginx.Shared) bool {
	for _, f := range sh.Files {
		fi, err := os.Stat(f.Path)
		if err != nil || fi.Mode().Perm() != f.Mode || !sameContent(f.Path, f.Content) {
			return false
		}
	}
	for _, v := range sh.Vhosts {
		avail := filepath.Join(in.layout.NginxSitesAvailable(), v.Name)
		if !sameContent(avail, v.Content) {
			return false
		}
		target, err := os.Readlink(filepath.Join(in.layout.NginxSitesEnabled(), v.Name))
		if v.Disabled != (err != nil) || err == nil && target != avail {
			return false
		}
	}
	return true
}

func (in *Installer) unitParams() UnitParams {
	return UnitParams{Binary: in.paths.Binary, User: ServiceUser, Layout: in.layout, HelperSocket: in.paths.Socket}
}

func (in *Installer) units(ctx context.Context) (Result, error) {
	files, err := Units(in.unitParams())
	if err != nil {
		return Result{}, err
	}
	var changed []string
	for _, f := range files {
		ch, err := writeIfChanged(filepath.Join(in.paths.SystemdDir, f.Name), []byte(f.Content), 0o644, 0, 0)
		if err != nil {
			return Result{}, err
		}
		if ch {
			changed = append(changed, f.Name)
			in.changed["unit:"+f.Name] = true
		}
	}
	if len(changed) == 0 {
		return done(false, "%d unit files current", len(files))
	}
	if err := in.sd.DaemonReload(ctx); err != nil {
		return Result{}, err
	}
	return done(true, "wrote %s", strings.Join(changed, ", "))
}

func (in *Installer) services(ctx context.Context) (Result, error) {
	var what []string
	binChanged := in.changed["binary"]

	// The root helper: socket always on; a running helper from the old
	// binary is stopped (the next request starts the new one).
	sock, err := in.sd.Status(ctx, UnitHelperSocket)
	if err != nil {
		return Result{}, err
	}
	if sock.State != system.StateActive || sock.UnitFileState != "enabled" || in.changed["unit:"+UnitHelperSocket] {
		if err := in.sd.Enable(ctx, UnitHelperSocket); err != nil {
			return Result{}, err
		}
		if in.changed["unit:"+UnitHelperSocket] && sock.State == system.StateActive {
			if err := in.sd.Restart(ctx, UnitHelperSocket); err != nil {
				return Result{}, err
			}
		}
		what = append(what, "helper socket")
	}
	if binChanged || in.changed["unit:"+UnitHelper] {
		if h, err := in.sd.Status(ctx, strings.TrimSuffix(UnitHelper, ".service")); err == nil && h.State == system.StateActive {
			if err := in.sd.Stop(ctx, strings.TrimSuffix(UnitHelper, ".service")); err != nil {
				return Result{}, err
			}
		}
	}

	// The panel.
	panel := strings.TrimSuffix(UnitPanel, ".service")
	st, err := in.sd.Status(ctx, panel)
	if err != nil {
		return Result{}, err
	}
	if st.UnitFileState != "enabled" {
		if _, err := in.run(ctx, "systemctl", "enable", UnitPanel); err != nil {
			return Result{}, err
		}
		what = append(what, "panel enabled")
	}
	switch {
	case st.State != system.StateActive:
		if err := in.sd.Start(ctx, panel); err != nil {
			return Result{}, in.unitFailure(ctx, panel, err)
		}
		what = append(what, "panel started")
	case binChanged || in.changed["unit:"+UnitPanel] || in.changed["config"] || in.changed["pki"]:
		if err := in.sd.Restart(ctx, panel); err != nil {
			return Result{}, in.unitFailure(ctx, panel, err)
		}
		what = append(what, "panel restarted")
	}

	// Tunnel and auth servers: enabled by provisioning; an update
	// restarts them.
	for _, u := range []string{UnitTunnel, UnitAuth} {
		name := strings.TrimSuffix(u, ".service")
		st, err := in.sd.Status(ctx, name)
		if err != nil {
			return Result{}, err
		}
		if st.UnitFileState == "enabled" && (binChanged || in.changed["unit:"+u]) {
			if err := in.sd.Restart(ctx, name); err != nil {
				return Result{}, in.unitFailure(ctx, name, err)
			}
			what = append(what, name+" restarted")
		}
	}

	// The renewal timer.
	timer, err := in.sd.Status(ctx, UnitRenewTimer)
	if err != nil {
		return Result{}, err
	}
	if timer.UnitFileState != "enabled" || timer.State != system.StateActive {
		if err := in.sd.Enable(ctx, UnitRenewTimer); err != nil {
			return Result{}, err
		}
		what = append(what, "renewal timer")
	}
	if len(what) == 0 {
		return done(false, "running")
	}
	return done(true, "%s", strings.Join(what, ", "))
}

// unitFailure adds the unit's last log lines to a failed start.
func (in *Installer) unitFailure(ctx context.Context, unit string, err error) error {
	out, _ := in.run(ctx, "journalctl", "-u", unit, "-n", "15", "--no-pager", "-q", "-o", "cat")
	return fmt.Errorf("%w\nlast lines of journalctl -u %s:\n%s", err, unit, strings.TrimSpace(string(out)))
}

// healthTimeout bounds the health check.
const healthTimeout = 45 * time.Second

func (in *Installer) health(ctx context.Context) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	direct := "http://" + in.addrs.Panel + "/api/health"
	if err := waitHealthy(ctx, in.http, direct); err != nil {
		return Result{}, in.unitFailure(context.WithoutCancel(ctx), "portlama-panel", fmt.Errorf("the panel does not answer %s: %w", direct, err))
	}
	client, err := in.adminClient()
	if err != nil {
		return Result{}, err
	}
	port := in.addrs.PanelIPPort
	viaNginx := "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) + "/api/health"
	if err := waitHealthy(ctx, client, viaNginx); err != nil {
		return Result{}, fmt.Errorf("the panel does not answer through nginx with the admin certificate (%s): %w", viaNginx, err)
	}
	return done(false, "panel answers on %s and through nginx on :%d with the admin certificate", in.addrs.Panel, port)
}

// adminClient is an HTTPS client with the admin certificate that trusts
// the IP vhost's self-signed certificate for the relay's IP.
func (in *Installer) adminClient() (*http.Client, error) {
	dir := in.layout.PKIDir()
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, pki.ClientCertFile), filepath.Join(dir, pki.ClientKeyFile))
	if err != nil {
		return nil, fmt.Errorf("load the admin certificate: %w", err)
	}
	self, err := os.ReadFile(filepath.Join(dir, pki.SelfSignedCertFile))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(self) {
		return nil, errors.New("the IP vhost certificate does not parse")
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: in.ip,
	}}}, nil
}

// waitHealthy polls url until it answers 200 {"status":"ok"} or ctx ends.
func waitHealthy(ctx context.Context, client *http.Client, url string) error {
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			var body struct {
				Status string `json:"status"`
			}
			data, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && json.Unmarshal(data, &body) == nil && body.Status == "ok" {
				return nil
			}
			err = fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(data)))
		}
		last = err
		select {
		case <-ctx.Done():
			return last
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (in *Installer) summary() *Summary {
	dir := in.layout.PKIDir()
	p12 := filepath.Join(dir, pki.ClientP12File)
	pw := filepath.Join(dir, pki.P12PasswordFile)
	url := in.addrs.PanelIPURL(in.ip)
	return &Summary{
		IP:              in.ip,
		PanelURL:        url,
		P12Path:         p12,
		P12PasswordPath: pw,
		SCP:             "scp root@" + in.ip + ":" + p12 + " .",
		Next: "Import client.p12 into your browser or keychain with the password from " + pw +
			" (cat it on the server), open " + url + " (accept the self-signed certificate), then enter your domain and e-mail: " +
			"the panel checks DNS and sets up the tunnel server, the login portal and Let's Encrypt certificates.",
	}
}
