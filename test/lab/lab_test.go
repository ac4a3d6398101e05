package lab

import (
	"net/netip"
	"reflect"
	"testing"
)

func TestParseSS(t *testing.T) {
	out := `tcp   LISTEN 0      511          0.0.0.0:80        0.0.0.0:*    users:(("nginx",pid=41,fd=5),("nginx",pid=40,fd=5))
tcp   LISTEN 0      4096       127.0.0.1:3100      0.0.0.0:*    users:(("portlama",pid=90,fd=7))
tcp   LISTEN 0      128             [::]:22           [::]:*    users:(("sshd",pid=38,fd=4))
udp   UNCONN 0      0      127.0.0.1%lo:323        0.0.0.0:*
tcp   LISTEN 0      128                *:8080             *:*
`
	ls, err := ParseSS(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []Listener{
		{Proto: "tcp", Addr: netip.MustParseAddrPort("0.0.0.0:80"), Processes: []string{"nginx", "nginx"}},
		{Proto: "tcp", Addr: netip.MustParseAddrPort("127.0.0.1:3100"), Processes: []string{"portlama"}},
		{Proto: "tcp", Addr: netip.MustParseAddrPort("[::]:22"), Processes: []string{"sshd"}},
		{Proto: "udp", Addr: netip.MustParseAddrPort("127.0.0.1:323")},
		{Proto: "tcp", Addr: netip.MustParseAddrPort("0.0.0.0:8080")},
	}
	if !reflect.DeepEqual(ls, want) {
		t.Fatalf("got %+v\nwant %+v", ls, want)
	}
	if ls[0].Public() != true || ls[1].Public() != false {
		t.Fatal("Public")
	}
	if _, err := ParseSS("tcp LISTEN 0 1 nonsense x\n"); err == nil {
		t.Fatal("bad address accepted")
	}
}

func TestRootfsKey(t *testing.T) {
	a := rootfsKey("http://m", []string{"b", "a"})
	if a != rootfsKey("http://m", []string{"a", "b"}) {
		t.Fatal("the key depends on the package order")
	}
	if a == rootfsKey("http://m", []string{"a", "b", "c"}) || a == rootfsKey("http://n", []string{"a", "b"}) {
		t.Fatal("the key ignores packages or the mirror")
	}
}
