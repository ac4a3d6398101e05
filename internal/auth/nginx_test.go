package auth

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/portlama/portlama/internal/testutil"
)

// nginxConf is the forward-auth pattern of docs/architecture.md, "Forward authentication", reduced to plain
// HTTP on loopback: nginx asks the auth server, passes Remote-* from its
// answer (never from the client), turns 401 into a redirect to the portal
// and shows the auth server's "access denied" page for 403.
const nginxConf = `daemon off;
pid {{.D}}/nginx.pid;
error_log {{.D}}/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path {{.D}}/tmp/body;
  proxy_temp_path {{.D}}/tmp/proxy;
  fastcgi_temp_path {{.D}}/tmp/fastcgi;
  uwsgi_temp_path {{.D}}/tmp/uwsgi;
  scgi_temp_path {{.D}}/tmp/scgi;
  server {
    listen 127.0.0.1:{{.Port}};
    server_name {{.Host}};
    location = /internal/portlama/authz {
      internal;
      proxy_pass http://{{.Auth}}/api/authz/auth-request;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Original-URL https://{{.Host}}$request_uri;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Original-Upgrade $http_upgrade;
      proxy_http_version 1.1;
    }
    location = /internal/portlama/denied {
      internal;
      proxy_pass http://{{.Auth}}/denied;
      proxy_set_header Content-Length "";
      proxy_pass_request_body off;
    }
    location / {
      auth_request /internal/portlama/authz;
      auth_request_set $pl_user $upstream_http_remote_user;
      auth_request_set $pl_groups $upstream_http_remote_groups;
      auth_request_set $pl_name $upstream_http_remote_name;
      auth_request_set $pl_email $upstream_http_remote_email;
      auth_request_set $pl_location $upstream_http_location;
      error_page 401 =302 $pl_location;
      error_page 403 /internal/portlama/denied;
      proxy_set_header Remote-User $pl_user;
      proxy_set_header Remote-Groups $pl_groups;
      proxy_set_header Remote-Name $pl_name;
      proxy_set_header Remote-Email $pl_email;
      proxy_pass http://{{.Backend}};
    }
  }
}
`

func TestForwardAuthThroughNginx(t *testing.T) {
	bin := testutil.NeedBinary(t, "nginx")
	e := newEnv(t)
	e.addUser("alice")
	e.addUser("bob")

	backend := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "user=%s groups=%s name=%s email=%s", r.Header.Get("Remote-User"), r.Header.Get("Remote-Groups"),
			r.Header.Get("Remote-Name"), r.Header.Get("Remote-Email"))
	})}
	bln, bAddr := listen(t)
	go backend.Serve(bln)
	t.Cleanup(func() { backend.Close() })

	d := t.TempDir()
	os.MkdirAll(filepath.Join(d, "tmp"), 0o700)
	port := testutil.FreePort(t)
	var conf bytes.Buffer
	template.Must(template.New("").Parse(nginxConf)).Execute(&conf, map[string]any{
		"D": d, "Port": port, "Host": "app.demo.localhost", "Auth": strings.TrimPrefix(e.base, "http://"), "Backend": bAddr,
	})
	confPath := filepath.Join(d, "nginx.conf")
	if err := os.WriteFile(confPath, conf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-t", "-c", confPath, "-p", d+"/", "-e", d+"/error.log").CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-c", confPath, "-p", d+"/", "-e", d+"/error.log")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// SIGTERM lets the master stop its workers; SIGKILL would orphan them.
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})

	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	get := func(path, cookie string, hdr ...string) (int, http.Header, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Host = "app.demo.localhost"
		if cookie != "" {
			req.Header.Set("Cookie", SessionCookieName+"="+cookie)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := e.hc.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(body)
	}
	// Wait for nginx.
	deadline := time.Now().Add(5 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, base+"/", nil)
		if resp, err := e.hc.Do(req); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("nginx did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// No session: redirect to the portal with the original URL.
	code, h, _ := get("/path?q=1", "")
	if code != http.StatusFound || h.Get("Location") != testPortal+"/?rd="+"https%3A%2F%2Fapp.demo.localhost%2Fpath%3Fq%3D1" {
		t.Fatalf("no session: %d Location=%q", code, h.Get("Location"))
	}
	// Session: the backend sees the identity, not what the client claims.
	alice := e.login("alice")
	code, _, body := get("/path", alice, "Remote-User", "root", "Remote-Groups", "admins")
	if code != 200 || body != "user=alice groups= name=User alice email=alice@example.com" {
		t.Fatalf("with session: %d %q", code, body)
	}
	// Without a session, client-sent Remote-* never reach the backend.
	if code, _, body := get("/", "bogus", "Remote-User", "root"); code != http.StatusFound || strings.Contains(body, "root") {
		t.Fatalf("forged header: %d %q", code, body)
	}
	// WebSocket handshakes need the app's own origin (nginx passes Upgrade
	// to the auth server as X-Original-Upgrade).
	ws := func(origin string) []string {
		h := []string{"Connection", "Upgrade", "Upgrade", "websocket", "Sec-WebSocket-Version", "13",
			"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}
		if origin != "" {
			h = append(h, "Origin", origin)
		}
		return h
	}
	if code, _, body := get("/ws", alice, ws("https://evil.demo.localhost")...); code != http.StatusForbidden || strings.Contains(body, "user=") {
		t.Fatalf("websocket from a sibling host: %d %q, want 403", code, body)
	}
	if code, _, body := get("/ws", alice, ws("")...); code != http.StatusForbidden || strings.Contains(body, "user=") {
		t.Fatalf("websocket without Origin: %d %q, want 403", code, body)
	}
	if code, _, body := get("/ws", alice, ws("https://app.demo.localhost")...); code != 200 || !strings.Contains(body, "user=alice") {
		t.Fatalf("websocket from the app: %d %q, want 200", code, body)
	}
	if code, _, _ := get("/ws", alice, "Origin", "https://evil.demo.localhost", "X-Original-Upgrade", "websocket"); code != 200 {
		t.Fatalf("plain GET from a sibling host: %d, want 200", code)
	}

	// Restricted: another user gets the access-denied page.
	e.writeRules(AccessRule{Host: "app.demo.localhost", Users: []string{"alice"}})
	bob := e.login("bob")
	code, _, body = get("/", bob)
	if code != http.StatusForbidden || !strings.Contains(body, "Access denied") || strings.Contains(body, "user=") {
		t.Fatalf("restricted, other user: %d %q", code, body)
	}
	if code, _, _ := get("/", alice); code != 200 {
		t.Fatalf("restricted, allowed user: %d", code)
	}
}
