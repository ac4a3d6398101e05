package nginx

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/validate"
)

// Vhost is one rendered file for sites-available. Name is the file name
// (portlama-...), FQDN the host it serves (used in error messages).
type Vhost struct {
	Name    string
	FQDN    string
	Content []byte
	// Disabled makes Manager.Apply and WriteShared write the file but keep
	// it out of sites-enabled (a disabled tunnel whose vhost is rewritten,
	// the panel-ip vhost while panel 2FA is on).
	Disabled bool
	// Route is the app's entry in the shared wildcard server's host map
	// (Renderer.WildcardApp): the Manager keeps it next to the vhost as
	// <name>.route and links it into sites-enabled/.routes/ together with
	// the vhost. Nil removes a route the vhost had.
	Route []byte
	// IfChanged writes the file only when its content differs (the shared
	// wildcard server, which every wildcard app change carries): an
	// unchanged file then costs no reload.
	IfChanged bool
}

// TLSFiles are the certificate chain and private key of a vhost.
type TLSFiles struct {
	Cert string // fullchain.pem
	Key  string // privkey.pem
}

// CertFiles returns the files of certificate <name> in the certificate
// store: <certs>/<name>/fullchain.pem and privkey.pem (docs/architecture.md, "Certificate store").
func CertFiles(l config.Layout, name string) TLSFiles {
	return TLSFiles{
		Cert: filepath.Join(l.CertsDir, name, "fullchain.pem"),
		Key:  filepath.Join(l.CertsDir, name, "privkey.pem"),
	}
}

// maxVhostName bounds vhost file names (portlama-site-<uuid> is 50).
const maxVhostName = 120

// ValidVhostName checks a vhost file name: portlama-[a-z0-9-]+, at most 120
// characters, no trailing hyphen.
func ValidVhostName(name string) error {
	const prefix = "portlama-"
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok || rest == "" || len(name) > maxVhostName || strings.HasSuffix(name, "-") {
		return fmt.Errorf("invalid vhost name %q: must be portlama- followed by lower-case letters, digits and hyphens", name)
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9') && c != '-' {
			return fmt.Errorf("invalid vhost name %q: must be portlama- followed by lower-case letters, digits and hyphens", name)
		}
	}
	return nil
}

// safePath checks a file system path that is written into nginx config: an
// absolute, clean path of characters that need no quoting in nginx.
func safePath(what, p string) (string, error) {
	if p == "" || !filepath.IsAbs(p) || filepath.Clean(p) != p || strings.Contains(p, "..") {
		return "", fmt.Errorf("%s path %q must be absolute and clean", what, p)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("/._-+@%,=:~", c) >= 0:
		default:
			return "", fmt.Errorf("%s path %q contains a character not allowed in nginx config", what, p)
		}
	}
	return p, nil
}

// backendAddr checks a backend address "ip:port" and returns it in
// canonical form.
func backendAddr(what, a string) (string, error) {
	ap, err := netip.ParseAddrPort(a)
	if err != nil || ap.Port() == 0 || ap.Addr().Zone() != "" {
		return "", fmt.Errorf("%s address %q must be ip:port", what, a)
	}
	return ap.String(), nil
}

// listenSpec builds the address part of a listen directive.
func listenSpec(what, host string, port int) (string, error) {
	if port < 1 || port > 65535 {
		return "", fmt.Errorf("%s port %d out of range", what, port)
	}
	if host == "" {
		return strconv.Itoa(port), nil
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.Zone() != "" {
		return "", fmt.Errorf("nginx listen host %q must be an IP address", host)
	}
	return netip.AddrPortFrom(a, uint16(port)).String(), nil
}

func checkSecret(s string) error {
	if validate.Token(s) != nil {
		return errors.New("proxy secret must be 64 lower-case hex characters")
	}
	return nil
}

// env is the validated, template-ready form of a Renderer.
type env struct {
	Snippets    string
	WWW         string
	ACMEWebroot string
	CACert      string
	CRL         string

	HTTPListen    string
	HTTPSListen   string
	PanelIPListen string
	// HTTPSPortSuffix is "" for port 443, else ":<port>", for redirects and
	// X-Original-URL.
	HTTPSPortSuffix string

	Panel  string
	Auth   string
	Tunnel string
}

func newEnv(l config.Layout, a config.Addrs) (env, error) {
	var e env
	var err error
	if e.Snippets, err = safePath("snippets", l.NginxSnippets()); err != nil {
		return e, err
	}
	if e.WWW, err = safePath("www", l.WWWDir); err != nil {
		return e, err
	}
	if e.ACMEWebroot, err = safePath("ACME webroot", l.ACMEWebroot); err != nil {
		return e, err
	}
	if e.CACert, err = safePath("CA certificate", filepath.Join(l.PKIDir(), "ca.crt")); err != nil {
		return e, err
	}
	if e.CRL, err = safePath("CRL", filepath.Join(l.PKIDir(), "crl.pem")); err != nil {
		return e, err
	}
	if e.HTTPListen, err = listenSpec("HTTP", a.NginxListenHost, a.HTTPPort); err != nil {
		return e, err
	}
	if e.HTTPSListen, err = listenSpec("HTTPS", a.NginxListenHost, a.HTTPSPort); err != nil {
		return e, err
	}
	if e.PanelIPListen, err = listenSpec("panel IP", a.NginxListenHost, a.PanelIPPort); err != nil {
		return e, err
	}
	if a.HTTPSPort != 443 {
		e.HTTPSPortSuffix = ":" + strconv.Itoa(a.HTTPSPort)
	}
	if e.Panel, err = backendAddr("panel", a.Panel); err != nil {
		return e, err
	}
	if e.Auth, err = backendAddr("auth server", a.Auth); err != nil {
		return e, err
	}
	if e.Tunnel, err = backendAddr("tunnel server", a.Tunnel); err != nil {
		return e, err
	}
	return e, nil
}

func checkTLS(t TLSFiles) (TLSFiles, error) {
	c, err := safePath("certificate", t.Cert)
	if err != nil {
		return t, err
	}
	k, err := safePath("private key", t.Key)
	if err != nil {
		return t, err
	}
	return TLSFiles{Cert: c, Key: k}, nil
}

// upstreamName derives an nginx upstream name from a vhost kind and a
// validated subdomain. Subdomains contain no '_', so mapping '-' to '_'
// keeps names unique.
func upstreamName(kind, sub string) string {
	return "portlama_" + kind + "_" + strings.ReplaceAll(sub, "-", "_")
}
