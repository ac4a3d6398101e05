package browser

import (
	"testing"

	"github.com/portlama/portlama/internal/onboarding/dnstest"
	"github.com/portlama/portlama/internal/relaytest"
)

// freshRelay is a relay as `portlama install` leaves it (FRESH), started
// by the harness, with an offline DNS server that has no records yet: the
// test adds them to walk onboarding's DNS check.
type freshRelay struct {
	PanelURL string
	Client   ClientCert
	DNS      *dnstest.Server
}

func startFreshRelay(t *testing.T) *freshRelay {
	t.Helper()
	st := relaytest.NewStack(t, relaytest.Fresh(), relaytest.WithEmptyDNS())
	return &freshRelay{
		PanelURL: st.Info.PanelURL,
		Client: ClientCert{P12: st.Info.AdminP12, Password: st.Info.AdminP12Password,
			Trust: []string{st.Info.RelayCACert, st.Info.IPCert}},
		DNS: st.DNS,
	}
}
