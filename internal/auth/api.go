package auth

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/portlama/portlama/internal/api"
)

// Authelia's response envelope.
const (
	statusOK       = "OK"
	statusKO       = "KO"
	msgAuthFailed  = "Authentication failed. Check your credentials."
	msgBadRequest  = "Bad request."
	msgUnsupported = "Unsupported Media Type"
	maxLoginBody   = 16 << 10
)

type envelope struct {
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
	Data    any    `json:"data,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

func writeOK(w http.ResponseWriter, data any) {
	writeJSON(w, http.StatusOK, envelope{Status: statusOK, Data: data})
}

func writeKO(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, envelope{Status: statusKO, Message: msg})
}

// FirstFactorRequest is the body of POST /api/firstfactor (Authelia's);
// the type is the API's (internal/api), shared with its client.
type FirstFactorRequest = api.FirstFactorRequest

// TOTPRequest is the body of POST /api/secondfactor/totp (Authelia's).
type TOTPRequest = api.TOTPRequest

// DecodeFirstFactor parses and checks a first-factor body: a single JSON
// object, username and password present and of sane length.
func DecodeFirstFactor(data []byte) (FirstFactorRequest, error) {
	var req FirstFactorRequest
	if err := decodeStrict(data, &req); err != nil {
		return req, err
	}
	if req.Username == "" || len(req.Username) > 64 || req.Password == "" || len(req.Password) > 1024 {
		return req, errors.New("username and password are required")
	}
	return req, nil
}

// DecodeTOTP parses and checks a TOTP body: the token is 6 digits.
func DecodeTOTP(data []byte) (TOTPRequest, error) {
	var req TOTPRequest
	if err := decodeStrict(data, &req); err != nil {
		return req, err
	}
	if len(req.Token) != TOTPDigits {
		return req, errors.New("token must be 6 digits")
	}
	for i := 0; i < len(req.Token); i++ {
		if req.Token[i] < '0' || req.Token[i] > '9' {
			return req, errors.New("token must be 6 digits")
		}
	}
	return req, nil
}

func decodeStrict(data []byte, v any) error {
	if len(data) > maxLoginBody {
		return errors.New("body too large")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after JSON object")
	}
	return nil
}

// readLoginBody enforces JSON content type, same-origin (when the browser
// says where the request came from) and the size limit.
func (s *Server) readLoginBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct != "application/json" {
		writeKO(w, http.StatusUnsupportedMediaType, msgUnsupported)
		return nil, false
	}
	if !s.sameOrigin(r) {
		writeKO(w, http.StatusForbidden, "Cross-origin request refused")
		return nil, false
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, maxLoginBody+1))
	if err != nil || len(data) > maxLoginBody {
		writeKO(w, http.StatusBadRequest, msgBadRequest)
		return nil, false
	}
	return data, true
}

// sameOrigin refuses browser requests from other origins: Origin, when
// present, must be the portal's; Sec-Fetch-Site, when present, must be
// same-origin (or none, for typed navigation).
func (s *Server) sameOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" && o != s.cfg.PortalURL {
		return false
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return true
	}
	return false
}

// clientIP is the visitor's address: nginx's X-Real-IP, else the last
// X-Forwarded-For entry (the one nginx appended), else the peer. The server
// listens on loopback only, so these headers come from nginx.
func clientIP(r *http.Request) string {
	if v := strings.TrimSpace(r.Header.Get("X-Real-IP")); v != "" {
		return v
	}
	if v := r.Header.Get("X-Forwarded-For"); v != "" {
		parts := strings.Split(v, ",")
		if last := strings.TrimSpace(parts[len(parts)-1]); last != "" {
			return last
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (s *Server) setSessionCookie(w http.ResponseWriter, value string, remember bool) {
	c := &http.Cookie{Name: SessionCookieName, Value: value, Domain: s.cfg.Domain, Path: "/",
		HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode}
	if remember {
		c.MaxAge = int(SessionLifetime.Seconds())
	}
	http.SetCookie(w, c)
}

func (s *Server) clearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookieName, Value: "", Domain: s.cfg.Domain, Path: "/",
		HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode, MaxAge: -1})
}

// dropStrays clears stray session cookies (see sessionCookie) that reached
// this request; call it before writing the response.
func (s *Server) dropStrays(w http.ResponseWriter, r *http.Request) {
	if hasStrayCookies(r) {
		s.log.Warn("request carried more than one session cookie; clearing the extra ones", "path", r.URL.Path, "ip", clientIP(r))
		s.clearStrayCookies(w, r.URL.Path)
	}
}

func (s *Server) handleFirstFactor(w http.ResponseWriter, r *http.Request) {
	s.dropStrays(w, r)
	data, ok := s.readLoginBody(w, r)
	if !ok {
		return
	}
	req, err := DecodeFirstFactor(data)
	if err != nil {
		writeKO(w, http.StatusBadRequest, msgBadRequest)
		return
	}
	ip := clientIP(r)
	keys := []string{"u:" + req.Username, "ip:" + ip}
	// Admission and counting are one step, before the slow bcrypt compare,
	// so parallel guesses get no more tries than sequential ones.
	if ok, wait := s.reg.begin(s.cfg.Clock(), keys...); !ok {
		s.log.Warn("login refused: banned or too many attempts", "user", req.Username, "ip", ip)
		writeBlocked(w, wait)
		return
	}
	s.reload(false) // pick up a users file the panel just wrote
	u, ok := s.checkPassword(r.Context(), req.Username, req.Password)
	s.reg.end(s.cfg.Clock(), !ok, keys...)
	// Banned now (by this failure or a parallel one): the same answer
	// whether this password was right or wrong.
	if wait := s.reg.banned(s.cfg.Clock(), keys...); wait > 0 {
		s.log.Warn("login refused: banned", "user", req.Username, "ip", ip)
		writeBlocked(w, wait)
		return
	}
	if !ok {
		s.log.Warn("first factor failed", "user", req.Username, "ip", ip)
		writeKO(w, http.StatusUnauthorized, msgAuthFailed)
		return
	}
	// A new id at every login: no fixation, and any previous session ends.
	for _, c := range r.CookiesNamed(SessionCookieName) {
		s.sessions.remove(c.Value)
	}
	now := s.cfg.Clock().UnixMilli()
	id, err := s.sessions.create(session{User: req.Username, Level: LevelOneFactor, Created: now, LastSeen: now,
		PwTag: u.pwTag, Remember: req.KeepMeLoggedIn})
	if err != nil {
		s.log.Error("create session", "err", err)
		writeKO(w, http.StatusInternalServerError, "Internal error.")
		return
	}
	s.setSessionCookie(w, id, req.KeepMeLoggedIn)
	s.log.Info("first factor succeeded", "user", req.Username, "ip", ip)
	writeOK(w, nil)
}

func (s *Server) handleTOTP(w http.ResponseWriter, r *http.Request) {
	s.dropStrays(w, r)
	data, ok := s.readLoginBody(w, r)
	if !ok {
		return
	}
	req, err := DecodeTOTP(data)
	if err != nil {
		writeKO(w, http.StatusBadRequest, msgBadRequest)
		return
	}
	sess, _, cookie, ok := s.validSession(r, LevelOneFactor, false)
	if !ok {
		writeKO(w, http.StatusUnauthorized, msgAuthFailed)
		return
	}
	ip := clientIP(r)
	keys := []string{"u:" + sess.User, "ip:" + ip}
	if ok, wait := s.reg.begin(s.cfg.Clock(), keys...); !ok {
		s.log.Warn("second factor refused: banned or too many attempts", "user", sess.User, "ip", ip)
		writeBlocked(w, wait)
		return
	}
	s.attempted()
	valid, err := s.totp.verify(sess.User, req.Token, s.cfg.Clock())
	s.reg.end(s.cfg.Clock(), err == nil && !valid, keys...)
	if err != nil {
		s.log.Error("verify TOTP", "err", err)
		writeKO(w, http.StatusInternalServerError, "Internal error.")
		return
	}
	if wait := s.reg.banned(s.cfg.Clock(), keys...); wait > 0 {
		s.log.Warn("second factor refused: banned", "user", sess.User, "ip", ip)
		writeBlocked(w, wait)
		return
	}
	if !valid {
		s.log.Warn("second factor failed", "user", sess.User, "ip", ip)
		writeKO(w, http.StatusUnauthorized, msgAuthFailed)
		return
	}
	s.sessions.remove(cookie)
	now := s.cfg.Clock().UnixMilli()
	id, err := s.sessions.create(session{User: sess.User, Level: LevelTwoFactor, Created: now, LastSeen: now,
		PwTag: sess.PwTag, Remember: sess.Remember})
	if err != nil {
		s.log.Error("create session", "err", err)
		writeKO(w, http.StatusInternalServerError, "Internal error.")
		return
	}
	s.setSessionCookie(w, id, sess.Remember)
	s.log.Info("second factor succeeded", "user", sess.User, "ip", ip)
	if rd, ok := s.redirectTarget(req.TargetURL); ok {
		writeOK(w, map[string]string{"redirect": rd})
		return
	}
	writeOK(w, nil)
}

type stateData struct {
	Username            string `json:"username"`
	AuthenticationLevel int    `json:"authentication_level"`
	HasTOTP             bool   `json:"has_totp"`
}

func (s *Server) handleState(w http.ResponseWriter, r *http.Request) {
	s.dropStrays(w, r)
	sess, _, _, ok := s.validSession(r, LevelOneFactor, false)
	if !ok {
		writeOK(w, stateData{})
		return
	}
	writeOK(w, stateData{Username: sess.User, AuthenticationLevel: sess.Level, HasTOTP: s.totp.has(sess.User)})
}

// handleLogout is POST /api/logout, from the portal's own page only: the
// browser must say so (Origin, or Sec-Fetch-Site: same-origin). A link or
// a form elsewhere cannot sign the visitor out.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	o := r.Header.Get("Origin")
	if !(o == s.cfg.PortalURL || o == "" && r.Header.Get("Sec-Fetch-Site") == "same-origin") {
		s.log.Warn("logout refused: not from the portal", "origin", o, "fetchSite", r.Header.Get("Sec-Fetch-Site"), "ip", clientIP(r))
		writeKO(w, http.StatusForbidden, "Sign out from the sign-in page.")
		return
	}
	// Every session cookie sent ends: with a planted extra one among them,
	// the user's own session must still end.
	for _, c := range r.CookiesNamed(SessionCookieName) {
		if err := s.sessions.remove(c.Value); err != nil {
			s.log.Error("end session", "err", err)
		}
	}
	s.dropStrays(w, r)
	s.clearSessionCookie(w)
	writeOK(w, nil)
}

// handleAuthRequest is nginx's auth_request target (docs/architecture.md, "Forward authentication").
func (s *Server) handleAuthRequest(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	orig := r.Header.Get("X-Original-URL")
	u, err := url.Parse(orig)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.User != nil {
		s.log.Warn("auth request without a usable X-Original-URL")
		http.Error(w, "Forbidden", http.StatusForbidden)
		return
	}
	host := strings.ToLower(u.Hostname())
	if !HostUnderDomain(host, s.cfg.Domain) {
		http.Error(w, "Forbidden", http.StatusForbidden)
		return
	}
	sess, user, _, ok := s.validSession(r, LevelTwoFactor, true)
	if !ok {
		loc := s.cfg.PortalURL + "/?rd=" + url.QueryEscape(orig)
		if hasStrayCookies(r) {
			// The portal clears cookies planted on the target's paths.
			loc += "&" + strayParam + "=1"
		}
		w.Header().Set("Location", loc)
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	method := r.Header.Get("X-Original-Method")
	if method == "" {
		method = r.Method
	}
	// Cross-site writes: an unsafe method is refused whenever the browser
	// says it comes from another origin (a sibling app carries the
	// SameSite=Lax cookie), with or without Fetch Metadata.
	if unsafeMethod(method) && !writeFromOwnOrigin(r, u) {
		s.log.Warn("cross-origin write refused", "host", host, "method", method, "origin", r.Header.Get("Origin"),
			"fetchSite", r.Header.Get("Sec-Fetch-Site"), "user", sess.User)
		http.Error(w, "Forbidden", http.StatusForbidden)
		return
	}
	// A WebSocket handshake is a GET that carries the SameSite=Lax cookie
	// from sibling hosts and is not subject to CORS: it must come from the
	// application's own origin. nginx passes the client's Upgrade header as
	// X-Original-Upgrade (it does not pass Upgrade to subrequests).
	if isWebSocket(r) && !sameOriginAs(r.Header.Get("Origin"), u) {
		s.log.Warn("cross-origin WebSocket refused", "host", host, "origin", r.Header.Get("Origin"), "user", sess.User)
		http.Error(w, "Forbidden", http.StatusForbidden)
		return
	}
	s.mu.RLock()
	allowed := s.policy.rules.allows(host, sess.User, user.Groups)
	s.mu.RUnlock()
	if !allowed {
		http.Error(w, "Forbidden", http.StatusForbidden)
		return
	}
	h := w.Header()
	h.Set("Remote-User", sess.User)
	h.Set("Remote-Groups", strings.Join(user.Groups, ","))
	h.Set("Remote-Name", user.DisplayName)
	h.Set("Remote-Email", user.Email)
	w.WriteHeader(http.StatusOK)
}

func unsafeMethod(m string) bool {
	switch strings.ToUpper(m) {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

// isWebSocket reports whether the original request is a WebSocket
// handshake, by nginx's X-Original-Upgrade or the browser's Sec-Fetch-Mode.
func isWebSocket(r *http.Request) bool {
	if strings.EqualFold(strings.TrimSpace(r.Header.Get("Sec-Fetch-Mode")), "websocket") {
		return true
	}
	for _, v := range r.Header.Values("X-Original-Upgrade") {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "websocket") {
				return true
			}
		}
	}
	return false
}

// sameOriginAs reports whether origin (an Origin header) is target's
// origin: same scheme, host and port (default ports made explicit).
func sameOriginAs(origin string, target *url.URL) bool {
	if origin == "" || origin == "null" {
		return false
	}
	o, err := url.Parse(origin)
	if err != nil || o.User != nil || (o.Path != "" && o.Path != "/") || o.RawQuery != "" || o.Fragment != "" {
		return false
	}
	return strings.EqualFold(o.Scheme, target.Scheme) &&
		strings.EqualFold(o.Hostname(), target.Hostname()) &&
		portOrDefault(o) == portOrDefault(target)
}

func portOrDefault(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return "443"
	case "http":
		return "80"
	}
	return ""
}

// writeFromOwnOrigin reports whether an unsafe request may be from the
// target's own page: an Origin header, when present, must be the target's
// origin ("null" never is); without one, Sec-Fetch-Site must not say
// same-site or cross-site. Clients that send neither (curl, scripts) are
// not browsers carrying a visitor's cookie unasked.
func writeFromOwnOrigin(r *http.Request, target *url.URL) bool {
	if vs := r.Header.Values("Origin"); len(vs) > 0 {
		return len(vs) == 1 && sameOriginAs(vs[0], target)
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-site", "cross-site":
		return false
	}
	return true
}

// writeBlocked answers a sign-in step refused by regulation: 429 with how
// long the ban lasts (the same whatever the credentials were).
func writeBlocked(w http.ResponseWriter, wait time.Duration) {
	if wait <= 0 {
		w.Header().Set("Retry-After", "5")
		writeKO(w, http.StatusTooManyRequests, "Too many sign-in attempts at once. Try again in a few seconds.")
		return
	}
	secs := int(math.Ceil(wait.Seconds()))
	mins := (secs + 59) / 60
	unit := "minutes"
	if mins == 1 {
		unit = "minute"
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeKO(w, http.StatusTooManyRequests, fmt.Sprintf("Sign-in is temporarily blocked after too many failed attempts. Try again in %d %s.", mins, unit))
}

func hmacEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
