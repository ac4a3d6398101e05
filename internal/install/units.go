package install

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/nginx"
	"github.com/portlama/portlama/internal/system"
	"github.com/portlama/portlama/internal/validate"
)

// Unit file names the installer writes into /etc/systemd/system.
const (
	UnitPanel        = "portlama-panel.service"
	UnitTunnel       = "portlama-tunnel.service"
	UnitAuth         = "portlama-auth.service"
	UnitHelperSocket = "portlama-helper.socket"
	UnitHelper       = "portlama-helper.service"
	UnitRenew        = "portlama-renew.service"
	UnitRenewTimer   = system.UnitRenewTimer
	// NginxDropIn is the drop-in for the distribution's nginx.service.
	NginxDropIn = "nginx.service.d/portlama.conf"
)

// UnitFile is one rendered unit file: its path relative to the systemd
// directory and its content.
type UnitFile struct {
	Name    string
	Content string
}

// UnitParams are the values the units are rendered with.
type UnitParams struct {
	Binary string // /usr/local/bin/portlama
	User   string // portlama
	Layout config.Layout
	// HelperSocket is the root helper's socket (privilege.DefaultSocket).
	HelperSocket string
}

// hardening is what every unprivileged Portlama service gets (measured
// with systemd-analyze security; docs/security.md has the figures).
const hardening = `NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RemoveIPC=yes
UMask=0077
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged
SystemCallErrorNumber=EPERM
`

// loopbackOnly confines a daemon that only ever talks to 127.0.0.1
// (nginx in front, the tunnel's relay ports behind): no other peer, no
// other users' ids, only its own processes in /proc.
const loopbackOnly = `PrivateUsers=yes
ProcSubset=pid
IPAddressDeny=any
IPAddressAllow=localhost
`

func checkUnitParams(p UnitParams) error {
	for what, v := range map[string]string{"binary": p.Binary, "data dir": p.Layout.DataDir, "www dir": p.Layout.WWWDir, "nginx dir": p.Layout.NginxDir, "helper socket": p.HelperSocket} {
		if !filepath.IsAbs(v) || filepath.Clean(v) != v || strings.ContainsAny(v, " \t\n\"'\\%$;") {
			return fmt.Errorf("unit %s path %q must be a plain absolute path", what, v)
		}
	}
	if err := validate.SystemUser(p.User); err != nil {
		return fmt.Errorf("service user: %w", err)
	}
	return nil
}

// Units renders the relay's unit files and the nginx.service drop-in.
func Units(p UnitParams) ([]UnitFile, error) {
	if err := checkUnitParams(p); err != nil {
		return nil, err
	}
	l := p.Layout
	bin := p.Binary
	service := func(desc, after, exec, extra string) string {
		return "# Managed by portlama install.\n[Unit]\nDescription=" + desc + "\nDocumentation=https://github.com/portlama/portlama\nAfter=" + after + "\n\n" +
			"[Service]\nType=exec\nExecStart=" + exec + "\nUser=" + p.User + "\nGroup=" + p.User + "\nRestart=on-failure\nRestartSec=2s\n" +
			// reload re-reads the state files (the process handles SIGHUP).
			"ExecReload=/bin/kill -HUP $MAINPID\n" +
			extra + hardening + "\n[Install]\nWantedBy=multi-user.target\n"
	}
	panel := service("Portlama panel (admin API behind nginx, 127.0.0.1:3100)", "network.target nginx.service",
		bin+" panel",
		// The panel writes its state, the vhosts (the root helper lints
		// them before nginx reads them), the web roots; it reads the
		// journal for the live logs and reaches ACME and DNS servers.
		"StateDirectory=portlama\nStateDirectoryMode=0700\n"+
			"ReadWritePaths="+strings.Join([]string{l.DataDir, l.WWWDir, l.NginxSitesAvailable(), l.NginxSitesEnabled()}, " ")+"\n"+
			"SupplementaryGroups=systemd-journal\n")
	tunnel := service("Portlama tunnel server (agents' reverse tunnels, 127.0.0.1:9090)", "network.target",
		bin+" tunnel-server",
		"ReadWritePaths="+l.TunnelDir()+"\n"+loopbackOnly)
	auth := service("Portlama auth server (login portal and forward auth, 127.0.0.1:9091)", "network.target",
		bin+" auth-server",
		"ReadWritePaths="+l.AuthDir()+"\n"+loopbackOnly)

	helperSocket := "# Managed by portlama install.\n[Unit]\nDescription=Portlama root helper socket (fixed privileged actions for the panel)\n\n" +
		"[Socket]\nListenStream=" + p.HelperSocket + "\nSocketUser=root\nSocketGroup=" + p.User + "\nSocketMode=0660\nDirectoryMode=0755\nAccept=no\n\n" +
		"[Install]\nWantedBy=sockets.target\n"
	// The helper runs as root but only ever runs nginx -t and systemctl
	// for the fixed list in package privilege; nginx -t reads the relay's
	// keys (owned by portlama, hence the DAC capabilities), opens its log
	// files and binds the listen addresses to test them.
	helper := "# Managed by portlama install.\n[Unit]\nDescription=Portlama root helper (started on demand by portlama-helper.socket)\nRequires=" + UnitHelperSocket + "\nAfter=" + UnitHelperSocket + "\n\n" +
		"[Service]\nType=exec\nExecStart=" + bin + " helper serve\n" +
		"CapabilityBoundingSet=CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_CHOWN CAP_FOWNER CAP_NET_BIND_SERVICE\n" +
		"NoNewPrivileges=yes\nProtectSystem=strict\nReadWritePaths=/var/log/nginx /var/lib/nginx /run " + nginx.CheckedSitesDir(l) + "\nProtectHome=yes\nPrivateTmp=yes\nPrivateDevices=yes\n" +
		"ProtectKernelTunables=yes\nProtectKernelModules=yes\nProtectKernelLogs=yes\nProtectControlGroups=yes\nProtectClock=yes\nProtectHostname=yes\n" +
		"RestrictNamespaces=yes\nRestrictRealtime=yes\nRestrictSUIDSGID=yes\nLockPersonality=yes\nMemoryDenyWriteExecute=yes\n" +
		"RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\nSystemCallArchitectures=native\nSystemCallFilter=@system-service\nSystemCallErrorNumber=EPERM\n" +
		"PrivateNetwork=no\nIPAddressDeny=any\nUMask=0022\n"
	renew := "# Managed by portlama install.\n[Unit]\nDescription=Portlama certificate and CRL renewal\nAfter=network-online.target\nWants=network-online.target\n\n" +
		"[Service]\nType=oneshot\nExecStart=" + bin + " certs renew\nUser=" + p.User + "\nGroup=" + p.User + "\n" +
		"ReadWritePaths=" + l.DataDir + " " + l.WWWDir + "\n" + hardening
	timer := "# Managed by portlama install.\n[Unit]\nDescription=Daily Portlama certificate and CRL renewal\n\n" +
		"[Timer]\nOnCalendar=daily\nRandomizedDelaySec=1h\nPersistent=true\n\n[Install]\nWantedBy=timers.target\n"
	// nginx reads the panel-written vhosts as root: the lint gate runs
	// before every start and reload, ahead of the distribution's own
	// nginx -t (which already opens the files a config names).
	dropIn := "# Managed by portlama install.\n[Service]\n" +
		"ExecStartPre=\nExecStartPre=" + bin + " helper nginx-check\nExecStartPre=/usr/sbin/nginx -t -q -g 'daemon on; master_process on;'\n" +
		"ExecReload=\nExecReload=" + bin + " helper nginx-check\nExecReload=/usr/sbin/nginx -g 'daemon on; master_process on;' -s reload\n" +
		"Restart=on-failure\nRestartSec=2s\n"
	return []UnitFile{
		{UnitPanel, panel},
		{UnitTunnel, tunnel},
		{UnitAuth, auth},
		{UnitHelperSocket, helperSocket},
		{UnitHelper, helper},
		{UnitRenew, renew},
		{UnitRenewTimer, timer},
		{NginxDropIn, dropIn},
	}, nil
}
