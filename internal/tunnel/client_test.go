package tunnel

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/testutil"
)

type testPKI struct {
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	pool   *x509.CertPool
	server tls.Certificate
	client tls.Certificate
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &testPKI{ca: ca, caKey: caKey, pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	p.server = p.issue(t, 2, "tunnel.test", x509.ExtKeyUsageServerAuth, []string{"tunnel.test"})
	p.client = p.issue(t, 3, "agent:home", x509.ExtKeyUsageClientAuth, nil)
	return p
}

func (p *testPKI) issue(t *testing.T, serial int64, cn string, usage x509.ExtKeyUsage, dns []string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		DNSNames:     dns,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// tlsFront stands in for nginx on tunnel.<d>: TLS with a required client
// certificate (answering HTTP 400 without one, like nginx), then raw bytes
// to the tunnel server.
func tlsFront(t *testing.T, p *testPKI, backend string) string {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{p.server},
		ClientCAs:    p.pool,
		ClientAuth:   tls.VerifyClientCertIfGiven,
		NextProtos:   []string{"http/1.1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				tc := c.(*tls.Conn)
				if err := tc.Handshake(); err != nil {
					return
				}
				if len(tc.ConnectionState().PeerCertificates) == 0 {
					buf := make([]byte, 4096)
					_, _ = c.Read(buf)
					_, _ = io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
					return
				}
				b, err := net.Dial("tcp", backend)
				if err != nil {
					return
				}
				defer b.Close()
				go func() { _, _ = io.Copy(b, c); b.Close() }()
				_, _ = io.Copy(c, b)
			}(c)
		}
	}()
	return l.Addr().String()
}

func TestClientOverTLS(t *testing.T) {
	r := newRelay(t)
	pki := newTestPKI(t)
	front := tlsFront(t, pki, r.addr)
	_, port, _ := net.SplitHostPort(front)
	app := startApp(t, "via tls")
	p := testutil.FreePort(t)
	cred := r.addAgent(t, "home", p)
	waitApplied(t, r, "home")

	run := func(tc *tls.Config) error {
		c, err := NewClient(ClientConfig{
			ServerURL:   "https://tunnel.test:" + port,
			Auth:        cred,
			Fingerprint: r.srv.Fingerprint(),
			Remotes:     []string{remote(p, app)},
			TLS:         tc,
			Logger:      testLogger(t),
		})
		if err != nil {
			t.Fatal(err)
		}
		// tunnel.test resolves nowhere: dial the front's address instead.
		c.dialAddr = front
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() { _ = c.Run(ctx) }()
		rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
		defer rcancel()
		if err := c.Ready(rctx); err != nil {
			return err
		}
		got, err := getEventually(p, "via tls")
		if err != nil || got != "via tls" {
			t.Fatalf("GET through TLS tunnel = %q, %v", got, err)
		}
		return nil
	}

	if err := run(&tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{pki.client}}); err != nil {
		t.Fatalf("verified TLS with client certificate: %v", err)
	}
	if !eventually(2*time.Second, func() bool { return portClosed(p) }) {
		t.Fatal("port still open after client stopped")
	}
	if err := run(&tls.Config{RootCAs: pki.pool}); !errors.Is(err, ErrRefused) {
		t.Fatalf("without client certificate: %v, want ErrRefused", err)
	}
	if err := run(&tls.Config{Certificates: []tls.Certificate{pki.client}}); !errors.Is(err, ErrUnverified) {
		t.Fatalf("untrusted server certificate: %v, want ErrUnverified", err)
	}
	if err := run(&tls.Config{RootCAs: pki.pool, ServerName: "other.test", Certificates: []tls.Certificate{pki.client}}); !errors.Is(err, ErrUnverified) {
		t.Fatalf("wrong server name: %v, want ErrUnverified", err)
	}
}

func TestClientConnectionErrors(t *testing.T) {
	fp, _ := KeyFingerprint(mustKey(t))
	c, err := NewClient(ClientConfig{
		ServerURL:   "http://" + testutil.FreeAddr(t), // nothing listens
		Auth:        "home:" + strings.Repeat("a", 64),
		Fingerprint: fp,
		Remotes:     []string{"R:127.0.0.1:20001:127.0.0.1:8080"},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Run(ctx); !errors.Is(err, ErrConnection) {
		t.Fatalf("Run = %v, want ErrConnection", err)
	}
	if err := c.Ready(ctx); err == nil {
		t.Fatal("Ready after a failed Run = nil")
	}
	if err := c.Run(ctx); err == nil {
		t.Fatal("second Run accepted")
	}

	// Cancelling ctx ends Run with nil.
	c2, _ := NewClient(ClientConfig{ServerURL: "http://127.0.0.1:1", Auth: "a:b", Fingerprint: fp, Remotes: []string{"R:127.0.0.1:20001:127.0.0.1:8080"}})
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	if err := c2.Run(cctx); err != nil {
		t.Fatalf("Run with cancelled ctx = %v, want nil", err)
	}
}

func TestNewClientValidation(t *testing.T) {
	fp, _ := KeyFingerprint(mustKey(t))
	good := ClientConfig{
		ServerURL:   "https://tunnel.example.com:443",
		Auth:        "home:" + strings.Repeat("a", 64),
		Fingerprint: fp,
		Remotes:     []string{"R:127.0.0.1:20001:127.0.0.1:8080"},
	}
	if _, err := NewClient(good); err != nil {
		t.Fatalf("good config: %v", err)
	}
	cases := map[string]func(*ClientConfig){
		"no fingerprint":     func(c *ClientConfig) { c.Fingerprint = "" },
		"md5 fingerprint":    func(c *ClientConfig) { c.Fingerprint = "a1:b2:c3:d4:e5:f6:a1:b2:c3:d4:e5:f6:a1:b2:c3:d4" },
		"short fingerprint":  func(c *ClientConfig) { c.Fingerprint = fp[:20] },
		"skip verify":        func(c *ClientConfig) { c.TLS = &tls.Config{InsecureSkipVerify: true} },
		"no auth":            func(c *ClientConfig) { c.Auth = "" },
		"auth without pass":  func(c *ClientConfig) { c.Auth = "home:" },
		"auth without colon": func(c *ClientConfig) { c.Auth = "home" },
		"no remotes":         func(c *ClientConfig) { c.Remotes = nil },
		"forward remote":     func(c *ClientConfig) { c.Remotes = []string{"127.0.0.1:20001:127.0.0.1:8080"} },
		"bad remote":         func(c *ClientConfig) { c.Remotes = []string{"R:::::"} },
		"ftp url":            func(c *ClientConfig) { c.ServerURL = "ftp://tunnel.example.com" },
		"url with user":      func(c *ClientConfig) { c.ServerURL = "https://u:p@tunnel.example.com" },
		"no host":            func(c *ClientConfig) { c.ServerURL = "https://" },
	}
	for name, mut := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := good
			mut(&cfg)
			if _, err := NewClient(cfg); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	c, _ := NewClient(good)
	if c.chiselURL != "http://tunnel.example.com:443" {
		t.Fatalf("chisel URL = %s", c.chiselURL)
	}
	if c.tlsConf.ServerName != "tunnel.example.com" {
		t.Fatalf("ServerName = %s", c.tlsConf.ServerName)
	}
}
