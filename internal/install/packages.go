package install

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"

	"github.com/portlama/portlama/internal/system"
)

// Packages the relay needs, and those the hardening tasks need.
var (
	// libnginx-mod-http-js: njs runs the relay's cookie filter.
	basePackages   = []string{"nginx", "libnginx-mod-http-js", "ca-certificates"}
	hardenPackages = []string{"ufw", "fail2ban", "python3-systemd"}
	allPackages    = append(slices.Clone(basePackages), hardenPackages...)
	aptEnvironment = []string{"DEBIAN_FRONTEND=noninteractive", "NEEDRESTART_MODE=a", "LC_ALL=C"}
)

// packageInstalled asks dpkg whether a package is installed.
func (in *Installer) packageInstalled(ctx context.Context, name string) bool {
	out, err := in.run(ctx, "dpkg-query", "-W", "-f=${db:Status-Status}", name)
	return err == nil && strings.TrimSpace(string(out)) == "installed"
}

func (in *Installer) packages(ctx context.Context) (Result, error) {
	want := slices.Clone(basePackages)
	if !in.opts.SkipHarden {
		want = append(want, hardenPackages...)
	}
	var missing []string
	for _, p := range want {
		if !in.packageInstalled(ctx, p) {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return done(false, "present: %s", strings.Join(want, ", "))
	}
	if err := in.apt(ctx, "update", "-q"); err != nil {
		return Result{}, err
	}
	if err := in.apt(ctx, append([]string{"install", "-y", "-q", "--no-install-recommends"}, missing...)...); err != nil {
		return Result{}, err
	}
	for _, p := range missing {
		if !slices.Contains(in.state.Packages, p) {
			in.state.Packages = append(in.state.Packages, p)
		}
	}
	if err := in.saveState(); err != nil {
		return Result{}, err
	}
	return done(true, "installed %s", strings.Join(missing, ", "))
}

func (in *Installer) apt(ctx context.Context, args ...string) error {
	base := in.cmd
	if base == nil {
		base = system.Exec
	}
	withEnv := func(ctx context.Context, argv []string) *exec.Cmd {
		c := base(ctx, argv)
		c.Env = append(os.Environ(), aptEnvironment...)
		return c
	}
	_, err := system.Run(ctx, withEnv, append([]string{"apt-get"}, args...)...)
	return err
}
