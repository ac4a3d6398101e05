package pebble

import (
	"net"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// dnsFront is the DNS server clients see: it answers SOA queries for the
// zones added with AddZone (pebble-challtestsrv answers SOA with NOTIMP,
// and lego finds a domain's zone through SOA, as a DNS provider's API
// needs it) and forwards every other query to challtestsrv.
type dnsFront struct {
	upstream string
	udp, tcp *dns.Server

	mu    sync.Mutex
	zones map[string]bool // fqdn with trailing dot
}

func startDNSFront(upstream string) (*dnsFront, string, error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	addr := pc.LocalAddr().String()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		pc.Close()
		return nil, "", err
	}
	f := &dnsFront{upstream: upstream, zones: map[string]bool{}}
	f.udp = &dns.Server{PacketConn: pc, Handler: f}
	f.tcp = &dns.Server{Listener: ln, Handler: f}
	go f.udp.ActivateAndServe()
	go f.tcp.ActivateAndServe()
	return f, addr, nil
}

func (f *dnsFront) close() {
	f.udp.Shutdown()
	f.tcp.Shutdown()
}

func (f *dnsFront) addZone(zone string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.zones[dns.Fqdn(strings.ToLower(zone))] = true
}

func (f *dnsFront) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	if len(r.Question) == 1 && r.Question[0].Qtype == dns.TypeSOA {
		q := r.Question[0]
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		f.mu.Lock()
		isZone := f.zones[strings.ToLower(q.Name)]
		f.mu.Unlock()
		if isZone {
			m.Answer = append(m.Answer, &dns.SOA{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 30},
				Ns:  "ns." + q.Name, Mbox: "hostmaster." + q.Name,
				Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: 30,
			})
		}
		w.WriteMsg(m)
		return
	}
	c := &dns.Client{Timeout: 5 * time.Second}
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		c.Net = "tcp"
	}
	in, _, err := c.Exchange(r, f.upstream)
	if err != nil {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeServerFailure)
		w.WriteMsg(m)
		return
	}
	w.WriteMsg(in)
}
