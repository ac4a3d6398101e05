package nginx

import (
	"bufio"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/auth"
)

// hostile is a tunnelled app that tries to steer the relay: it sets
// cookies, asks nginx for internal redirects, switches protocols and holds
// requests, as its query says.
type hostile struct {
	port     int
	requests atomic.Int64
	held     chan struct{} // one value per /hold request that arrived
	release  chan struct{}
}

func startHostile(t *testing.T) *hostile {
	t.Helper()
	h := &hostile{held: make(chan struct{}, 1024), release: make(chan struct{})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.port = l.Addr().(*net.TCPAddr).Port
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.requests.Add(1)
		switch r.URL.Path {
		case "/set":
			for _, c := range r.URL.Query()["c"] {
				w.Header().Add("Set-Cookie", c)
			}
		case "/accel":
			w.Header().Set("X-Accel-Redirect", r.URL.Query().Get("to"))
			w.Header().Set("X-Accel-Buffering", "yes")
		case "/hold":
			h.held <- struct{}{}
			<-h.release
		case "/switch":
			// Any upgrade, then a raw pipe that answers whatever comes.
			conn, bw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			bw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + r.Header.Get("Upgrade") + "\r\n\r\nPIPE OPEN\n")
			bw.Flush()
			io.Copy(conn, bw.Reader)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(echoReply{Name: "hostile", Path: r.URL.RequestURI(), Headers: r.Header})
	})}
	go srv.Serve(l)
	t.Cleanup(func() {
		select {
		case <-h.release:
		default:
			close(h.release)
		}
		srv.Close()
	})
	return h
}

// Only the admin and the agent that exposes an agent panel get through;
// another agent's certificate is refused before the backend.
func TestAgentPanelAdmitsOnlyAdminAndOwner(t *testing.T) {
	rl := startRelay(t, nil)
	backend := startEcho(t, "agent-panel")
	v, err := rl.r.AgentPanel(AppParams{Domain: testDomain, Subdomain: "home-panel", RelayPort: backend.port, Owner: "home", TLS: rl.tls()})
	if err != nil {
		t.Fatal(err)
	}
	if err := rl.mgr.Apply(ctxT(t), v); err != nil {
		t.Fatal(err)
	}
	u := rl.appURL("home-panel", "/status")
	owner, other := rl.agentCert(t, "home"), rl.agentCert(t, "home-2")
	for _, c := range []struct {
		what string
		cert *tlsCert
		dn   string
	}{{"admin", &rl.pki.client, "CN=admin,O=Portlama"}, {"owner", &owner, "CN=agent:home,O=Portlama"}} {
		resp, body := get(t, rl.client(rl.addrs.HTTPSPort, c.cert), u, nil)
		if resp.StatusCode != 200 || decodeEcho(t, body).Headers.Get("X-Ssl-Client-Dn") != c.dn {
			t.Fatalf("%s: %d %s", c.what, resp.StatusCode, body)
		}
	}
	_, before := backend.connections()
	for _, c := range []struct {
		what   string
		cert   *tlsCert
		accept string
		want   int
		json   string
	}{
		{"another agent", &other, "", 403, ""},
		{"another agent, API client", &other, "application/json", 403, "Only the admin and the agent home may open this agent panel"},
		{"a foreign CA's admin", &rl.pki.foreign, "application/json", 403, "mTLS certificate required"},
		{"no certificate", nil, "application/json", 403, "mTLS certificate required"},
	} {
		resp, body := get(t, rl.client(rl.addrs.HTTPSPort, c.cert), u, map[string]string{"Accept": c.accept})
		var e struct{ Error string }
		if resp.StatusCode != c.want || (c.json != "" && (json.Unmarshal([]byte(body), &e) != nil || e.Error != c.json)) {
			t.Errorf("%s: %d %.120q", c.what, resp.StatusCode, body)
		}
		if strings.Contains(body, "agent-panel") {
			t.Errorf("%s reached the backend", c.what)
		}
	}
	if _, after := backend.connections(); after != before {
		t.Errorf("the backend served %d refused requests", after-before)
	}
	// The owner is part of the template's contract: no owner, no vhost.
	for _, bad := range []string{"", "Home", "a|b", "home),O=Portlama$|(", "x y"} {
		if _, err := rl.r.AgentPanel(AppParams{Domain: testDomain, Subdomain: "p", RelayPort: 20000, Owner: bad, TLS: rl.tls()}); err == nil {
			t.Errorf("owner %q accepted", bad)
		}
	}
}

// An app's Set-Cookie never reaches the parent domain and never sets the
// login cookie, whatever the spelling: Go's cookie parser, like browsers,
// trims spaces and tabs around attributes, so it reads the answer the way a
// browser would.
func TestAppCookiesStayOnTheAppHost(t *testing.T) { appModes(t, testAppCookiesStayOnTheAppHost) }

func testAppCookiesStayOnTheAppHost(t *testing.T, wildcard bool) {
	rl := startRelay(t, nil)
	rl.wildcard = wildcard
	h := startHostile(t)
	rl.writeAppVhost(t, "app", h.port, true)
	d := testDomain
	spellings := []string{
		"s=1; Domain=" + d, "s=1; Domain=." + d, "s=1; domain=DEMO.LOCALHOST; Path=/", "s=1; DOMAIN=.Demo.LocalHost",
		"s=1;Domain=" + d, "s=1; Domain = " + d, "s=1;\tDomain=" + d, "s=1; \tDomain\t=\t." + d + "\t",
		"s=1; Path=/; Domain=app." + d + "; Domain=" + d, "s=1; Domain=\"" + d + "\"", "s=1; Domain=" + d + ".",
		"s=1; Secure; HttpOnly; Domain=" + d + "; SameSite=Lax", "s=1; Max-Age=60; Domain=" + d + "; Path=/",
	}
	logins := []string{
		"portlama_session=attacker", "portlama_session=attacker; Domain=" + d, "\tportlama_session=attacker;\tDomain=" + d,
		" portlama_session=attacker", "portlama_session =attacker", "PORTLAMA_SESSION=attacker", "portlama_session=\"attacker\"",
	}
	for _, c := range append(spellings, logins...) {
		resp, _ := get(t, rl.client(rl.addrs.HTTPSPort, nil), rl.appURL("app", "/set?"+queryEscapeAll("keep=1", c)), nil)
		got := resp.Cookies()
		for _, ck := range got {
			if ck.Domain != "" {
				t.Errorf("Set-Cookie %q reached the browser with Domain=%s (raw %q)", c, ck.Domain, resp.Header.Values("Set-Cookie"))
			}
			if strings.EqualFold(ck.Name, auth.SessionCookieName) {
				t.Errorf("Set-Cookie %q set the login cookie (raw %q)", c, resp.Header.Values("Set-Cookie"))
			}
		}
		if len(got) == 0 || got[0].Name != "keep" || got[0].Value != "1" {
			t.Errorf("the app's other cookie is gone: %q", resp.Header.Values("Set-Cookie"))
		}
		wantLen := 2
		for _, l := range logins {
			if c == l {
				wantLen = 1
			}
		}
		if len(got) != wantLen {
			t.Errorf("%q: %d cookies reached the browser (%q), want %d", c, len(got), resp.Header.Values("Set-Cookie"), wantLen)
		}
	}
}

// The attack of issue 8 end to end, with a browser's cookie jar: a signed-in
// visitor opens a hostile app that answers with the attacker's session on
// the parent domain; on another app the visitor is still themselves.
func TestAppCannotSwapTheVisitorsSession(t *testing.T) {
	appModes(t, testAppCannotSwapTheVisitorsSession)
}

func testAppCannotSwapTheVisitorsSession(t *testing.T, wildcard bool) {
	a := startAuthStack(t, relayOpts{})
	a.wildcard = wildcard
	a.addUser(t, "alice")
	a.addUser(t, "mallory")
	h := startHostile(t)
	a.writeAppVhost(t, "evil", h.port, true)
	secure := startEcho(t, "secure")
	a.writeAppVhost(t, "secure", secure.port, false)

	jar, _ := cookiejar.New(nil)
	c := a.client(a.addrs.HTTPSPort, nil)
	c.Jar = jar
	portalURL, _ := url.Parse(a.portal)
	jar.SetCookies(portalURL, []*http.Cookie{{Name: auth.SessionCookieName, Value: a.login(t, "alice"), Domain: testDomain, Path: "/", Secure: true, HttpOnly: true}})
	attacker := a.login(t, "mallory")
	for _, evil := range []string{
		auth.SessionCookieName + "=" + attacker + "; Domain=" + testDomain + "; Path=/; Secure; HttpOnly",
		"\t" + auth.SessionCookieName + "=" + attacker + ";\tDomain=" + testDomain + ";\tPath=/;\tSecure;\tHttpOnly",
	} {
		do(t, c, request(t, "GET", a.appURL("evil", "/set?"+queryEscapeAll(evil)), ""))
		resp, body := do(t, c, request(t, "GET", a.appURL("secure", "/"), ""))
		if resp.StatusCode != 200 {
			t.Fatalf("after %q: secure app answered %d", evil, resp.StatusCode)
		}
		if user := decodeEcho(t, body).Headers.Get("Remote-User"); user != "alice" {
			t.Fatalf("after the hostile app's %q the visitor is %q on another app, want alice", evil, user)
		}
	}
}

// A backend cannot make nginx run an internal location or tune nginx.
func TestBackendCannotSteerNginx(t *testing.T) { appModes(t, testBackendCannotSteerNginx) }

func testBackendCannotSteerNginx(t *testing.T, wildcard bool) {
	fa := &fakeAuth{}
	rl := startRelay(t, fa)
	rl.wildcard = wildcard
	h := startHostile(t)
	rl.writeAppVhost(t, "app", h.port, true)
	rl.writeAppVhost(t, "secure", h.port, false)
	for _, to := range []string{"/internal/portlama/authz", "/internal/portlama/denied", "/"} {
		resp, body := get(t, rl.client(rl.addrs.HTTPSPort, nil), rl.appURL("app", "/accel?to="+url.QueryEscape(to)), nil)
		if resp.StatusCode != 200 || decodeEcho(t, body).Name != "hostile" || resp.Header.Get("X-Accel-Redirect") != "" {
			t.Errorf("X-Accel-Redirect %s: %d %.100q", to, resp.StatusCode, body)
		}
	}
	fa.mu.Lock()
	calls := fa.calls
	fa.mu.Unlock()
	if calls != 0 {
		t.Errorf("the app's X-Accel-Redirect ran the auth subrequest %d times", calls)
	}
}

// Only a WebSocket handshake upgrades: another Upgrade never reaches the
// backend, so a backend answering 101 cannot open a raw pipe past nginx.
func TestOnlyWebSocketUpgrades(t *testing.T) { appModes(t, testOnlyWebSocketUpgrades) }

func testOnlyWebSocketUpgrades(t *testing.T, wildcard bool) {
	rl := startRelay(t, nil)
	rl.wildcard = wildcard
	h := startHostile(t)
	rl.writeAppVhost(t, "app", h.port, true)
	host := "app." + testDomain
	for _, c := range []struct{ method, upgrade string }{
		{"GET", "h2c"}, {"GET", "websocket, h2c"}, {"GET", "foo"}, {"POST", "websocket"}, {"GET", "WebSocket/2"},
	} {
		before := h.requests.Load()
		resp, body := rl.rawRequest(t, host, c.method+" /switch HTTP/1.1\r\nHost: "+host+"\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: "+c.upgrade+
			"\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\nContent-Length: 0\r\n\r\n")
		if resp.StatusCode != 400 || strings.Contains(body, "PIPE OPEN") {
			t.Errorf("%s Upgrade: %s → %d %.80q, want 400", c.method, c.upgrade, resp.StatusCode, body)
		}
		if n := h.requests.Load() - before; n != 0 {
			t.Errorf("%s Upgrade: %s reached the backend (%d requests)", c.method, c.upgrade, n)
		}
	}
	// A WebSocket handshake still upgrades; plain requests carry no Upgrade.
	resp, line := rl.rawRequest(t, host, "GET /switch HTTP/1.1\r\nHost: "+host+"\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	if resp.StatusCode != 101 || line != "PIPE OPEN\n" {
		t.Errorf("WebSocket handshake: %d %q", resp.StatusCode, line)
	}
	_, body := get(t, rl.client(rl.addrs.HTTPSPort, nil), rl.appURL("app", "/"), nil)
	if up := decodeEcho(t, body).Headers.Get("Upgrade"); up != "" {
		t.Errorf("plain request reached the backend with Upgrade %q", up)
	}
}

// Writes from another origin are refused by the auth request whether or not
// the browser sends Fetch Metadata.
func TestCrossOriginWritesRefused(t *testing.T) { appModes(t, testCrossOriginWritesRefused) }

func testCrossOriginWritesRefused(t *testing.T, wildcard bool) {
	a := startAuthStack(t, relayOpts{})
	a.wildcard = wildcard
	a.addUser(t, "alice")
	app := startEcho(t, "secure")
	a.writeAppVhost(t, "secure", app.port, false)
	sess := auth.SessionCookieName + "=" + a.login(t, "alice")
	own := "https://secure." + testDomain + ":" + strconv.Itoa(a.addrs.HTTPSPort)
	sibling := "https://evil." + testDomain + ":" + strconv.Itoa(a.addrs.HTTPSPort)
	c := a.client(a.addrs.HTTPSPort, nil)
	for _, tc := range []struct {
		method string
		hdr    []string
		want   int
	}{
		{"POST", []string{"Origin", sibling}, 403},
		{"PUT", []string{"Origin", sibling}, 403},
		{"PATCH", []string{"Origin", sibling, "Sec-Fetch-Site", "same-site"}, 403},
		{"DELETE", []string{"Origin", "null"}, 403},
		{"POST", []string{"Sec-Fetch-Site", "cross-site"}, 403},
		{"POST", []string{"Origin", own}, 200},
		{"POST", nil, 200},
		{"GET", []string{"Origin", sibling}, 200},
	} {
		_, before := app.connections()
		resp, _ := do(t, c, request(t, tc.method, a.appURL("secure", "/form"), sess, tc.hdr...))
		_, after := app.connections()
		if resp.StatusCode != tc.want || (tc.want == 403) != (after == before) {
			t.Errorf("%s %q: %d (app reached: %v), want %d", tc.method, tc.hdr, resp.StatusCode, after != before, tc.want)
		}
	}
}

// After sign-in the portal sends the visitor only to the relay's names.
func TestPortalRedirectsOnlyToKnownNames(t *testing.T) {
	a := startAuthStack(t, relayOpts{})
	a.addUser(t, "alice")
	sess := auth.SessionCookieName + "=" + a.login(t, "alice")
	c := a.client(a.addrs.HTTPSPort, nil)
	port := ":" + strconv.Itoa(a.addrs.HTTPSPort)
	for rd, want := range map[string]int{
		"https://app." + testDomain + port + "/x?y=1":  302,
		"https://panel." + testDomain + port + "/":     302,
		"https://unknown." + testDomain + port + "/":   200,
		"https://" + testDomain + port + "/":           200,
		"https://app." + testDomain + ":9999/":         200,
		"https://app." + testDomain + port + ".evil/":  200,
		"https://app." + testDomain + port + "@evil/":  200,
		"https://secure." + testDomain + port + "/ok/": 302,
	} {
		resp, _ := do(t, c, request(t, "GET", a.portal+"/?rd="+url.QueryEscape(rd), sess))
		if resp.StatusCode != want || (want == 302 && resp.Header.Get("Location") != rd) {
			t.Errorf("rd=%s: %d Location %q, want %d", rd, resp.StatusCode, resp.Header.Get("Location"), want)
		}
	}
}

// A link to the portal's /logout, or a post from elsewhere, does not sign
// the visitor out; the portal's own button does.
func TestLogoutOnlyFromThePortal(t *testing.T) { appModes(t, testLogoutOnlyFromThePortal) }

func testLogoutOnlyFromThePortal(t *testing.T, wildcard bool) {
	a := startAuthStack(t, relayOpts{})
	a.wildcard = wildcard
	a.addUser(t, "alice")
	app := startEcho(t, "secure")
	a.writeAppVhost(t, "secure", app.port, false)
	value := a.login(t, "alice")
	sess := auth.SessionCookieName + "=" + value
	c := a.client(a.addrs.HTTPSPort, nil)
	signedIn := func() bool {
		resp, _ := do(t, c, request(t, "GET", a.appURL("secure", "/"), sess))
		return resp.StatusCode == 200
	}
	do(t, c, request(t, "GET", a.portal+"/logout", sess))
	resp, _ := do(t, c, request(t, "POST", a.portal+"/api/logout", sess, "Origin", "https://secure."+testDomain+":"+strconv.Itoa(a.addrs.HTTPSPort)))
	if resp.StatusCode != 403 || !signedIn() {
		t.Fatalf("after GET /logout and a cross-origin POST: %d, signed in %v", resp.StatusCode, signedIn())
	}
	resp, _ = do(t, c, request(t, "POST", a.portal+"/api/logout", sess, "Origin", a.portal))
	if resp.StatusCode != 200 || signedIn() {
		t.Fatalf("the portal's sign-out: %d, still signed in %v", resp.StatusCode, signedIn())
	}
}

// A banned user learns that sign-in is blocked and for how long, with the
// right password and a wrong one alike.
func TestBannedUserIsToldThroughNginx(t *testing.T) {
	a := startAuthStack(t, relayOpts{})
	a.addUser(t, "alice")
	for i := 0; i < auth.RegulationMaxRetries; i++ {
		a.portalPost(t, "/api/firstfactor", "", map[string]any{"username": "alice", "password": "wrong"})
	}
	right, rb := a.portalPost(t, "/api/firstfactor", "", map[string]any{"username": "alice", "password": testPass})
	wrong, wb := a.portalPost(t, "/api/firstfactor", "", map[string]any{"username": "alice", "password": "wrong"})
	if right.StatusCode != 429 || !strings.Contains(rb, "Sign-in is temporarily blocked") || !strings.Contains(rb, "5 minutes") || sessionCookieOf(right) != "" {
		t.Fatalf("banned, right password: %d %s", right.StatusCode, rb)
	}
	if wrong.StatusCode != right.StatusCode || wb != rb || wrong.Header.Get("Retry-After") != right.Header.Get("Retry-After") {
		t.Fatalf("banned: right password %d %s, wrong %d %s", right.StatusCode, rb, wrong.StatusCode, wb)
	}
}

// Three 4,000-byte cookies on the domain (an app's JavaScript can set them)
// lock nobody out; more get the clean-up page, and the portal removes them.
func TestOversizedCookiesDoNotLockUsersOut(t *testing.T) {
	appModes(t, testOversizedCookiesDoNotLockUsersOut)
}

func testOversizedCookiesDoNotLockUsersOut(t *testing.T, wildcard bool) {
	a := startAuthStack(t, relayOpts{})
	a.wildcard = wildcard
	a.addUser(t, "alice")
	app := startEcho(t, "secure")
	a.writeAppVhost(t, "secure", app.port, false)
	pd, err := a.r.PanelDomain(testDomain, a.tls())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.mgr.Apply(ctxT(t), pd); err != nil {
		t.Fatal(err)
	}
	sess := auth.SessionCookieName + "=" + a.login(t, "alice")
	cookies := func(n int) string {
		var parts []string
		for i := 0; i < n; i++ {
			parts = append(parts, fmt.Sprintf("big%d=%s", i, strings.Repeat("x", 4000)))
		}
		return strings.Join(parts, "; ") + "; " + sess
	}
	three := cookies(3)
	panelURL := "https://panel." + testDomain + ":" + strconv.Itoa(a.addrs.HTTPSPort) + "/api/health"
	for _, c := range []struct {
		what, url string
		cert      *tlsCert
	}{
		{"portal", a.portal + "/", nil},
		{"portal state", a.portal + "/api/state", nil},
		{"panel.<d>", panelURL, &a.pki.client},
		{"app", a.appURL("secure", "/"), nil},
	} {
		resp, body := do(t, a.client(a.addrs.HTTPSPort, c.cert), request(t, "GET", c.url, three))
		if resp.StatusCode != 200 {
			t.Errorf("%s with three 4,000-byte cookies: %d %.100q", c.what, resp.StatusCode, body)
		}
	}

	// Beyond the apps' limit: the clean-up page, JSON for API clients.
	many := cookies(6)
	resp, body := do(t, a.client(a.addrs.HTTPSPort, nil), request(t, "GET", a.appURL("secure", "/a/b"), many))
	csp := resp.Header.Get("Content-Security-Policy")
	if resp.StatusCode != 431 || !strings.Contains(body, "Too many cookies") || !strings.Contains(body, "document.cookie") {
		t.Fatalf("app with six 4,000-byte cookies: %d %.100q", resp.StatusCode, body)
	}
	script := regexp.MustCompile(`(?s)<script>(.*?)</script>`).FindStringSubmatch(body)
	sum := sha256.Sum256([]byte(script[1]))
	if !strings.Contains(csp, "script-src 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") || !strings.HasPrefix(csp, "default-src 'none'") {
		t.Errorf("clean-up page CSP %q does not admit exactly its script", csp)
	}
	resp, body = do(t, a.client(a.addrs.HTTPSPort, nil), request(t, "GET", a.appURL("secure", "/api/x"), many))
	if resp.StatusCode != 431 || !strings.HasPrefix(body, `{"error":"Request headers too large`) {
		t.Errorf("API call with six 4,000-byte cookies: %d %.100q", resp.StatusCode, body)
	}
	// The portal still answers, and expires every foreign cookie (the
	// session stays).
	for _, n := range []int{6, 60} {
		resp, _ = do(t, a.client(a.addrs.HTTPSPort, nil), request(t, "GET", a.portal+"/", cookies(n)))
		expired := map[string]bool{}
		for _, v := range resp.Header.Values("Set-Cookie") {
			if strings.Contains(v, "Max-Age=0") && strings.Contains(v, "Domain="+testDomain) {
				name, _, _ := strings.Cut(v, "=")
				expired[name] = true
			}
		}
		if resp.StatusCode != 200 || expired[auth.SessionCookieName] || !expired["big0"] || !expired["big5"] {
			t.Errorf("portal with %d 4,000-byte cookies: %d, expired %v", n, resp.StatusCode, expired)
		}
	}
}

// nginx's own 413 and 429 answer JSON to API clients and a page to browsers.
func TestNginxErrorsAnswerJSONToAPIClients(t *testing.T) {
	appModes(t, testNginxErrorsAnswerJSONToAPIClients)
}

func testNginxErrorsAnswerJSONToAPIClients(t *testing.T, wildcard bool) {
	a := startAuthStack(t, relayOpts{})
	a.wildcard = wildcard
	app := startEcho(t, "app")
	a.writeAppVhost(t, "app", app.port, true)
	host := "app." + testDomain
	huge := "Content-Length: " + strconv.Itoa(200<<20) + "\r\n"
	for _, c := range []struct {
		host, path, accept string
		json               bool
	}{
		{host, "/upload", "text/html", false},
		{host, "/upload", "application/json", true},
		{host, "/api/upload", "", true},
		{"auth." + testDomain, "/api/invite/x", "", true},
	} {
		resp, body := a.rawRequest(t, c.host, "POST "+c.path+" HTTP/1.1\r\nHost: "+c.host+"\r\nAccept: "+c.accept+"\r\n"+huge+"\r\n")
		isJSON := body == `{"error":"Request body is too large"}`+"\n" && resp.Header.Get("Content-Type") == "application/json"
		if resp.StatusCode != 413 || isJSON != c.json || (!c.json && !strings.Contains(body, "<html>")) {
			t.Errorf("%s%s (Accept %q): %d %s %.200q", c.host, c.path, c.accept, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
	// The enrollment rate limit.
	c := a.client(a.addrs.PanelIPPort, nil)
	limited := ""
	for i := 0; i < 12 && limited == ""; i++ {
		resp, body := do(t, c, request(t, "POST", "https://127.0.0.1/api/enroll", ""))
		if resp.StatusCode == 429 {
			limited = body
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("enroll 429 Content-Type %q", ct)
			}
		}
	}
	if limited != `{"error":"Rate limit exceeded, retry in 1 minute"}`+"\n" {
		t.Errorf("enroll rate limit answer %q", limited)
	}
}

// Invitation and enrollment URIs are never logged, by access or error log.
func TestTokenLocationsAreNotLogged(t *testing.T) {
	a := startAuthStack(t, relayOpts{accessLog: true})
	pd, err := a.r.PanelDomain(testDomain, a.tls())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.mgr.Apply(ctxT(t), pd); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(a.layout.WWWDir, "invite", "index.html"), []byte("INVITE PAGE"), 0o644)
	// The panel is down: every proxied request fails and nginx would log
	// the failure with the request line.
	a.panel.srv.Close()
	port := ":" + strconv.Itoa(a.addrs.HTTPSPort)
	c := a.client(a.addrs.HTTPSPort, nil)
	secrets := map[string]string{
		"https://auth." + testDomain + port + "/invite/SECRET-A":         "SECRET-A",
		"https://auth." + testDomain + port + "/invite/missing/SECRET-B": "SECRET-B",
		"https://auth." + testDomain + port + "/api/invite/SECRET-C":     "SECRET-C",
		"https://panel." + testDomain + port + "/api/invite/SECRET-D":    "SECRET-D",
		"https://panel." + testDomain + port + "/api/enroll?t=SECRET-E":  "SECRET-E",
	}
	for u := range secrets {
		do(t, c, request(t, "GET", u, ""))
		do(t, c, request(t, "POST", u, ""))
	}
	for i := 0; i < 12; i++ { // beyond the enrollment rate limit
		do(t, c, request(t, "POST", "https://panel."+testDomain+port+"/api/enroll?t=SECRET-F", ""))
	}
	// A control request that is logged, so the logs are known to work.
	do(t, a.client(a.addrs.HTTPSPort, &a.pki.client), request(t, "GET", "https://panel."+testDomain+port+"/api/tunnels?CONTROL-1", ""))
	// nginx writes its logs as it goes; a reload makes sure nothing is
	// buffered.
	if err := a.mgr.TestAndReload(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	for _, name := range []string{"access.log", "error.log"} {
		b, err := os.ReadFile(filepath.Join(a.inst.Prefix(), name))
		if err != nil {
			t.Fatal(err)
		}
		logs.Write(b)
	}
	all := logs.String()
	if !strings.Contains(all, "CONTROL-1") {
		t.Fatalf("the control request is not in the logs:\n%s", all)
	}
	for _, s := range append([]string{"SECRET-F"}, valuesOf(secrets)...) {
		if strings.Contains(all, s) {
			t.Errorf("%s is in nginx's logs:\n%s", s, all)
		}
	}
}

func valuesOf(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// One address beyond its connection limit is refused while another address
// is served; idle connections do not stay open.
func TestConnectionLimitsPerAddress(t *testing.T) { appModes(t, testConnectionLimitsPerAddress) }

func testConnectionLimitsPerAddress(t *testing.T, wildcard bool) {
	rl := startRelay(t, nil)
	rl.wildcard = wildcard
	h := startHostile(t)
	rl.writeAppVhost(t, "app", h.port, true)
	busy := rl.clientFrom("127.0.0.2", rl.addrs.HTTPSPort, nil)
	var wg sync.WaitGroup
	for i := 0; i < ConnPerAddr; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := busy.Get(rl.appURL("app", "/hold"))
			if err == nil {
				resp.Body.Close()
			}
		}()
	}
	for i := 0; i < ConnPerAddr; i++ {
		select {
		case <-h.held:
		case <-time.After(20 * time.Second):
			t.Fatalf("only %d of %d requests reached the backend", i, ConnPerAddr)
		}
	}
	resp, body := get(t, rl.clientFrom("127.0.0.2", rl.addrs.HTTPSPort, nil), rl.appURL("app", "/"), map[string]string{"Accept": "application/json"})
	if resp.StatusCode != 429 || !strings.Contains(body, "Rate limit exceeded") {
		t.Errorf("request %d from one address: %d %.100q, want 429", ConnPerAddr+1, resp.StatusCode, body)
	}
	resp, body = get(t, rl.clientFrom("127.0.0.3", rl.addrs.HTTPSPort, nil), rl.appURL("app", "/"), nil)
	if resp.StatusCode != 200 {
		t.Errorf("another address meanwhile: %d %.100q", resp.StatusCode, body)
	}
	close(h.release)
	wg.Wait()
}

func TestIdleConnectionsAreClosed(t *testing.T) { appModes(t, testIdleConnectionsAreClosed) }

func testIdleConnectionsAreClosed(t *testing.T, wildcard bool) {
	rl := startRelay(t, nil)
	rl.wildcard = wildcard
	app := startEcho(t, "app")
	rl.writeAppVhost(t, "app", app.port, true)
	const n = 300
	src := &net.TCPAddr{IP: net.ParseIP("127.0.0.4")}
	d := net.Dialer{LocalAddr: src, Timeout: 5 * time.Second}
	conns := make([]net.Conn, 0, n)
	for i := 0; i < n; i++ {
		c, err := d.Dial("tcp", "127.0.0.1:"+strconv.Itoa(rl.addrs.HTTPSPort))
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	// Meanwhile another address is served.
	if resp, _ := get(t, rl.clientFrom("127.0.0.5", rl.addrs.HTTPSPort, nil), rl.appURL("app", "/"), nil); resp.StatusCode != 200 {
		t.Errorf("another address during the idle connections: %d", resp.StatusCode)
	}
	// nginx closes each one (client_header_timeout); the signal is EOF.
	deadline := time.Now().Add(30 * time.Second)
	var open atomic.Int64
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func(c net.Conn) {
			defer wg.Done()
			defer c.Close()
			c.SetReadDeadline(deadline)
			if _, err := bufio.NewReader(c).ReadByte(); err != io.EOF && !isReset(err) {
				open.Add(1)
			}
		}(c)
	}
	wg.Wait()
	if o := open.Load(); o != 0 {
		t.Errorf("%d of %d idle connections still open after 30 s", o, n)
	}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

type tlsCert = tls.Certificate
