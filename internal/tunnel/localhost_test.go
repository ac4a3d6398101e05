package tunnel

import "testing"

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
