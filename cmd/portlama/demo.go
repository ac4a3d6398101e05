package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/portlama/portlama/internal/demo"
)

func newDemoCmd() *cobra.Command {
	var o demo.Options
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole relay locally on loopback, with a sample app behind a tunnel",
		Long: `Runs a whole relay on this machine, on 127.0.0.1 and unprivileged ports, with all
state in one directory: nginx, the panel, then the onboarding a user clicks through
(domain, DNS check against a local DNS server, provisioning of the tunnel server,
the auth server, certificates and vhosts), then a sample web app behind a tunnel of
an agent that enrolls with a one-time token. With --acme (the default) the
certificates are real ACME certificates from a local Pebble (Let's Encrypt's test
CA); --acme=false issues them from the relay's own CA, offline. It prints each
step and how to reach each part, and writes demo.json. Ctrl-C stops everything.`,
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	f.StringVar(&o.Dir, "dir", defaultDemoDir(), "directory for all of the demo's state")
	f.IntVar(&o.HTTPSPort, "https-port", 8443, "nginx HTTPS port for the domain vhosts (apps, login portal)")
	f.IntVar(&o.PanelPort, "panel-port", 9292, "nginx port of the admin panel by IP (mTLS)")
	f.IntVar(&o.HTTPPort, "http-port", 8080, "nginx HTTP port (redirects to HTTPS)")
	f.StringVar(&o.AgentBinary, "agent-binary", "", "portlama-agent binary (default: next to this binary)")
	f.BoolVar(&o.ACME, "acme", true, "get the certificates from a local Pebble over ACME (false: from the relay CA, offline)")
	f.BoolVar(&o.Wildcard, "wildcard", false, "with --acme: one DNS-01 wildcard certificate through a local stand-in of DigitalOcean's DNS API")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if _, err := exec.LookPath("nginx"); err != nil {
			if _, err := os.Stat("/usr/sbin/nginx"); err != nil {
				return fmt.Errorf("nginx is not installed; install it with `sudo apt-get install nginx` (Debian/Ubuntu), or run `make demo`, which does that for you")
			}
		}
		o.Logger = newDemoLogger(o.Dir)
		o.Version = version
		o.Sample = true
		out := cmd.OutOrStdout()
		o.Progress = func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
		fmt.Fprintf(out, "Starting the Portlama demo in %s ...\n", o.Dir)
		st, err := demo.Start(cmd.Context(), o)
		if err != nil {
			return err
		}
		defer st.Stop()
		printDemo(out, st.Info)
		if err := st.Wait(cmd.Context()); err != nil {
			return err
		}
		fmt.Fprintln(out, "\nStopping the demo ...")
		return nil
	}
	return cmd
}

// newDemoLogger writes the components' messages to demo.log in the demo
// directory: the terminal shows the steps a user sees.
func newDemoLogger(dir string) *slog.Logger {
	if err := os.MkdirAll(dir, 0o700); err == nil {
		if f, err := os.OpenFile(filepath.Join(dir, "demo.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err == nil {
			return slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelInfo}))
		}
	}
	return newLogger()
}

func defaultDemoDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "portlama-demo")
	}
	return filepath.Join(os.TempDir(), "portlama-demo")
}

func printDemo(w io.Writer, i demo.Info) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	p("")
	p("Portlama demo is running. Everything is in %s (summary: demo.json).", i.Dir)
	p("")
	p("Certificates: %s (trust %s).", map[string]string{"pebble": "real ACME certificates from the local Pebble", "relay-ca": "issued by the relay CA"}[i.Issuer], i.CACert)
	p("")
	p("Admin panel (mTLS, admin client certificate):")
	p("  curl --cacert %s --cert %s --key %s %s/api/health", i.IPCert, i.AdminCert, i.AdminKey, i.PanelURL)
	p("  Browser: import %s (password %s), then open %s", i.AdminP12, i.AdminP12Password, i.PanelURL)
	p("")
	p("Agent %q enrolled with a one-time token and tunnels the sample app (port %d).", i.AgentLabel, i.AppPort)
	if i.PortalAdmin != nil {
		p("")
		p("Provisioning created the portal user %s with password %s (shown once; give it a TOTP via Users -> Reset TOTP).", i.PortalAdmin.Username, i.PortalAdmin.Password)
	}
	if i.User != nil {
		p("")
		p("Login portal: %s   (curl: --resolve %s)", i.AuthURL, i.AuthResolve)
		p("  user %s, password %s, TOTP secret %s", i.User.Username, i.User.Password, i.User.TOTPSecret)
		p("  a current 6-digit code: oathtool --totp -b %s   (apt install oathtool; or add the secret to an authenticator app)", i.User.TOTPSecret)
	}
	for _, a := range i.Apps {
		if a.Access == "public" || i.User == nil {
			continue
		}
		curl := fmt.Sprintf("curl -s --cacert %s --resolve %s --resolve %s", i.CACert, i.AuthResolve, a.Resolve)
		auth := strings.TrimSuffix(i.AuthURL, "/")
		p("")
		p("The app behind two-factor login (%s): %s", a.Access, a.URL)
		p("  without a session it redirects to the portal:  %s -I %s", curl, a.URL)
		p("  sign in (password, then code) and fetch it:")
		p(`  %s -c jar -H 'Content-Type: application/json' -d '{"username":"%s","password":"%s"}' %s/api/firstfactor`, curl, i.User.Username, i.User.Password, auth)
		p(`  %s -b jar -c jar -H 'Content-Type: application/json' -d "{\"token\":\"$(oathtool --totp -b %s)\"}" %s/api/secondfactor/totp`, curl, i.User.TOTPSecret, auth)
		p("  %s -b jar %s", curl, a.URL)
	}
	for _, site := range i.Sites {
		p("")
		p("A static site, served by nginx from the relay's disk (portlama-agent sites deploy updates it):")
		p("  curl --cacert %s --resolve %s %s", i.CACert, site.Resolve, site.URL)
	}
	p("")
	p("Press Ctrl-C to stop everything. The sample app through nginx -> tunnel -> agent:")
	for _, a := range i.Apps {
		if a.Access == "public" {
			p("  curl --cacert %s --resolve %s %s", i.CACert, a.Resolve, a.URL)
		}
	}
}
