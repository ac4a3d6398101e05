package panel

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/config"
)

const sessionSecret = "8f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"

const twoFARequired = `{"error":"2fa_required"}`

func enable2FA(t *testing.T, h *harness, secret *string) {
	t.Helper()
	if _, err := h.store.Update(func(c *config.PanelConfig) error {
		s := "JBSWY3DPEHPK3PXP"
		c.Panel2FA.Enabled = true
		c.Panel2FA.SetupComplete = true
		c.Panel2FA.Secret = &s
		c.SessionSecret = secret
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func withCookie(hdr http.Header, value string) http.Header {
	hdr.Add("Cookie", SessionCookieName+"="+value)
	return hdr
}

func cookieFor(t *testing.T, s Session) string {
	t.Helper()
	v, err := EncodeSession(s, sessionSecret)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestTwoFASession(t *testing.T) {
	h := newHarness(t, config.StatusCompleted)
	h.addAgent("home", "AB", api.CapSystemRead)
	secret := sessionSecret
	enable2FA(t, h, &secret)
	const path = "/api/system/stats"
	now := h.clock()
	valid := cookieFor(t, NewSession("A1B2C", now))

	// No cookie → 401; agents are not subject to 2FA; health is exempt.
	h.do("GET", path, "", adminHeaders()).expect(t, 401, twoFARequired)
	h.do("GET", "/api/onboarding/status", "", adminHeaders()).expect(t, 401, twoFARequired)
	h.do("GET", path, "", agentHeaders("home", "AB")).expect(t, 200, "")
	h.do("GET", "/api/health", "", nil).expect(t, 200, "")
	h.do("GET", "/api/health?x", "", adminHeaders()).expect(t, 200, "")

	// Valid cookie passes, no refresh within 60 s.
	r := h.do("GET", path, "", withCookie(adminHeaders(), valid))
	r.expect(t, 200, "")
	if r.header.Get("Set-Cookie") != "" {
		t.Fatalf("refreshed a fresh session: %s", r.header.Get("Set-Cookie"))
	}

	// 2FA runs before the onboarding gate and the guard: 401 wins over 410.
	h.do("POST", "/api/onboarding/domain", `{}`, adminHeaders()).expect(t, 401, twoFARequired)

	bad := map[string]string{
		"tampered signature": valid[:len(valid)-2] + flip(valid[len(valid)-2:]),
		"tampered payload":   tamperPayload(t, valid),
		"other serial":       cookieFor(t, NewSession("FFFF", now)),
		"expired":            cookieFor(t, Session{IssuedAt: now.Unix() - 43300, ExpiresAt: now.Unix() - 1, LastActivity: now.Unix() - 10, CertSerial: "A1B2C"}),
		"idle > 2h":          cookieFor(t, Session{IssuedAt: now.Unix() - 7300, ExpiresAt: now.Unix() + 3600, LastActivity: now.Unix() - 7201, CertSerial: "A1B2C"}),
		"no dot":             strings.ReplaceAll(valid, ".", ""),
		"garbage":            "!!!.???",
		"empty":              "",
		"other secret":       otherSecretCookie(t, now),
	}
	for name, v := range bad {
		t.Run(name, func(t *testing.T) {
			h.do("GET", path, "", withCookie(adminHeaders(), v)).expect(t, 401, twoFARequired)
		})
	}

	// Idle exactly 2 h is still valid.
	edge := cookieFor(t, Session{IssuedAt: now.Unix() - 7200, ExpiresAt: now.Unix() + 3600, LastActivity: now.Unix() - 7200, CertSerial: "A1B2C"})
	h.do("GET", path, "", withCookie(adminHeaders(), edge)).expect(t, 200, "")
}

func TestTwoFASlidingRefresh(t *testing.T) {
	h := newHarness(t, config.StatusCompleted)
	secret := sessionSecret
	enable2FA(t, h, &secret)
	start := h.clock()
	v := cookieFor(t, NewSession("A1B2C", start))
	h.advance(90 * time.Minute)
	r := h.do("GET", "/api/system/stats", "", withCookie(adminHeaders(), v))
	r.expect(t, 200, "")
	resp := http.Response{Header: r.header}
	cookies := resp.Cookies()
	if len(cookies) != 1 || cookies[0].Name != SessionCookieName {
		t.Fatalf("no refreshed cookie: %v", r.header["Set-Cookie"])
	}
	c := cookies[0]
	if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
		t.Fatalf("cookie attributes: %s", r.header.Get("Set-Cookie"))
	}
	wantMaxAge := int(12*time.Hour/time.Second) - 90*60
	if c.MaxAge != wantMaxAge {
		t.Fatalf("Max-Age %d, want %d", c.MaxAge, wantMaxAge)
	}
	sess, err := DecodeSession(c.Value, sessionSecret)
	if err != nil || sess.LastActivity != h.clock().Unix() || sess.ExpiresAt != start.Unix()+43200 {
		t.Fatalf("refreshed session %+v %v", sess, err)
	}
	// Another 90 minutes: the old cookie is idle too long, the refreshed one works.
	h.advance(90 * time.Minute)
	h.do("GET", "/api/system/stats", "", withCookie(adminHeaders(), v)).expect(t, 401, twoFARequired)
	h.do("GET", "/api/system/stats", "", withCookie(adminHeaders(), c.Value)).expect(t, 200, "")
	// Past the absolute lifetime nothing helps.
	h.advance(10 * time.Hour)
	h.do("GET", "/api/system/stats", "", withCookie(adminHeaders(), c.Value)).expect(t, 401, twoFARequired)
}

func TestTwoFAWithoutSessionSecret(t *testing.T) {
	h := newHarness(t, config.StatusCompleted)
	enable2FA(t, h, nil)
	v := cookieFor(t, NewSession("A1B2C", h.clock()))
	h.do("GET", "/api/system/stats", "", withCookie(adminHeaders(), v)).expect(t, 401, twoFARequired)
}

func TestTwoFAExemptRoute(t *testing.T) {
	h := newHarness(t, config.StatusCompleted)
	secret := sessionSecret
	enable2FA(t, h, &secret)
	// GET /api/settings/2fa is exempt: it answers without a 2FA session.
	h.do("GET", "/api/settings/2fa", "", adminHeaders()).expect(t, 200, `{"enabled":true,"setupComplete":true}`)
}

func flip(s string) string {
	b := []byte(s)
	for i := range b {
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
	}
	return string(b)
}

func tamperPayload(t *testing.T, v string) string {
	payload, sig, _ := strings.Cut(v, ".")
	data, _ := base64.RawURLEncoding.DecodeString(payload)
	var s Session
	json.Unmarshal(data, &s)
	s.ExpiresAt += 86400
	data, _ = json.Marshal(s)
	return base64.RawURLEncoding.EncodeToString(data) + "." + sig
}

func otherSecretCookie(t *testing.T, now time.Time) string {
	v, err := EncodeSession(NewSession("A1B2C", now), strings.Repeat("ab", 32))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestSessionRoundTrip(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	v, err := EncodeSession(NewSession("0a1b", now), sessionSecret)
	if err != nil {
		t.Fatal(err)
	}
	s, err := DecodeSession(v, sessionSecret)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check("A1B", now); err != nil {
		t.Fatalf("normalised serial refused: %v", err)
	}
	if _, err := EncodeSession(s, "not hex"); err == nil {
		t.Fatal("non-hex secret accepted")
	}
}

func FuzzDecodeSession(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	valid, _ := EncodeSession(NewSession("A1B2C", now), sessionSecret)
	for _, s := range []string{valid, "", ".", "a.b", valid + "=", "e30.e30", strings.Repeat("a", 2000)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		s, err := DecodeSession(v, sessionSecret)
		if err != nil {
			return
		}
		// Whatever decodes must carry a valid signature: re-encoding the
		// same payload string must give the same signature.
		payload, sig, _ := strings.Cut(v, ".")
		if sign(mustKey(t), payload) != sig {
			t.Fatalf("accepted a cookie with a wrong signature: %q", v)
		}
		_ = s.Check("A1B2C", now)
	})
}

func mustKey(t *testing.T) []byte {
	k, err := sessionKey(sessionSecret)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
