package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/portlama/portlama/internal/api"
)

func TestAppThroughTunnel(t *testing.T) {
	st := shared(t)
	c := visitor(st)
	base := appURL(st, "public")

	t.Run("GET", func(t *testing.T) {
		resp, body := get(t, c, base)
		if resp.StatusCode != 200 || !contains(body, "Portlama demo app") {
			t.Fatalf("GET: %d %s", resp.StatusCode, body)
		}
		if resp.Header.Get("Strict-Transport-Security") == "" {
			t.Error("no HSTS header on the app vhost")
		}
	})
	t.Run("POST body", func(t *testing.T) {
		payload := bytes.Repeat([]byte("portlama-"), 200_000) // 1.8 MB
		resp, err := c.Post(base+"echo", "application/octet-stream", bytes.NewReader(payload))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Equal(got, payload) {
			t.Fatalf("echo: %d, %d bytes back of %d", resp.StatusCode, len(got), len(payload))
		}
	})
	t.Run("streamed response", func(t *testing.T) {
		resp, err := c.Get(base + "stream?n=20")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		// The first line must arrive long before the last is written (the
		// app writes one line every 50 ms): nginx and the tunnel stream.
		start := time.Now()
		r := bufio.NewReader(resp.Body)
		first, err := r.ReadString('\n')
		firstAt := time.Since(start)
		rest, _ := io.ReadAll(r)
		if err != nil || first != "line 1\n" || !strings.HasSuffix(string(rest), "line 20\n") {
			t.Fatalf("stream: first %q err %v rest %q", first, err, rest)
		}
		if total := time.Since(start); firstAt > total/2 {
			t.Fatalf("response was buffered: first line after %v of %v", firstAt, total)
		}
	})
	t.Run("WebSocket echo", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		wsURL := "wss" + strings.TrimPrefix(base, "https") + "ws"
		conn, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPClient: c})
		if err != nil {
			t.Fatalf("dial %s: %v", wsURL, err)
		}
		defer conn.CloseNow()
		for i := 0; i < 3; i++ {
			msg := fmt.Sprintf("hello %d", i)
			if err := conn.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			_, got, err := conn.Read(ctx)
			if err != nil || string(got) != msg {
				t.Fatalf("echo %d: %q %v", i, got, err)
			}
		}
	})
}

func TestAgentCapabilitiesLimitTunnelChanges(t *testing.T) {
	st := shared(t)
	readOnly := newAgentCert(t, st, "reader")
	c := clientWith(st, &readOnly)
	code, body := call(t, c, "POST", st.Info.PanelURL+"/api/tunnels", map[string]any{"subdomain": "nope", "port": 8080})
	if code != 403 || !contains(body, "Insufficient certificate capability") {
		t.Fatalf("tunnels:read agent creating a tunnel: %d %s", code, body)
	}
	// It sees no tunnel of the demo agent, and cannot touch them.
	out := mustCall(t, c, "GET", st.Info.PanelURL+"/api/tunnels", nil, 200)
	if contains(out, `"app"`) {
		t.Fatalf("agent sees another agent's tunnels: %s", out)
	}
}

func csrPEM(t *testing.T, cn string) string {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func TestEnrollmentThroughNginx(t *testing.T) {
	st := shared(t)
	a := admin(t, st)
	out := mustCall(t, a, "POST", st.Info.PanelURL+"/api/certs/agent/enroll", map[string]any{"label": "laptop"}, 200)
	var tok struct{ Token string }
	decode(t, out, &tok)
	pub := clientWith(st, nil) // enrollment needs no client certificate
	enroll := st.Info.PanelURL + "/api/enroll"

	code, body := call(t, pub, "POST", enroll, map[string]any{"token": tok.Token, "csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"})
	if code != 400 || !contains(body, "Invalid CSR") {
		t.Fatalf("malformed CSR: %d %s", code, body)
	}
	// The token survived the broken CSR; the CSR's own subject is ignored.
	out = mustCall(t, pub, "POST", enroll, map[string]any{"token": tok.Token, "csr": csrPEM(t, "admin")}, 200)
	var res struct{ Cert, Label string }
	decode(t, out, &res)
	block, _ := pem.Decode([]byte(res.Cert))
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil || cert.Subject.CommonName != "agent:laptop" || res.Label != "laptop" {
		t.Fatalf("issued certificate subject %v (err %v)", cert.Subject, err)
	}
	code, body = call(t, pub, "POST", enroll, map[string]any{"token": tok.Token, "csr": csrPEM(t, "x")})
	if code != 401 || !contains(body, "Enrollment token has already been used") {
		t.Fatalf("token reuse: %d %s", code, body)
	}
	code, body = call(t, pub, "POST", enroll, map[string]any{"token": strings.Repeat("ab", 32), "csr": csrPEM(t, "x")})
	if code != 401 || !contains(body, "Invalid enrollment token") {
		t.Fatalf("unknown token: %d %s", code, body)
	}
}

// A second tunnel's creation reloads nginx and the agent's configuration,
// but a download running through the first tunnel goes on to its end.
func TestNewTunnelDoesNotInterruptDownload(t *testing.T) {
	st := shared(t)
	const size = 64 << 20
	resp, err := visitor(st).Get(appURL(st, "public") + fmt.Sprintf("bytes?size=%d", size))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// Read the first part, change the configuration, read the rest slowly
	// enough that the change happens mid-download.
	if _, err := io.CopyN(io.Discard, resp.Body, 1<<20); err != nil {
		t.Fatal(err)
	}
	out := mustCall(t, admin(t, st), "POST", st.Info.PanelURL+"/api/tunnels", map[string]any{
		"subdomain": "second", "port": extraApp(t, "second app"), "agentLabel": st.Info.AgentLabel, "accessMode": "public",
	}, 201)
	var second api.TunnelResponse
	decode(t, out, &second)
	// The agent picks the new tunnel up on its next poll and binds it on
	// its session: wait until it serves.
	st.WaitHTTP(nil, hostURL(st, "second", "/"), 200, 30*time.Second)
	// Disabling and deleting the other tunnel of the same agent (its port
	// closed when each answers) leaves this download alone.
	mustCall(t, admin(t, st), "PATCH", st.Info.PanelURL+"/api/tunnels/"+second.Tunnel.ID, map[string]any{"enabled": false}, 200)
	mustCall(t, admin(t, st), "DELETE", st.Info.PanelURL+"/api/tunnels/"+second.Tunnel.ID, nil, 200)
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || n+1<<20 != size {
		t.Fatalf("download interrupted: %d of %d bytes, %v", n+1<<20, size, err)
	}
}

func TestTunnelServerCrashRecovers(t *testing.T) {
	st := startStack(t)
	c := visitor(st)
	url := appURL(st, "public")
	if resp, _ := get(t, c, url); resp.StatusCode != 200 {
		t.Fatalf("before crash: %d", resp.StatusCode)
	}
	st.Crash("portlama-tunnel")
	took := eventually(t, 10*time.Second, "app through the tunnel after kill -9 of the tunnel server", func() error {
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	t.Logf("tunnels served again %v after the restart", took.Round(time.Millisecond))
}

func TestRevokedAgentIsDisconnected(t *testing.T) {
	st := startStack(t)
	c := visitor(st)
	url := appURL(st, "public")
	status := func() int {
		resp, err := c.Get(url)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := status(); s != 200 {
		t.Fatalf("before revocation: %d", s)
	}
	mustCall(t, admin(t, st), "DELETE", st.Info.PanelURL+"/api/certs/agent/"+st.Info.AgentLabel, nil, 200)
	// In force when the DELETE answers (docs/api.md, "Changes in force").
	if s := status(); s == 200 {
		t.Fatal("app still served right after the revocation answered")
	}
	// It cannot come back: the agent keeps retrying, and stays refused.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if s := status(); s == 200 {
			t.Fatal("revoked agent reconnected")
		}
		time.Sleep(250 * time.Millisecond)
	}
}
