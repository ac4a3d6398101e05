package agent

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/jpillora/chisel/share/settings"
)

const testFP = "O6ssY+Ss0zrUaXnR0QSxtvlDW9pPHZTU2RqkG5xV3Eg="

func configJSON(tunnels string) []byte {
	return []byte(`{"domain":"example.com","chiselServerUrl":"https://tunnel.example.com:443","auth":"home:` +
		strings.Repeat("a", 64) + `","fingerprint":"` + testFP + `","chiselArgs":["client"],"tunnels":[` + tunnels + `]}`)
}

func TestParseAgentConfigRemotes(t *testing.T) {
	c, err := ParseAgentConfig(configJSON(`
		{"id":"1","subdomain":"app","fqdn":"app.example.com","port":8080,"targetHost":"127.0.0.1","relayPort":20001,"type":"app"},
		{"id":"2","subdomain":"nas","fqdn":"nas.example.com","port":5000,"targetHost":"fd00::5","relayPort":20002,"type":"app"},
		{"id":"3","subdomain":"pi","fqdn":"pi.example.com","port":3000,"targetHost":"raspberrypi.lan","relayPort":20003,"type":"app"},
		{"id":"4","subdomain":"def","fqdn":"def.example.com","port":4000,"relayPort":20004,"type":"app"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"R:127.0.0.1:20001:127.0.0.1:8080",
		"R:127.0.0.1:20002:[fd00::5]:5000",
		"R:127.0.0.1:20003:raspberrypi.lan:3000",
		"R:127.0.0.1:20004:127.0.0.1:4000",
	}
	got := c.Remotes()
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("remotes = %v, want %v", got, want)
	}
	if l := c.Tunnels[1].Local(); l != "[fd00::5]:5000" {
		t.Fatalf("local = %q", l)
	}
	// chisel reads each remote as a reverse remote on the relay's loopback.
	for i, r := range got {
		rem, err := settings.DecodeRemote(r)
		if err != nil || !rem.Reverse || rem.LocalHost != "127.0.0.1" || rem.LocalPort != strconv.Itoa(c.Tunnels[i].RelayPort) {
			t.Fatalf("chisel decodes %q as %+v, %v", r, rem, err)
		}
	}
}

func TestParseAgentConfigRejects(t *testing.T) {
	tun := func(port, relay, host string) string {
		return `{"id":"1","subdomain":"app","fqdn":"app.example.com","port":` + port + `,"targetHost":` + host + `,"relayPort":` + relay + `}`
	}
	base := map[string]any{}
	_ = json.Unmarshal(configJSON(""), &base)
	mod := func(k string, v any) []byte {
		m := map[string]any{}
		for kk, vv := range base {
			m[kk] = vv
		}
		m[k] = v
		b, _ := json.Marshal(m)
		return b
	}
	cases := map[string][]byte{
		"not json":          []byte("{"),
		"http server":       mod("chiselServerUrl", "http://tunnel.example.com"),
		"server with path":  mod("chiselServerUrl", "https://tunnel.example.com/x"),
		"server no host":    mod("chiselServerUrl", "https://"),
		"server bad port":   mod("chiselServerUrl", "https://tunnel.example.com:99999"),
		"auth no colon":     mod("auth", "home"),
		"auth empty pass":   mod("auth", "home:"),
		"auth newline":      mod("auth", "home:a\nb"),
		"no fingerprint":    mod("fingerprint", ""),
		"md5 fingerprint":   mod("fingerprint", "aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99"),
		"port 0":            configJSON(tun("0", "20001", `"127.0.0.1"`)),
		"port 65536":        configJSON(tun("65536", "20001", `"127.0.0.1"`)),
		"port string":       configJSON(tun(`"8080"`, "20001", `"127.0.0.1"`)),
		"relay port -1":     configJSON(tun("8080", "-1", `"127.0.0.1"`)),
		"host with port":    configJSON(tun("8080", "20001", `"127.0.0.1:22"`)),
		"bracketed ipv6":    configJSON(tun("8080", "20001", `"[::1]"`)),
		"ipv6 zone":         configJSON(tun("8080", "20001", `"fe80::1%eth0"`)),
		"host with space":   configJSON(tun("8080", "20001", `"a b"`)),
		"host with slash":   configJSON(tun("8080", "20001", `"a/b"`)),
		"upper-case host":   configJSON(tun("8080", "20001", `"NAS.lan"`)),
		"bad ipv4":          configJSON(tun("8080", "20001", `"1.2.3.256"`)),
		"short ipv4":        configJSON(tun("8080", "20001", `"1.2.3"`)),
		"duplicate relay":   configJSON(tun("8080", "20001", `"a"`) + "," + tun("8081", "20001", `"b"`)),
		"remote injection":  configJSON(tun("8080", "20001", `"127.0.0.1:R:0.0.0.0:1"`)),
		"hyphen label edge": configJSON(tun("8080", "20001", `"-a.lan"`)),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			if c, err := ParseAgentConfig(data); err == nil {
				t.Fatalf("accepted: %+v", c)
			}
		})
	}
}

// FuzzParseAgentConfig: whatever the relay sends, an accepted config yields
// only reverse remotes on the relay's loopback that chisel decodes back to
// the same ports and target host.
func FuzzParseAgentConfig(f *testing.F) {
	f.Add(configJSON(`{"id":"1","subdomain":"a","fqdn":"a.example.com","port":8080,"targetHost":"fd00::5","relayPort":20002}`))
	f.Add(configJSON(`{"port":8080,"relayPort":20001}`))
	f.Add(configJSON(`{"port":8080,"targetHost":"nas.lan","relayPort":20001}`))
	f.Add(configJSON(`{"port":8080,"targetHost":"::ffff:1.2.3.4","relayPort":20001}`))
	f.Add(configJSON(`{"port":0,"targetHost":"x:y","relayPort":1}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseAgentConfig(data)
		if err != nil {
			return
		}
		for i, r := range c.Remotes() {
			tun := c.Tunnels[i]
			rem, err := settings.DecodeRemote(r)
			if err != nil {
				t.Fatalf("remote %q from accepted config does not decode: %v", r, err)
			}
			if !rem.Reverse || rem.LocalHost != "127.0.0.1" || rem.LocalPort != strconv.Itoa(tun.RelayPort) ||
				rem.RemotePort != strconv.Itoa(tun.Port) || strings.Trim(rem.RemoteHost, "[]") != tun.TargetHost {
				t.Fatalf("remote %q decodes to %+v for tunnel %+v", r, rem, tun)
			}
		}
	})
}

func FuzzValidateTargetHost(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "fd00::5", "nas.lan", "a-b.c", "1.2.3", "[::1]", "a b", "x:1", "", "::", "fe80::1%lo", "0.0.0.0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		if ValidateTargetHost(h) != nil {
			return
		}
		if strings.ContainsAny(h, " /[]%@\t\n\\?#") || (!strings.Contains(h, ":") && strings.ToLower(h) != h) {
			t.Fatalf("accepted %q", h)
		}
		r := AgentTunnel{TargetHost: h, Port: 8080, RelayPort: 20001}.Remote()
		rem, err := settings.DecodeRemote(r)
		if err != nil || strings.Trim(rem.RemoteHost, "[]") != h || rem.RemotePort != "8080" {
			t.Fatalf("remote %q for %q decodes to %+v, %v", r, h, rem, err)
		}
	})
}
