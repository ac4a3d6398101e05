package onboarding

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"time"

	"github.com/miekg/dns"
)

// Resolver looks up the IPv4 addresses of a name. A name that does not
// exist, has no A record, or whose lookup timed out yields an empty answer
// and no error; other DNS failures (SERVFAIL, REFUSED, malformed replies)
// are errors.
type Resolver interface {
	LookupA(ctx context.Context, name string) ([]string, error)
}

// DNSServerResolver asks one DNS server directly over UDP (TCP when the
// reply is truncated). Tests and the demo point it at a local server.
type DNSServerResolver struct {
	Server  string        // host:port of the DNS server
	Timeout time.Duration // per query; default 3 s
}

// LookupA implements Resolver.
func (r DNSServerResolver) LookupA(ctx context.Context, name string) ([]string, error) {
	timeout := r.Timeout
	if timeout == 0 {
		timeout = 3 * time.Second
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	m.RecursionDesired = true
	c := &dns.Client{Net: "udp", Timeout: timeout}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, _, err := c.ExchangeContext(ctx, m, r.Server)
	if err == nil && resp.Truncated {
		c.Net = "tcp"
		resp, _, err = c.ExchangeContext(ctx, m, r.Server)
	}
	if err != nil {
		if isTimeout(err) {
			return []string{}, nil
		}
		return nil, fmt.Errorf("resolve %s at %s: %w", name, r.Server, err)
	}
	switch resp.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		return []string{}, nil
	default:
		return nil, fmt.Errorf("resolve %s at %s: server answered %s", name, r.Server, dns.RcodeToString[resp.Rcode])
	}
	ips := []string{}
	for _, rr := range resp.Answer {
		if a, ok := rr.(*dns.A); ok {
			ips = append(ips, a.A.String())
		}
	}
	return sortUnique(ips), nil
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// SystemResolver uses the host's resolver configuration (production).
type SystemResolver struct {
	Resolver *net.Resolver // nil → net.DefaultResolver
	Timeout  time.Duration // per lookup; default 5 s
}

// LookupA implements Resolver.
func (r SystemResolver) LookupA(ctx context.Context, name string) ([]string, error) {
	res := r.Resolver
	if res == nil {
		res = net.DefaultResolver
	}
	timeout := r.Timeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addrs, err := res.LookupIP(ctx, "ip4", name)
	if err != nil {
		var de *net.DNSError
		if errors.As(err, &de) && (de.IsNotFound || de.IsTimeout) || isTimeout(err) {
			return []string{}, nil
		}
		return nil, fmt.Errorf("resolve %s: %w", name, err)
	}
	ips := make([]string, 0, len(addrs))
	for _, a := range addrs {
		if v4 := a.To4(); v4 != nil {
			ips = append(ips, v4.String())
		}
	}
	return sortUnique(ips), nil
}

func sortUnique(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
