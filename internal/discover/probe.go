package discover

import (
	"context"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Probe is what an HTTP GET / answered.
type Probe struct {
	Status int    `json:"status"`
	Title  string `json:"title,omitempty"`
	Server string `json:"server,omitempty"`
	// body and header are the start of the answer and its header, for the
	// catalog's matches.
	body   string
	header http.Header
}

// probeLimit bounds what is read of an answer.
const probeLimit = 64 << 10

// ProbeHTTP sends GET / to port on loopback with a short timeout. It
// follows no redirect (a redirect is an answer: the app speaks HTTP) and
// reads at most probeLimit bytes. An error means no HTTP answer.
func ProbeHTTP(ctx context.Context, port int, timeout time.Duration) (*Probe, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := &http.Client{
		Transport: &http.Transport{
			DialContext:       (&net.Dialer{Timeout: timeout}).DialContext,
			DisableKeepAlives: true,
			Proxy:             nil, // never through a proxy: it is this machine
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(port)+"/", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "portlama-agent discovery")
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("probe port %d: %w", port, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, probeLimit))
	return &Probe{Status: resp.StatusCode, Title: Title(string(b)), Server: cleanProcess(resp.Header.Get("Server")), body: string(b), header: resp.Header}, nil
}

var titleRE = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)

// Title returns the HTML page title (entities decoded, blanks collapsed,
// at most 120 characters), or "".
func Title(page string) string {
	m := titleRE.FindStringSubmatch(page)
	if m == nil {
		return ""
	}
	t := strings.Join(strings.Fields(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, html.UnescapeString(m[1]))), " ")
	if r := []rune(t); len(r) > 120 {
		t = string(r[:120])
	}
	return t
}
