package agents

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/pki"
)

func TestNormalizeCapabilities(t *testing.T) {
	cases := []struct {
		in      []string
		want    []string
		invalid string
	}{
		{nil, []string{"tunnels:read"}, ""},
		{[]string{}, []string{"tunnels:read"}, ""},
		{[]string{"tunnels:write"}, []string{"tunnels:read", "tunnels:write"}, ""},
		{[]string{"sites:read", "tunnels:read"}, []string{"sites:read", "tunnels:read"}, ""},
		{[]string{"system:read", "system:read"}, []string{"tunnels:read", "system:read"}, ""},
		{api.Capabilities(), api.Capabilities(), ""},
		{[]string{"tunnels:read", "admin"}, nil, "admin"},
		{[]string{"Tunnels:read"}, nil, "Tunnels:read"},
		{[]string{""}, nil, ""},
		{[]string{"tunnels:read "}, nil, "tunnels:read "},
	}
	for _, tc := range cases {
		got, err := NormalizeCapabilities(tc.in)
		if tc.want == nil {
			var ce *CapabilityError
			if !errors.As(err, &ce) || ce.Capability != tc.invalid || err.Error() != "Invalid capability: "+tc.invalid {
				t.Errorf("NormalizeCapabilities(%q) error = %v, want Invalid capability: %s", tc.in, err, tc.invalid)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("NormalizeCapabilities(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if len(api.Capabilities()) != 10 {
		t.Errorf("capability set has %d entries, want 10", len(api.Capabilities()))
	}
}

func FuzzNormalizeCapabilities(f *testing.F) {
	f.Add("tunnels:read,sites:write")
	f.Add("")
	f.Add("admin")
	f.Add("panel:expose,panel:expose,identity:query")
	f.Fuzz(func(t *testing.T, list string) {
		in := strings.Split(list, ",")
		got, err := NormalizeCapabilities(in)
		if err != nil {
			var ce *CapabilityError
			if !errors.As(err, &ce) || api.IsCapability(ce.Capability) || !slices.Contains(in, ce.Capability) {
				t.Fatalf("bad error %v for %q", err, in)
			}
			return
		}
		if !slices.Contains(got, api.CapTunnelsRead) {
			t.Fatal("tunnels:read missing")
		}
		seen := map[string]bool{}
		for _, c := range got {
			if !api.IsCapability(c) || seen[c] {
				t.Fatalf("result %q has an unknown or duplicate capability", got)
			}
			seen[c] = true
		}
		for _, c := range in {
			if !seen[c] {
				t.Fatalf("result %q lost %q", got, c)
			}
		}
	})
}

func TestIssueP12(t *testing.T) {
	e := newEnv(t)
	res, err := e.m.IssueP12(e.ctx, "home", []string{"tunnels:write"}, []string{"blog"})
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(res.Password) {
		t.Errorf("password %q", res.Password)
	}
	dir := filepath.Join(e.pki.Dir(), "agents", "home")
	for name, mode := range map[string]os.FileMode{"": 0o700, "client.key": 0o600, "client.crt": 0o644, "client.p12": 0o600} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s/%s: %v mode %v, want %o", dir, name, err, fi.Mode().Perm(), mode)
		}
	}
	fi, err := os.Stat(filepath.Join(e.pki.Dir(), "agents", "registry.json"))
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("registry.json mode: %v %v", err, fi.Mode().Perm())
	}
	onDisk, err := e.m.AgentP12("home")
	if err != nil || string(onDisk) != string(res.P12) {
		t.Fatalf("AgentP12: %v", err)
	}
	_, cert, cas, err := pkcs12.DecodeChain(onDisk, res.Password)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.String() != "CN=agent:home,O=Portlama" || len(cas) != 1 || !cas[0].Equal(e.pki.CACert()) {
		t.Errorf("P12 holds %s with %d CA certificates", cert.Subject, len(cas))
	}
	if pki.FormatSerial(cert.SerialNumber) != res.Serial {
		t.Error("serial mismatch")
	}
	en := e.entry(t, "home")
	want := Entry{
		Label: "home", Serial: res.Serial, Capabilities: []string{"tunnels:read", "tunnels:write"},
		AllowedSites: []string{"blog"}, EnrollmentMethod: "p12", CreatedAt: "2026-03-01T12:00:00.000Z",
		ExpiresAt: pki.Timestamp(cert.NotAfter),
	}
	if !entriesEqual(en, want) {
		t.Errorf("entry = %+v\nwant %+v", en, want)
	}
	if !e.tunnels.has("home") {
		t.Error("tunnel credentials not created")
	}
	raw, _ := os.ReadFile(filepath.Join(e.pki.Dir(), "agents", "registry.json"))
	if strings.Contains(string(raw), "revokedAt") || !strings.Contains(string(raw), `"revoked": false`) {
		t.Errorf("registry.json: %s", raw)
	}
}

func entriesEqual(a, b Entry) bool {
	return a.Label == b.Label && a.Serial == b.Serial && slices.Equal(a.Capabilities, b.Capabilities) &&
		slices.Equal(a.AllowedSites, b.AllowedSites) && a.EnrollmentMethod == b.EnrollmentMethod &&
		a.CreatedAt == b.CreatedAt && a.ExpiresAt == b.ExpiresAt && a.Revoked == b.Revoked && a.RevokedAt == b.RevokedAt
}

func TestIssueP12Errors(t *testing.T) {
	e := newEnv(t)
	if _, err := e.m.IssueP12(e.ctx, "taken", nil, nil); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		label string
		caps  []string
		check func(t *testing.T, err error)
	}{
		{"exists", "taken", nil, func(t *testing.T, err error) {
			wantLabelErr(t, err, ErrExists, `Agent certificate with label "taken" already exists`)
		}},
		{"path traversal", "../evil", nil, func(t *testing.T, err error) { wantLabelErr(t, err, ErrInvalidLabel, "") }},
		{"upper case", "Home", nil, func(t *testing.T, err error) { wantLabelErr(t, err, ErrInvalidLabel, "") }},
		{"empty", "", nil, func(t *testing.T, err error) { wantLabelErr(t, err, ErrInvalidLabel, "") }},
		{"too long", strings.Repeat("a", 51), nil, func(t *testing.T, err error) { wantLabelErr(t, err, ErrInvalidLabel, "") }},
		{"colon", "agent:x", nil, func(t *testing.T, err error) { wantLabelErr(t, err, ErrInvalidLabel, "") }},
		{"bad capability", "fresh", []string{"tunnels:read", "root"}, func(t *testing.T, err error) {
			if err == nil || err.Error() != "Invalid capability: root" {
				t.Fatalf("error = %v", err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.m.IssueP12(e.ctx, tc.label, tc.caps, nil)
			tc.check(t, err)
		})
	}
	if list, _ := e.m.List(); len(list) != 1 {
		t.Errorf("failed calls left %d registry entries", len(list))
	}
	if _, err := os.Stat(filepath.Join(e.pki.Dir(), "evil")); err == nil {
		t.Error("path traversal created a directory")
	}
	if e.tunnels.count("add fresh") != 0 {
		t.Error("tunnel credentials created for a refused request")
	}
}

func TestIssueP12RollsBackOnTunnelFailure(t *testing.T) {
	e := newEnv(t)
	e.tunnels.addErr = errors.New("acl.json: disk full")
	if _, err := e.m.IssueP12(e.ctx, "home", nil, nil); err == nil {
		t.Fatal("IssueP12 succeeded without tunnel credentials")
	}
	if list, _ := e.m.List(); len(list) != 0 {
		t.Errorf("registry has %d entries", len(list))
	}
	if _, err := os.Stat(filepath.Join(e.pki.Dir(), "agents", "home")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("agent directory left behind: %v", err)
	}
	e.tunnels.addErr = nil
	if _, err := e.m.IssueP12(e.ctx, "home", nil, nil); err != nil {
		t.Fatalf("retry after failure: %v", err)
	}
}

func TestIssueP12RollsBackOnRegistryFailure(t *testing.T) {
	e := newEnv(t)
	// A registry that does not parse is an error and must not be overwritten.
	path := filepath.Join(e.pki.Dir(), "agents", "registry.json")
	os.WriteFile(path, []byte("{oops"), 0o640)
	if _, err := e.m.IssueP12(e.ctx, "home", nil, nil); err == nil {
		t.Fatal("IssueP12 succeeded with a broken registry")
	}
	if data, _ := os.ReadFile(path); string(data) != "{oops" {
		t.Error("broken registry overwritten")
	}
	if e.tunnels.has("home") {
		t.Error("tunnel credentials kept after a failure")
	}
}

func TestConcurrentIssueP12SameLabel(t *testing.T) {
	e := newEnv(t)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = e.m.IssueP12(e.ctx, "race", nil, nil)
		})
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case errors.Is(err, ErrExists):
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if wins != 1 {
		t.Errorf("%d calls won, want exactly 1", wins)
	}
	if list, _ := e.m.List(); len(list) != 1 {
		t.Errorf("registry has %d entries", len(list))
	}
	if c := e.tunnels.count("add race"); c != 1 {
		t.Errorf("tunnel credentials created %d times", c)
	}
}

func TestAuthenticate(t *testing.T) {
	e := newEnv(t)
	res, err := e.m.IssueP12(e.ctx, "home", []string{"sites:read"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, serial := range []string{res.Serial, strings.ToLower(res.Serial), "00" + res.Serial} {
		en, ok, err := e.m.Authenticate("home", serial)
		if err != nil || !ok || en.Label != "home" || !slices.Equal(en.Capabilities, []string{"tunnels:read", "sites:read"}) {
			t.Errorf("Authenticate(home, %s) = %+v %v %v", serial, en, ok, err)
		}
	}
	other, _ := pki.NewSerial()
	denied := []struct{ label, serial string }{
		{"home", pki.FormatSerial(other)}, // a certificate that is not the registered one
		{"nobody", res.Serial},            // unregistered label
		{"", res.Serial},
	}
	for _, d := range denied {
		if _, ok, err := e.m.Authenticate(d.label, d.serial); ok || err != nil {
			t.Errorf("Authenticate(%q, %q) accepted (err %v)", d.label, d.serial, err)
		}
	}
	// Unknown capabilities in stored data are filtered out.
	if _, err := e.m.registry.Update(func(r *Registry) error {
		r.Agents[0].Capabilities = []string{"sites:read", "superpower"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	en, ok, _ := e.m.Authenticate("home", res.Serial)
	if !ok || !slices.Equal(en.Capabilities, []string{"tunnels:read", "sites:read"}) {
		t.Errorf("capabilities not filtered: %q", en.Capabilities)
	}
	if en, err := e.m.Lookup("home"); err != nil || !slices.Equal(en.Capabilities, []string{"tunnels:read", "sites:read"}) {
		t.Errorf("Lookup capabilities not filtered: %q %v", en.Capabilities, err)
	}
	if _, err := e.m.Revoke(e.ctx, "home"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := e.m.Authenticate("home", res.Serial); ok {
		t.Error("revoked agent authenticated")
	}
}

func TestTokens(t *testing.T) {
	e := newEnv(t)
	tok, err := e.m.CreateToken("laptop", []string{"tunnels:write"}, []string{"docs"})
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[a-f0-9]{64}$`).MatchString(tok.Token) {
		t.Errorf("token %q", tok.Token)
	}
	if tok.ExpiresAt != "2026-03-01T12:10:00.000Z" || tok.CreatedAt != "2026-03-01T12:00:00.000Z" || tok.Used {
		t.Errorf("token = %+v", tok)
	}
	if !slices.Equal(tok.Capabilities, []string{"tunnels:read", "tunnels:write"}) {
		t.Errorf("token capabilities %q", tok.Capabilities)
	}
	fi, err := os.Stat(filepath.Join(e.pki.Dir(), "enrollment-tokens.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("enrollment-tokens.json mode: %v", err)
	}

	// A second token replaces the pending one.
	tok2, err := e.m.CreateToken("laptop", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok2.Token == tok.Token {
		t.Error("token repeated")
	}
	if _, err := e.m.Enroll(e.ctx, tok.Token, goodCSR(t)); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("replaced token: %v", err)
	}
	if list, _ := e.m.Tokens(); len(list) != 1 || list[0].Token != tok2.Token {
		t.Errorf("tokens = %+v", list)
	}

	// Revocation reports whether a usable token was removed.
	if revoked, err := e.m.RevokeToken("laptop"); err != nil || !revoked {
		t.Errorf("RevokeToken = %v %v, want true", revoked, err)
	}
	if revoked, err := e.m.RevokeToken("laptop"); err != nil || revoked {
		t.Errorf("second RevokeToken = %v %v, want false", revoked, err)
	}
	if _, err := e.m.Enroll(e.ctx, tok2.Token, goodCSR(t)); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("revoked token: %v", err)
	}
	expired, _ := e.m.CreateToken("laptop", nil, nil)
	e.clock.Add(11 * time.Minute)
	if revoked, _ := e.m.RevokeToken("laptop"); revoked {
		t.Error("RevokeToken reported an expired token as revoked")
	}
	if _, err := e.m.Enroll(e.ctx, expired.Token, goodCSR(t)); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("revoked expired token: %v", err)
	}

	// Refusals.
	if _, err := e.m.IssueP12(e.ctx, "taken", nil, nil); err != nil {
		t.Fatal(err)
	}
	_, err = e.m.CreateToken("taken", nil, nil)
	wantLabelErr(t, err, ErrExists, `Agent certificate with label "taken" already exists`)
	_, err = e.m.CreateToken("Bad Label", nil, nil)
	wantLabelErr(t, err, ErrInvalidLabel, "")
	if _, err := e.m.CreateToken("ok", []string{"nope"}, nil); err == nil || err.Error() != "Invalid capability: nope" {
		t.Errorf("bad capability: %v", err)
	}
}
