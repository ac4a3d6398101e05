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
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
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
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"Portlama"}},
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

// tlsFront stands in for nginx on tunnel.<d> (the nginx tests use the real
// one): TLS, HTTP 400 without a client certificate, and the proof headers
// for the verified certificate towards the tunnel server.
func tlsFront(t *testing.T, p *testPKI, r *relay) string {
	t.Helper()
	u, _ := url.Parse("http://" + r.addr)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0)
	h := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.TLS == nil || len(req.TLS.PeerCertificates) == 0 {
			http.Error(w, "No required SSL certificate was sent", http.StatusBadRequest)
			return
		}
		cn := req.TLS.PeerCertificates[0].Subject.CommonName
		req.Header.Set(HeaderSecret, r.secret)
		req.Header.Set(HeaderClientVerify, "SUCCESS")
		req.Header.Set(HeaderClientDN, "CN="+cn+",O=Portlama")
		rp.ServeHTTP(w, req)
	})
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{p.server},
		ClientCAs:    p.pool,
		ClientAuth:   tls.VerifyClientCertIfGiven,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ErrorLog: log.New(io.Discard, "", 0)}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

func TestClientOverTLS(t *testing.T) {
	r := newRelay(t)
	pki := newTestPKI(t)
	front := tlsFront(t, pki, r)
	_, port, _ := net.SplitHostPort(front)
	app := startApp(t, "via tls")
	p := testutil.FreePort(t)
	cred := r.addAgent(t, "home", p)

	attempt := func(tc *tls.Config) error {
		c, err := NewClient(ClientConfig{
			ServerURL:   "https://tunnel.test:" + port,
			Auth:        cred,
			Fingerprint: r.srv.Fingerprint(),
			TLS:         tc,
			Logger:      testLogger(t),
			// tunnel.test resolves nowhere: dial the front instead.
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, front)
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		rc, err := run(t, c, remote(p, app))
		if err != nil {
			return err
		}
		mustGet(t, p, "via tls")
		rc.stop()
		<-rc.done
		return nil
	}
	if err := attempt(&tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{pki.client}}); err != nil {
		t.Fatalf("verified TLS with client certificate: %v", err)
	}
	waitFor(t, "the port to close after the client stopped", func() bool { return portClosed(p) })
	var te *Error
	if err := attempt(&tls.Config{RootCAs: pki.pool}); !errors.As(err, &te) || te.Kind != KindRefused || te.HTTPStatus != 400 {
		t.Fatalf("without client certificate: %v, want refused with HTTP 400", err)
	}
	if err := attempt(&tls.Config{Certificates: []tls.Certificate{pki.client}}); !errors.Is(err, ErrUnverified) {
		t.Fatalf("untrusted server certificate: %v, want ErrUnverified", err)
	}
	if err := attempt(&tls.Config{RootCAs: pki.pool, ServerName: "other.test", Certificates: []tls.Certificate{pki.client}}); !errors.Is(err, ErrUnverified) {
		t.Fatalf("wrong server name: %v, want ErrUnverified", err)
	}
	other := pki.issue(t, 9, "agent:bob", x509.ExtKeyUsageClientAuth, nil)
	if err := attempt(&tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{other}}); !errors.Is(err, ErrRefused) {
		t.Fatalf("home's credential with bob's certificate: %v, want ErrRefused", err)
	}
}

func TestClientConnectionErrors(t *testing.T) {
	fp, _ := KeyFingerprint(mustKey(t))
	c, err := NewClient(ClientConfig{
		ServerURL:   "http://" + testutil.FreeAddr(t), // nothing listens
		Auth:        "home:" + strings.Repeat("a", 64),
		Fingerprint: fp,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = c.Run(ctx)
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Run = %v, want ErrUnreachable", err)
	}
	if st := c.State(); st.Status != StatusDisconnected || !errors.Is(st.Err, ErrUnreachable) {
		t.Fatalf("state = %+v", st)
	}
	// Run can be called again; a cancelled context ends it with nil.
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	if err := c.Run(cctx); err != nil {
		t.Fatalf("Run with cancelled ctx = %v, want nil", err)
	}
	// A relay that is not a tunnel server (nginx without it: 502).
	bad := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(502) }))
	c2, _ := NewClient(ClientConfig{ServerURL: "http://127.0.0.1:" + itoa(bad), Auth: "a:b", Fingerprint: fp})
	var te *Error
	if err := c2.Run(ctx); !errors.As(err, &te) || te.Kind != KindUnreachable || te.HTTPStatus != 502 {
		t.Fatalf("502: %v", err)
	}
}

func TestNewClientValidation(t *testing.T) {
	fp, _ := KeyFingerprint(mustKey(t))
	good := ClientConfig{
		ServerURL:   "https://tunnel.example.com:443",
		Auth:        "home:" + strings.Repeat("a", 64),
		Fingerprint: fp,
	}
	c, err := NewClient(good)
	if err != nil {
		t.Fatalf("good config: %v", err)
	}
	if c.url != "wss://tunnel.example.com:443" || c.tlsConf.ServerName != "tunnel.example.com" {
		t.Fatalf("url %s, ServerName %s", c.url, c.tlsConf.ServerName)
	}
	cases := map[string]func(*ClientConfig){
		"no fingerprint":     func(c *ClientConfig) { c.Fingerprint = "" },
		"md5 fingerprint":    func(c *ClientConfig) { c.Fingerprint = "a1:b2:c3:d4:e5:f6:a1:b2:c3:d4:e5:f6:a1:b2:c3:d4" },
		"short fingerprint":  func(c *ClientConfig) { c.Fingerprint = fp[:20] },
		"skip verify":        func(c *ClientConfig) { c.TLS = &tls.Config{InsecureSkipVerify: true} },
		"no auth":            func(c *ClientConfig) { c.Auth = "" },
		"auth without pass":  func(c *ClientConfig) { c.Auth = "home:" },
		"auth without colon": func(c *ClientConfig) { c.Auth = "home" },
		"ftp url":            func(c *ClientConfig) { c.ServerURL = "ftp://tunnel.example.com" },
		"url with user":      func(c *ClientConfig) { c.ServerURL = "https://u:p@tunnel.example.com" },
		"no host":            func(c *ClientConfig) { c.ServerURL = "https://" },
		"bad port":           func(c *ClientConfig) { c.ServerURL = "https://tunnel.example.com:99999" },
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
	for _, bad := range [][]string{
		{"127.0.0.1:20001:127.0.0.1:8080"},
		{"R:::::"},
		{"R:0.0.0.0:20001:127.0.0.1:8080"},
		{"R:127.0.0.1:20001:socks"},
		{"R:127.0.0.1:20001:127.0.0.1:8080", "R:127.0.0.1:20001:127.0.0.1:8081"},
	} {
		if err := c.SetRemotes(context.Background(), bad); err == nil {
			t.Errorf("SetRemotes(%q) accepted", bad)
		}
	}
	if len(c.State().Remotes) != 0 {
		t.Fatal("refused SetRemotes changed the remotes")
	}
}

func TestLoopbackForLocalhost(t *testing.T) {
	for in, want := range map[string]string{
		"tunnel.demo.localhost:8443": "127.0.0.1:8443",
		"localhost:443":              "127.0.0.1:443",
		"TUNNEL.Demo.Localhost.:1":   "127.0.0.1:1",
		"tunnel.example.com:443":     "tunnel.example.com:443",
		"localhost.example.com:443":  "localhost.example.com:443",
		"notlocalhost:443":           "notlocalhost:443",
		"no-port":                    "no-port",
	} {
		if got := loopbackForLocalhost(in); got != want {
			t.Errorf("loopbackForLocalhost(%q) = %q, want %q", in, got, want)
		}
	}
}
