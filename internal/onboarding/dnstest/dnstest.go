// Package dnstest runs a small authoritative DNS server on a loopback UDP
// port for tests and the demo: A records are set at run time, unknown names
// answer NXDOMAIN, and names can be made to fail with any response code.
package dnstest

import (
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// Server is a running DNS server. Names are compared case-insensitively
// without the trailing dot.
type Server struct {
	Addr string // host:port the server listens on

	srv     *dns.Server
	mu      sync.Mutex
	records map[string][]string
	rcodes  map[string]int
	nodata  map[string]bool
}

// Start listens on addr (e.g. "127.0.0.1:0") over UDP and serves until Close.
func Start(addr string) (*Server, error) {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen dns on %s: %w", addr, err)
	}
	s := &Server{Addr: pc.LocalAddr().String(), records: map[string][]string{}, rcodes: map[string]int{}, nodata: map[string]bool{}}
	started := make(chan struct{})
	s.srv = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serve), NotifyStartedFunc: func() { close(started) }}
	go s.srv.ActivateAndServe()
	<-started
	return s, nil
}

// Close stops the server.
func (s *Server) Close() error { return s.srv.Shutdown() }

func key(name string) string { return strings.ToLower(strings.TrimSuffix(name, ".")) }

// SetA sets the A records of name (replacing earlier ones); no IPs removes
// it. A name "*.<zone>" answers for every name one label below <zone>
// that has no records of its own (a DNS wildcard).
func (s *Server) SetA(name string, ips ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(ips) == 0 {
		delete(s.records, key(name))
		return
	}
	s.records[key(name)] = ips
}

// SetNoData makes name exist without A records (NOERROR, empty answer).
func (s *Server) SetNoData(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nodata[key(name)] = true
}

// SetRcode makes queries for name fail with rcode (e.g. dns.RcodeServerFailure).
func (s *Server) SetRcode(name string, rcode int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rcodes[key(name)] = rcode
}

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if len(req.Question) == 1 {
		q := req.Question[0]
		k := key(q.Name)
		s.mu.Lock()
		rcode, failing := s.rcodes[k]
		ips, found := s.records[k]
		if _, parent, ok := strings.Cut(k, "."); !found && ok {
			ips, found = s.records["*."+parent]
		}
		nodata := s.nodata[k]
		s.mu.Unlock()
		switch {
		case failing:
			m.Rcode = rcode
		case found:
			if q.Qtype == dns.TypeA {
				for _, ip := range ips {
					m.Answer = append(m.Answer, &dns.A{
						Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
						A:   net.ParseIP(ip).To4(),
					})
				}
			}
		case nodata:
		default:
			m.Rcode = dns.RcodeNameError
		}
	}
	_ = w.WriteMsg(m)
}
