package discover

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseLsof(t *testing.T) {
	f, err := os.Open("testdata/lsof-macos.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := merge(parseLsof(f))
	type row struct {
		port    int
		process string
		local   bool
	}
	var rows []row
	for _, l := range got {
		rows = append(rows, row{l.Port, l.Process, l.Local()})
	}
	want := []row{{22, "launchd", true}, {5173, "node", true}, {7000, "ControlCe", true}, {8123, "com.docke", true},
		{8888, "Python", true}, {9222, "Google", false}, {11434, "ollama", true}, {49152, "rapportd", true}}
	if !reflect.DeepEqual(rows, want) {
		t.Fatalf("got %+v\nwant %+v", rows, want)
	}
}

func TestParseProcNetTCP(t *testing.T) {
	f, err := os.Open("testdata/proc-net-tcp.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := parseProcNetTCP(f)
	if err != nil {
		t.Fatal(err)
	}
	want := []procSocket{
		{netip.MustParseAddr("127.0.0.1"), 8080, 61910},
		{netip.MustParseAddr("0.0.0.0"), 22, 12345},
		{netip.MustParseAddr("192.168.1.20"), 9090, 777},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
	f6, err := os.Open("testdata/proc-net-tcp6.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f6.Close()
	got, err = parseProcNetTCP(f6)
	if err != nil {
		t.Fatal(err)
	}
	want = []procSocket{{netip.MustParseAddr("::1"), 5173, 5555}, {netip.MustParseAddr("::"), 8123, 6666}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("tcp6 got %+v", got)
	}
}

// TestDiscoverFindsListener: a server this test starts is found with its
// process and title; a port that was closed again is not.
func TestDiscoverFindsListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "<html><head><title>  Test &amp; App\n</title></head><body><script src=/@vite/client></script></body></html>")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	port := ln.Addr().(*net.TCPAddr).Port

	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svcs, err := Discover(ctx, Options{Catalog: DefaultCatalog(), Tunnelled: map[int]string{port: "already"}})
	if err != nil {
		t.Fatal(err)
	}
	var found *Service
	for i, s := range svcs {
		if s.Port == closedPort {
			t.Fatalf("the closed port %d was listed", closedPort)
		}
		if s.Port == port {
			found = &svcs[i]
		}
	}
	if found == nil {
		t.Fatalf("port %d not found in %+v", port, svcs)
	}
	// comm is the executable's name cut to 15 bytes: "discover.test".
	if found.PID != os.Getpid() || found.Process != "discover.test" {
		t.Fatalf("owner %d %q, want %d discover.test", found.PID, found.Process, os.Getpid())
	}
	if !found.HTTP || found.Status != 200 || found.Title != "Test & App" || found.AppID != "vite" || found.Subdomain != "dev" || found.Tunnel != "already" {
		t.Fatalf("service %+v", *found)
	}

	// Excluded ports are not listed.
	svcs, err = Discover(ctx, Options{Catalog: DefaultCatalog(), Exclude: []int{port}})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range svcs {
		if s.Port == port {
			t.Fatal("an excluded port was listed")
		}
	}
}

func TestDefaultCatalog(t *testing.T) {
	if _, err := LoadCatalog(catalogJSON); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCatalog([]byte(`[{"id":"x","name":"X","subdomain":"Bad_","access":"public"}]`)); err == nil {
		t.Fatal("an invalid subdomain was accepted")
	}
}

func TestRecognise(t *testing.T) {
	c := DefaultCatalog()
	cases := []struct {
		port int
		p    *Probe
		want string
	}{
		{11434, &Probe{body: "Ollama is running"}, "ollama"},
		{9999, &Probe{Title: "Grafana"}, "grafana"},
		{8123, nil, "home-assistant"},
		{8080, &Probe{body: "hello"}, "http-server"},
		{9999, &Probe{body: "hello"}, ""},
		{32400, &Probe{header: http.Header{"X-Plex-Protocol": {"1.0"}}}, "plex"},
	}
	for _, tc := range cases {
		a := c.Recognise(tc.port, tc.p)
		got := ""
		if a != nil {
			got = a.ID
		}
		if got != tc.want {
			t.Errorf("port %d %+v: %q, want %q", tc.port, tc.p, got, tc.want)
		}
	}
}

func TestSubdomainFrom(t *testing.T) {
	for in, want := range map[string]string{"node": "node", "Python3.12": "python3-12", "--": "", "api": "", strings.Repeat("a", 40): strings.Repeat("a", 30)} {
		if got := SubdomainFrom(in); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

func FuzzParseLsof(f *testing.F) {
	data, _ := os.ReadFile("testdata/lsof-macos.txt")
	f.Add(string(data))
	f.Add("x 1 u 3u IPv4 0 0t0 TCP [::1:80 (LISTEN)")
	f.Fuzz(func(t *testing.T, s string) {
		for _, l := range parseLsof(strings.NewReader(s)) {
			if l.Port <= 0 || l.Port > 65535 || l.PID <= 0 || !l.Addr.IsValid() {
				t.Fatalf("bad listener %+v", l)
			}
		}
	})
}

func FuzzParseProcNetTCP(f *testing.F) {
	for _, p := range []string{"testdata/proc-net-tcp.txt", "testdata/proc-net-tcp6.txt"} {
		data, _ := os.ReadFile(p)
		f.Add(string(data))
	}
	f.Fuzz(func(t *testing.T, s string) {
		socks, _ := parseProcNetTCP(strings.NewReader(s))
		for _, so := range socks {
			if so.Port < 0 || so.Port > 65535 || !so.Addr.IsValid() {
				t.Fatalf("bad socket %+v", so)
			}
		}
	})
}

func FuzzTitle(f *testing.F) {
	f.Add("<title>a &amp; b</title>")
	f.Add("<TITLE x=1>\n\x00x</title>")
	f.Fuzz(func(t *testing.T, s string) {
		got := Title(s)
		if len([]rune(got)) > 120 || strings.ContainsAny(got, "\n\r\t\x00") {
			t.Fatalf("title %q", got)
		}
	})
}

func FuzzSubdomainFrom(f *testing.F) {
	f.Add("node")
	f.Add("Google\\x20Chrome")
	f.Fuzz(func(t *testing.T, s string) {
		if got := SubdomainFrom(s); got != "" && (len(got) > 30 || strings.ContainsAny(got, "_. ")) {
			t.Fatalf("subdomain %q", got)
		}
	})
}
