package acme

import (
	"fmt"
	"strconv"
)

// Unit names of the daily renewal (contract §11.1).
const (
	RenewTimerUnit   = "portlama-certs-renew.timer"
	RenewServiceUnit = "portlama-certs-renew.service"
)

// RenewUnits returns the systemd service and timer that run
// `<binary> certs renew` daily. This is the one place their text lives; the
// installer writes them to /etc/systemd/system.
func RenewUnits(binary string) (service, timer string, err error) {
	if binary == "" || binary[0] != '/' {
		return "", "", fmt.Errorf("renewal unit: binary %q must be an absolute path", binary)
	}
	for _, c := range binary {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '/' || c == '-' || c == '_' || c == '.') {
			return "", "", fmt.Errorf("renewal unit: binary path %q contains %q", binary, c)
		}
	}
	service = `[Unit]
Description=Portlama: renew TLS certificates that expire within 30 days
Documentation=https://github.com/portlama/portlama/blob/main/docs/operations.md
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
ExecStart=` + binary + ` certs renew
# Writes the certificate store and reloads nginx through the relay's
# privileged helper; runs as root like the installer.
PrivateTmp=true
ProtectHome=true
NoNewPrivileges=true
`
	timer = `[Unit]
Description=Portlama: daily TLS certificate renewal

[Timer]
OnCalendar=daily
RandomizedDelaySec=` + strconv.Itoa(3600) + `
Persistent=true
Unit=` + RenewServiceUnit + `

[Install]
WantedBy=timers.target
`
	return service, timer, nil
}
