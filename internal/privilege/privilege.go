// Package privilege is the relay's root helper: the only way the
// unprivileged panel (system user portlama) gets anything done as root.
//
// The helper (`portlama helper serve`, unit portlama-helper.service) is
// socket-activated on /run/portlama/helper.sock (root:portlama, 0660). A
// caller sends one JSON request per connection and gets one JSON response.
// The requests it carries out are a fixed list, checked in Check:
//
//	nginx-test                     lint and publish the panel-written vhosts
//	                               (nginx.Publish), then nginx -t
//	nginx-reload                   publish, then systemctl reload nginx
//	service <action> <unit>        start|stop|restart|reload of nginx,
//	                               portlama-tunnel, portlama-auth, portlama-panel
//	                               (never stop portlama-panel)
//	enable <unit>                  systemctl enable --now portlama-tunnel|portlama-auth
//
// Nothing else: no arguments reach a command except these fixed unit names.
// Callers must be root, or the portlama user in one of the allowed units
// (portlama-panel.service, portlama-renew.service), read from the peer's
// credentials (SO_PEERCRED) and cgroup. Why a helper rather than sudoers:
// docs/security.md.
package privilege

import (
	"errors"
	"fmt"
	"slices"

	"github.com/portlama/portlama/internal/system"
)

// DefaultSocket is where portlama-helper.socket listens.
const DefaultSocket = "/run/portlama/helper.sock"

// Verbs.
const (
	VerbNginxTest   = "nginx-test"
	VerbNginxReload = "nginx-reload"
	VerbService     = "service"
	VerbEnable      = "enable"
)

// Request is one request to the helper.
type Request struct {
	Verb   string `json:"verb"`
	Action string `json:"action,omitempty"`
	Unit   string `json:"unit,omitempty"`
}

// Response is the helper's answer. Output is the command's output (nginx
// -t's text, systemctl's error), Error what went wrong.
type Response struct {
	OK     bool   `json:"ok"`
	Output string `json:"output,omitempty"`
	Error  string `json:"error,omitempty"`
}

// enableUnits are the units provisioning enables (the renewal timer is
// enabled by the installer already; provisioning's Enable is a no-op then).
var enableUnits = []string{system.UnitTunnel, system.UnitAuth, system.UnitRenewTimer}

// ErrRefused is wrapped by every refusal of a request or a caller.
var ErrRefused = errors.New("refused by the root helper")

// Check admits exactly the requests of the fixed list.
func Check(r Request) error {
	switch r.Verb {
	case VerbNginxTest, VerbNginxReload:
		if r.Action != "" || r.Unit != "" {
			return fmt.Errorf("%w: %s takes no arguments", ErrRefused, r.Verb)
		}
		return nil
	case VerbService:
		if _, err := system.ParseAction(r.Action); err != nil {
			return fmt.Errorf("%w: %v", ErrRefused, err)
		}
		if !slices.Contains(system.ManagedServices, r.Unit) {
			return fmt.Errorf("%w: %q is not one of the relay's services", ErrRefused, r.Unit)
		}
		if r.Unit == system.UnitPanel && r.Action == string(system.ActionStop) {
			return fmt.Errorf("%w: the panel is not stopped through the helper (it would end the session asking)", ErrRefused)
		}
		return nil
	case VerbEnable:
		if r.Action != "" || !slices.Contains(enableUnits, r.Unit) {
			return fmt.Errorf("%w: only portlama-tunnel and portlama-auth are enabled through the helper", ErrRefused)
		}
		return nil
	}
	return fmt.Errorf("%w: unknown request %q", ErrRefused, r.Verb)
}
