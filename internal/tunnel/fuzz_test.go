package tunnel

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

func FuzzParseRemote(f *testing.F) {
	for _, s := range []string{
		"R:127.0.0.1:20001:127.0.0.1:8080", "R:127.0.0.1:20001:[fd00::5]:8080", "R:127.0.0.1:20001:nas.home:443",
		"R:127.0.0.1:20001:[fe80::1%eth0]:80", "R:127.0.0.1:20001:[::ffff:1.2.3.4]:80", "R:127.0.0.1:65536:a:1",
		"R:0.0.0.0:1:a:1", "R:127.0.0.1:1:socks", "R:stdio:a:1", "R:127.0.0.1:1/udp:a:1/udp", "R:127.0.0.1:1:a:01", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRemote(s)
		if err != nil {
			return
		}
		if r.RelayPort < 1 || r.RelayPort > 65535 || !strings.HasPrefix(r.String(), "R:127.0.0.1:"+strconv.Itoa(r.RelayPort)+":") {
			t.Fatalf("%q: %+v", s, r)
		}
		host, port, ok := cutLast(r.Target)
		if !ok || !validTargetHost(host) {
			t.Fatalf("%q: bad target %q", s, r.Target)
		}
		if _, ok := canonicalPort(port); !ok {
			t.Fatalf("%q: bad target port in %q", s, r.Target)
		}
		for _, c := range r.Target {
			if c <= ' ' || c == '/' || c == '%' || c > '~' {
				t.Fatalf("%q: target %q has %q", s, r.Target, c)
			}
		}
		again, err := ParseRemote(r.String())
		if err != nil || again != r {
			t.Fatalf("%q: canonical %q parses to %+v, %v", s, r.String(), again, err)
		}
	})
}

func cutLast(s string) (string, string, bool) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

func FuzzIdentify(f *testing.F) {
	secret := strings.Repeat("ab", 32)
	f.Add(secret, "SUCCESS", "CN=agent:home,O=Portlama", 1)
	f.Add(secret, "SUCCESS", "CN=admin,O=Portlama", 1)
	f.Add(secret, "FAILED:x", "CN=agent:home", 1)
	f.Add("", "SUCCESS", "CN=agent:home", 1)
	f.Add(secret, "SUCCESS", "CN=agent\\3Ahome,O=Portlama", 2)
	f.Add(secret, "SUCCESS", "CN=agent:home+CN=agent:x", 1)
	f.Fuzz(func(t *testing.T, got, verify, dn string, copies int) {
		h := http.Header{}
		for range min(max(copies, 0), 3) {
			h.Add(HeaderSecret, got)
		}
		h.Set(HeaderClientVerify, verify)
		h.Set(HeaderClientDN, dn)
		label, err := identify(h, secret)
		if err != nil {
			if label != "" {
				t.Fatal("label with an error")
			}
			return
		}
		if got != secret || len(h.Values(HeaderSecret)) != 1 {
			t.Fatalf("accepted without the secret: %q", got)
		}
		if verify != "SUCCESS" {
			t.Fatalf("accepted an unverified certificate: %q", verify)
		}
		if !ValidLabel(label) || !strings.Contains(dn, label) && !strings.Contains(dn, "\\") {
			t.Fatalf("label %q from DN %q", label, dn)
		}
		if _, err := identify(h, ""); err == nil {
			t.Fatal("accepted with no secret configured")
		}
	})
}

func FuzzParseRemotesMsg(f *testing.F) {
	f.Add([]byte(`{"remotes":["R:127.0.0.1:20001:127.0.0.1:8080"]}`))
	f.Add([]byte(`{"remotes":[]}`))
	f.Add([]byte(`{"remotes":["x","y"],"more":1}`))
	f.Add([]byte(`{"remotes":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := parseRemotesMsg(b)
		if err != nil {
			return
		}
		if len(rs) == 0 || len(rs) > maxRemotes {
			t.Fatalf("%d remotes accepted", len(rs))
		}
		for _, r := range rs {
			if len(r) > maxRemoteLen {
				t.Fatal("over-long remote accepted")
			}
		}
	})
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"Version":"1.12.0","Remotes":[{"LocalHost":"127.0.0.1","LocalPort":"20001","LocalProto":"tcp","RemoteHost":"127.0.0.1","RemotePort":"8080","RemoteProto":"tcp","Socks":false,"Reverse":true,"Stdio":false}]}`))
	f.Add([]byte(`{"Version":"x","Remotes":null,"Portlama":1}`))
	f.Add([]byte(`{"Remotes":[null]}`))
	f.Add([]byte(`nope`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseConfig(b)
		if err != nil {
			return
		}
		if len(c.Remotes) > maxRemotes {
			t.Fatal("too many remotes accepted")
		}
		for _, spec := range c.Remotes {
			r, ref := checkSpec(spec)
			if ref != nil {
				continue
			}
			if spec.LocalHost != "127.0.0.1" || !spec.Reverse || spec.Socks || spec.Stdio {
				t.Fatalf("accepted %+v", spec)
			}
			if _, err := ParseRemote(r.String()); err != nil {
				t.Fatalf("accepted %+v whose canonical form %q does not parse: %v", spec, r.String(), err)
			}
		}
	})
}

func FuzzParseBindReply(f *testing.F) {
	want := []string{"R:127.0.0.1:1:a:1", "R:127.0.0.1:2:a:1"}
	f.Add([]byte(`{"results":[{"remote":"R:127.0.0.1:1:a:1","ok":true},{"remote":"R:127.0.0.1:2:a:1","code":"denied","error":"access to 'R:127.0.0.1:2' denied"}]}`))
	f.Add([]byte(`{"results":[{"remote":"R:127.0.0.1:1:a:1","ok":true}]}`))
	f.Add([]byte(`{"results":[{"remote":"R:127.0.0.1:2:a:1","ok":true},{"remote":"R:127.0.0.1:1:a:1","ok":true}]}`))
	f.Add([]byte(`{"results":[{"remote":"R:127.0.0.1:1:a:1"},{"remote":"R:127.0.0.1:2:a:1"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := parseBindReply(b, want)
		if err != nil {
			return
		}
		if len(res) != len(want) {
			t.Fatal("wrong number of results accepted")
		}
		for i, r := range res {
			if r.Remote != want[i] || (!r.OK && r.Code == "") {
				t.Fatalf("result %d: %+v", i, r)
			}
		}
	})
}

func FuzzParseUnbound(f *testing.F) {
	f.Add(mustJSON(unboundMsg{Remote: "R:127.0.0.1:1:a:1", Code: CodeRemoved, Error: "x"}))
	f.Add([]byte(`{"remote":"","code":"moved"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseUnbound(b)
		if err != nil {
			return
		}
		if m.Remote == "" || m.Code == "" || len(b) > 4096 {
			t.Fatalf("accepted %+v", m)
		}
		if _, err := json.Marshal(m); err != nil {
			t.Fatal(err)
		}
	})
}
