package nginx

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/testutil"
)

const testDomain = "demo.localhost"

var testSecret = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// testPKI is a throwaway CA with a server and client certificates.
type testPKI struct {
	caCert     *x509.Certificate
	caKey      *ecdsa.PrivateKey
	caPEM      []byte
	crlPEM     []byte
	serverPEM  []byte
	serverKey  []byte
	client     tls.Certificate // CN=admin,O=Portlama
	foreign    tls.Certificate // from another CA
	clientCert *x509.Certificate
}

func mustKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func keyPEM(t testing.TB, k *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pemBlock("EC PRIVATE KEY", der)
}

var serialN int64 = 100

func makeCA(t testing.TB, cn string) (*x509.Certificate, *ecdsa.PrivateKey) {
	k := mustKey(t)
	serialN++
	tpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serialN),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Portlama"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, k
}

func issue(t testing.TB, ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string, client bool, dns ...string) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
	k := mustKey(t)
	serialN++
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(serialN),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"Portlama"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		DNSNames:     dns,
	}
	if client {
		tpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	} else {
		tpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca, &k.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, k, der
}

func newTestPKI(t testing.TB) *testPKI {
	ca, caKey := makeCA(t, "Portlama Test CA")
	p := &testPKI{caCert: ca, caKey: caKey, caPEM: pemBlock("CERTIFICATE", ca.Raw)}
	_, sk, sder := issue(t, ca, caKey, testDomain, false, testDomain, "*."+testDomain)
	p.serverPEM = pemBlock("CERTIFICATE", sder)
	p.serverKey = keyPEM(t, sk)
	cc, ck, cder := issue(t, ca, caKey, "admin", true)
	p.clientCert = cc
	p.client = tls.Certificate{Certificate: [][]byte{cder}, PrivateKey: ck}
	fca, fkey := makeCA(t, "Foreign CA")
	_, fk, fder := issue(t, fca, fkey, "admin", true)
	p.foreign = tls.Certificate{Certificate: [][]byte{fder}, PrivateKey: fk}
	p.crlPEM = p.crl(t)
	return p
}

// crl returns a CRL revoking the given serials.
func (p *testPKI) crl(t testing.TB, revoked ...*big.Int) []byte {
	var entries []x509.RevocationListEntry
	for _, s := range revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: time.Now().Add(-time.Minute)})
	}
	serialN++
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    big.NewInt(serialN),
		ThisUpdate:                time.Now().Add(-time.Hour),
		NextUpdate:                time.Now().Add(24 * time.Hour),
		RevokedCertificateEntries: entries,
	}, p.caCert, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pemBlock("X509 CRL", der)
}

// tempDir is t.TempDir without characters of the test name (nginx paths
// must be plain).
func tempDir(t testing.TB) string {
	d, err := os.MkdirTemp("", "portlama-nginx-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func writeFile(t testing.TB, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
}

// echo is a backend that answers with what it received.
type echo struct {
	srv   *http.Server
	addr  string
	port  int
	mu    sync.Mutex
	peers map[string]int // remote addr → requests (connection reuse)
	name  string
}

type echoReply struct {
	Name    string      `json:"name"`
	Path    string      `json:"path"`
	Headers http.Header `json:"headers"`
	Remote  string      `json:"remote"`
}

func startEcho(t testing.TB, name string) *echo {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echo{addr: l.Addr().String(), port: l.Addr().(*net.TCPAddr).Port, peers: map[string]int{}, name: name}
	e.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.peers[r.RemoteAddr]++
		e.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(echoReply{Name: e.name, Path: r.URL.RequestURI(), Headers: r.Header, Remote: r.RemoteAddr})
	})}
	go e.srv.Serve(l)
	t.Cleanup(func() { e.srv.Close() })
	return e
}

func (e *echo) connections() (conns, requests int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, n := range e.peers {
		conns++
		requests += n
	}
	return
}

// relay is a running test relay: layout, nginx instance, manager.
type relay struct {
	t      testing.TB
	root   string
	layout config.Layout
	addrs  config.Addrs
	pki    *testPKI
	inst   *Instance
	mgr    *Manager
	r      *Renderer
	panel  *echo
	auth   http.Handler
	// wildcard: writeApp serves apps from the shared wildcard server.
	wildcard bool
}

// startRelay writes test certificates, starts an nginx instance and
// installs the shared pieces. authHandler (may be nil) serves the auth
// server address.
func startRelay(t testing.TB, authHandler http.Handler) *relay {
	t.Helper()
	authAddr := testutil.FreeAddr(t)
	if authHandler != nil {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		authAddr = l.Addr().String()
		srv := &http.Server{Handler: authHandler}
		go srv.Serve(l)
		t.Cleanup(func() { srv.Close() })
	}
	return startRelayWith(t, relayOpts{authAddr: authAddr})
}

// relayOpts are startRelayWith's options.
type relayOpts struct {
	authAddr  string // the auth server's address in conf.d
	accessLog bool   // <prefix>/access.log
}

func startRelayWith(t testing.TB, o relayOpts) *relay {
	t.Helper()
	nginxBin := testutil.NeedBinary(t, "nginx")
	root := tempDir(t)
	rl := &relay{t: t, root: root, layout: config.DirLayout(root), pki: newTestPKI(t)}
	rl.panel = startEcho(t, "panel")
	authAddr := o.authAddr
	rl.addrs = config.Addrs{
		Panel:           rl.panel.addr,
		Tunnel:          testutil.FreeAddr(t),
		Auth:            authAddr,
		NginxListenHost: "127.0.0.1",
		HTTPPort:        testutil.FreePort(t),
		HTTPSPort:       testutil.FreePort(t),
		PanelIPPort:     testutil.FreePort(t),
	}
	pkiDir := rl.layout.PKIDir()
	writeFile(t, filepath.Join(pkiDir, "ca.crt"), rl.pki.caPEM, 0o644)
	writeFile(t, filepath.Join(pkiDir, "crl.pem"), rl.pki.crlPEM, 0o644)
	writeFile(t, filepath.Join(pkiDir, "self-signed.pem"), rl.pki.serverPEM, 0o644)
	writeFile(t, filepath.Join(pkiDir, "self-signed-key.pem"), rl.pki.serverKey, 0o600)
	tlsf := CertFiles(rl.layout, testDomain)
	writeFile(t, tlsf.Cert, rl.pki.serverPEM, 0o644)
	writeFile(t, tlsf.Key, rl.pki.serverKey, 0o600)

	var err error
	if rl.r, err = NewRenderer(rl.layout, rl.addrs); err != nil {
		t.Fatal(err)
	}
	rl.inst, err = NewInstance(InstanceConfig{Binary: nginxBin, Prefix: filepath.Join(root, "run"), NginxDir: rl.layout.NginxDir, Workers: 1, AccessLog: o.accessLog})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := rl.inst.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rl.inst.Stop(context.Background()) })
	rl.mgr = NewManager(rl.layout, rl.inst, nil)
	sh, err := rl.r.Shared(SharedParams{ProxySecret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	ts, err := rl.r.TunnelSecret(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	sh.Files = append(sh.Files, ts)
	if err := rl.mgr.WriteShared(ctx, sh); err != nil {
		t.Fatal(err)
	}
	return rl
}

func (rl *relay) tls() TLSFiles { return CertFiles(rl.layout, testDomain) }

// client returns an HTTPS client that connects to port for every host,
// presenting cert when given, and does not follow redirects.
func (rl *relay) client(port int, cert *tls.Certificate) *http.Client {
	return rl.clientFrom("", port, cert)
}

// tlsConfig trusts the test CA and presents cert when given.
func (rl *relay) tlsConfig(cert *tls.Certificate) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(rl.pki.caCert)
	cfg := &tls.Config{RootCAs: pool}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg
}

// clientFrom is client with connections from the loopback source address
// src ("" for any).
func (rl *relay) clientFrom(src string, port int, cert *tls.Certificate) *http.Client {
	cfg := rl.tlsConfig(cert)
	d := &net.Dialer{Timeout: 5 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	tr := &http.Transport{
		TLSClientConfig: cfg,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, "127.0.0.1:"+strconv.Itoa(port))
		},
	}
	rl.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport:     tr,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
