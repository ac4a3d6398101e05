package tunnel

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"github.com/portlama/portlama/internal/pki"
)

// Headers nginx's tunnel vhost sets on every request to the tunnel server,
// overwriting whatever the client sent (vhost-tunnel,
// portlama-tunnel-secret.conf).
const (
	// HeaderSecret carries the tunnel proxy secret (ProxySecretFileName):
	// proof that the request came through nginx.
	HeaderSecret = "X-Portlama-Tunnel-Secret"
	// HeaderClientVerify is nginx's $ssl_client_verify ("SUCCESS").
	HeaderClientVerify = "X-Portlama-Tunnel-Client-Verify"
	// HeaderClientDN is nginx's $ssl_client_s_dn, e.g.
	// "CN=agent:home,O=Portlama".
	HeaderClientDN = "X-Portlama-Tunnel-Client-DN"
)

var (
	errNoProof = errors.New("the request did not come through the relay's nginx")
	errNoCert  = errors.New("a verified agent client certificate is required")
)

// identify checks that h carries the proof secret (constant-time) and a
// verified agent certificate and returns the certificate's agent label.
// Every header must appear exactly once.
func identify(h http.Header, secret string) (string, error) {
	got, ok := single(h, HeaderSecret)
	if !ok || secret == "" || subtle.ConstantTimeCompare([]byte(got), []byte(secret)) != 1 {
		return "", errNoProof
	}
	if v, ok := single(h, HeaderClientVerify); !ok || v != "SUCCESS" {
		return "", errNoCert
	}
	dn, ok := single(h, HeaderClientDN)
	if !ok {
		return "", errNoCert
	}
	cn, ok := pki.SubjectCN(dn)
	if !ok {
		return "", errNoCert
	}
	label, ok := strings.CutPrefix(cn, pki.AgentCN(""))
	if !ok || !ValidLabel(label) {
		return "", errNoCert
	}
	return label, nil
}

func single(h http.Header, name string) (string, bool) {
	v := h.Values(name)
	if len(v) != 1 {
		return "", false
	}
	return v[0], true
}
