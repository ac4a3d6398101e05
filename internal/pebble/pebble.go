// Package pebble runs Let's Encrypt's test CA (Pebble) and its DNS test
// server (pebble-challtestsrv) on loopback, so the demo and the tests get
// real ACME certificates through the relay's own ACME client: http-01 is
// validated by Pebble connecting to nginx's HTTP port, DNS-01 by Pebble
// asking the DNS test server for the TXT record. Every name resolves to
// 127.0.0.1 in that DNS server, which also answers the panel's onboarding
// DNS check.
//
// Pebble keeps its state in memory: after Restart its accounts are gone
// (the ACME client registers again) and it signs with a new root (Roots).
// Its own HTTPS listener uses a certificate made here by a throwaway CA
// (CACertFile), which the ACME client trusts.
package pebble

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/portlama/portlama/internal/ports"
	"github.com/portlama/portlama/internal/supervisor"
)

// Profiles Pebble offers: "default" (90 days, like Let's Encrypt) and
// certificates that are due for renewal (20 days) or not (60 days). Pebble
// picks a random profile for an order that names none, so the relay's
// ACME client is configured to ask for ProfileDefault.
const (
	ProfileDefault = "default"
	ProfileShort   = "short"
	ProfileSixty   = "sixty"
)

// Config configures the servers.
type Config struct {
	// Dir holds the configuration, the TLS files and the logs.
	Dir string
	// HTTPPort is where Pebble's validator connects for http-01: the
	// relay's nginx HTTP port.
	HTTPPort int
	// Pebble and ChallTestSrv are the binaries; "" finds them (Find).
	Pebble, ChallTestSrv string
	Logger               *slog.Logger
}

// Server is a running Pebble with its DNS test server.
type Server struct {
	// DirectoryURL is the ACME directory (https://127.0.0.1:<port>/dir).
	DirectoryURL string
	// CACertFile is the PEM CA that signed Pebble's HTTPS certificate.
	CACertFile string
	// DNSAddr is the DNS server (host:port, UDP and TCP) for resolvers:
	// challtestsrv's records, and SOA for the zones added with AddZone.
	DNSAddr string

	cfg        Config
	sup        *supervisor.Supervisor
	front      *dnsFront
	challDNS   string // challtestsrv's own DNS address
	mgmt       string // pebble management (roots)
	challMgmt  string // challtestsrv management
	httpClient *http.Client
}

// Find returns the path of a Pebble binary: in PATH, GOBIN, or
// $HOME/go/bin (where `go install` puts it).
func Find(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	var dirs []string
	if d := os.Getenv("GOBIN"); d != "" {
		dirs = append(dirs, d)
	}
	if d := os.Getenv("GOPATH"); d != "" {
		dirs = append(dirs, filepath.Join(d, "bin"))
	}
	if h, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(h, "go", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not installed; install it with scripts/deps.sh (go install github.com/letsencrypt/pebble/v2/cmd/%s@v2.10.3)", name, name)
}

// Start starts challtestsrv and Pebble and returns once both answer.
func Start(ctx context.Context, cfg Config) (_ *Server, err error) {
	if cfg.HTTPPort <= 0 {
		return nil, errors.New("pebble: HTTPPort is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	for _, b := range []struct {
		path *string
		name string
	}{{&cfg.Pebble, "pebble"}, {&cfg.ChallTestSrv, "pebble-challtestsrv"}} {
		if *b.path == "" {
			if *b.path, err = Find(b.name); err != nil {
				return nil, err
			}
		}
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, err
	}
	ports, err := ports.Free(4)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:          cfg,
		sup:          supervisor.New(cfg.Logger),
		DirectoryURL: fmt.Sprintf("https://127.0.0.1:%d/dir", ports[0]),
		mgmt:         fmt.Sprintf("https://127.0.0.1:%d", ports[1]),
		challDNS:     fmt.Sprintf("127.0.0.1:%d", ports[2]),
		challMgmt:    fmt.Sprintf("http://127.0.0.1:%d", ports[3]),
		CACertFile:   filepath.Join(cfg.Dir, "tls-ca.pem"),
	}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	certFile, keyFile := filepath.Join(cfg.Dir, "tls-cert.pem"), filepath.Join(cfg.Dir, "tls-key.pem")
	pool, err := WriteTLS(s.CACertFile, certFile, keyFile)
	if err != nil {
		return nil, err
	}
	s.httpClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	conf := map[string]any{"pebble": map[string]any{
		"listenAddress":                  strings.TrimSuffix(strings.TrimPrefix(s.DirectoryURL, "https://"), "/dir"),
		"managementListenAddress":        strings.TrimPrefix(s.mgmt, "https://"),
		"certificate":                    certFile,
		"privateKey":                     keyFile,
		"httpPort":                       cfg.HTTPPort,
		"tlsPort":                        5001, // tls-alpn-01 is not used
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
		"retryAfter":                     map[string]int{"authz": 1, "order": 1},
		"keyAlgorithm":                   "ecdsa",
		"profiles": map[string]any{
			ProfileDefault: map[string]any{"description": "90 days", "validityPeriod": 90 * 86400},
			ProfileShort:   map[string]any{"description": "20 days: due for renewal", "validityPeriod": 20 * 86400},
			ProfileSixty:   map[string]any{"description": "60 days", "validityPeriod": 60 * 86400},
		},
	}}
	data, _ := json.MarshalIndent(conf, "", "  ")
	confFile := filepath.Join(cfg.Dir, "pebble-config.json")
	if err := os.WriteFile(confFile, data, 0o600); err != nil {
		return nil, err
	}
	tcpReady := func(addr string) func(context.Context) error {
		return func(ctx context.Context) error {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", addr)
			if err == nil {
				c.Close()
			}
			return err
		}
	}
	if err := s.sup.Add(supervisor.Unit{
		Name: "challtestsrv",
		Argv: []string{cfg.ChallTestSrv,
			"-dnsserver", s.challDNS, "-management", strings.TrimPrefix(s.challMgmt, "http://"),
			"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "",
			"-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""},
		Log:   filepath.Join(cfg.Dir, "challtestsrv.log"),
		Ready: tcpReady(strings.TrimPrefix(s.challMgmt, "http://")),
	}); err != nil {
		return nil, err
	}
	if err := s.sup.Add(supervisor.Unit{
		Name: "pebble",
		Argv: []string{cfg.Pebble, "-config", confFile, "-dnsserver", s.challDNS, "-strict=false"},
		// No random validation delays; no rejected nonces (they make the
		// client retry and the tests slow and flaky).
		Env:   []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"},
		Log:   filepath.Join(cfg.Dir, "pebble.log"),
		Ready: s.directoryReady,
	}); err != nil {
		return nil, err
	}
	if s.front, s.DNSAddr, err = startDNSFront(s.challDNS); err != nil {
		return nil, err
	}
	for _, u := range []string{"challtestsrv", "pebble"} {
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err := s.sup.Start(sctx, u)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("pebble: %w", err)
		}
	}
	return s, nil
}

func (s *Server) directoryReady(ctx context.Context) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.DirectoryURL, nil)
	resp, err := s.httpClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("directory: %s", resp.Status)
	}
	return nil
}

// StopCA stops Pebble itself (the DNS server keeps running): the ACME
// server is unreachable until StartCA.
func (s *Server) StopCA(ctx context.Context) error { return s.sup.Stop(ctx, "pebble") }

// StartCA starts Pebble again after StopCA, with no accounts and a new root.
func (s *Server) StartCA(ctx context.Context) error { return s.sup.Start(ctx, "pebble") }

// Stop stops both servers.
func (s *Server) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.sup.StopAll(ctx)
	if s.front != nil {
		s.front.close()
	}
}

// AddZone makes zone a DNS zone (its SOA is answered), as a domain at a
// DNS provider is.
func (s *Server) AddZone(zone string) { s.front.addZone(zone) }

// Roots returns Pebble's current root certificate (PEM), which issued
// certificates chain to.
func (s *Server) Roots(ctx context.Context) ([]byte, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.mgmt+"/roots/0", nil)
	resp, err := s.httpClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("pebble roots: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("pebble roots: %s %v", resp.Status, err)
	}
	return b, nil
}

// RootPool returns Roots as a certificate pool.
func (s *Server) RootPool(ctx context.Context) (*x509.CertPool, error) {
	pemData, err := s.Roots(ctx)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		return nil, errors.New("pebble roots: no certificate")
	}
	return pool, nil
}

func (s *Server) chall(ctx context.Context, path string, body any) error {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.challMgmt+path, bytes.NewReader(b))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("challtestsrv %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("challtestsrv %s: %s %s", path, resp.Status, msg)
	}
	return nil
}

func fqdn(host string) string { return strings.TrimSuffix(host, ".") + "." }

// SetTXT sets the TXT record of host (DNS-01 answers).
func (s *Server) SetTXT(ctx context.Context, host, value string) error {
	return s.chall(ctx, "/set-txt", map[string]string{"host": fqdn(host), "value": value})
}

// ClearTXT removes the TXT record of host.
func (s *Server) ClearTXT(ctx context.Context, host string) error {
	return s.chall(ctx, "/clear-txt", map[string]string{"host": fqdn(host)})
}

// SetA makes host resolve to the given addresses instead of 127.0.0.1.
func (s *Server) SetA(ctx context.Context, host string, addrs ...string) error {
	return s.chall(ctx, "/add-a", map[string]any{"host": fqdn(host), "addresses": addrs})
}

// ClearA makes host resolve to 127.0.0.1 again.
func (s *Server) ClearA(ctx context.Context, host string) error {
	return s.chall(ctx, "/clear-a", map[string]string{"host": fqdn(host)})
}

// WriteTLS makes a throwaway CA and a certificate for 127.0.0.1 and
// localhost signed by it, for Pebble's HTTPS listeners (the lab runs Pebble
// inside its droplet with them).
func WriteTLS(caFile, certFile, keyFile string) (*x509.CertPool, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Portlama test ACME server CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(10 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(10 * 365 * 24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		path string
		typ  string
		der  []byte
		mode os.FileMode
	}{{caFile, "CERTIFICATE", caDER, 0o644}, {certFile, "CERTIFICATE", der, 0o644}, {keyFile, "EC PRIVATE KEY", keyDER, 0o600}} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), f.mode); err != nil {
			return nil, err
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, nil
}
