package nginx

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startUpgradeEcho is a backend that accepts any Upgrade request with 101
// and then echoes bytes; plain requests get "plain".
func startUpgradeEcho(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || !strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade") {
			w.Write([]byte("plain"))
			return
		}
		conn, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		rw.Flush()
		io.Copy(conn, rw)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

func (rl *relay) upgradeRoundTrip(t *testing.T, host string, cert *tls.Certificate) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(rl.pki.caCert)
	cfg := &tls.Config{RootCAs: pool, ServerName: host, NextProtos: []string{"http/1.1"}}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	conn, err := tls.Dial("tcp", "127.0.0.1:"+strconv.Itoa(rl.addrs.HTTPSPort), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: "+host+"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 {
		t.Fatalf("%s: upgrade answered %d", host, resp.StatusCode)
	}
	io.WriteString(conn, "ping-123")
	buf := make([]byte, 8)
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "ping-123" {
		t.Fatalf("%s: echo %q %v", host, buf, err)
	}
}

func TestWebSocketUpgradeThroughAppAndTunnel(t *testing.T) {
	appModes(t, testWebSocketUpgradeThroughAppAndTunnel)
}

func testWebSocketUpgradeThroughAppAndTunnel(t *testing.T, wildcard bool) {
	rl := startRelay(t, nil)
	rl.wildcard = wildcard
	backend := startUpgradeEcho(t)
	_, portStr, _ := net.SplitHostPort(backend)
	port, _ := strconv.Atoi(portStr)
	rl.writeApp(t, "ws", port, true)
	rl.addrs.Tunnel = backend
	r, err := NewRenderer(rl.layout, rl.addrs)
	if err != nil {
		t.Fatal(err)
	}
	v, err := r.Tunnel(testDomain, rl.tls())
	if err != nil {
		t.Fatal(err)
	}
	if err := rl.mgr.WriteVhost(ctxT(t), v.Name, v.FQDN, v.Content); err != nil {
		t.Fatal(err)
	}
	rl.upgradeRoundTrip(t, "ws."+testDomain, nil)
	rl.upgradeRoundTrip(t, "tunnel."+testDomain, &rl.pki.client)
	// A plain request on the app is not an upgrade (empty Connection).
	if _, body := get(t, rl.client(rl.addrs.HTTPSPort, nil), rl.appURL("ws", "/"), nil); body != "plain" {
		t.Errorf("plain request: %q", body)
	}
}
