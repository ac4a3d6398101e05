package acme

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	legoacme "github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/certcrypto"
	"github.com/go-acme/lego/v5/certificate"
	"github.com/go-acme/lego/v5/challenge/dns01"
	"github.com/go-acme/lego/v5/challenge/http01"
	"github.com/go-acme/lego/v5/lego"
	legolog "github.com/go-acme/lego/v5/log"
	"github.com/go-acme/lego/v5/providers/http/webroot"
	"github.com/go-acme/lego/v5/registration"

	"github.com/portlama/portlama/internal/store"
	"github.com/portlama/portlama/internal/validate"
)

// Challenge types recorded in meta.json.
const (
	ChallengeHTTP01 = "http-01"
	ChallengeDNS01  = "dns-01"
)

// Settings are the relay's issuance settings (panel.json "acme" plus the
// onboarding e-mail), read before every order: the e-mail is set during
// onboarding, after the panel started.
type Settings struct {
	DirectoryURL string
	Email        string
	// DNSProvider is a lego DNS provider name ("digitalocean"); "" means
	// http-01 only.
	DNSProvider string
	// Wildcard asks for one DNS-01 certificate for <d> and *.<d>.
	Wildcard bool
}

// IssuerConfig configures the ACME client.
type IssuerConfig struct {
	// AccountDir holds the account key and registration (<certs>/account,
	// 0700 directory, 0600 files).
	AccountDir string
	// Webroot is the directory nginx serves at /.well-known/acme-challenge/
	// on port 80 (config.Layout.ACMEWebroot).
	Webroot string
	// Settings returns the current settings.
	Settings func() (Settings, error)
	// CACertFile, when set, is trusted (in addition to nothing else) for
	// the ACME server's HTTPS certificate: Pebble's test CA. Let's Encrypt
	// and its staging directory need none.
	CACertFile string
	// DNSCredentials is the provider's 0600 env file (/etc/portlama/acme-dns.env):
	// DO_AUTH_TOKEN=… and optionally DO_API_URL=….
	DNSCredentials string
	// DNSResolvers are the recursive resolvers (host:port) DNS-01 checks
	// propagation with; nil means the system's. When set they are taken as
	// authoritative too (a test DNS server).
	DNSResolvers []string
	// Profile is the ACME profile to request ("" = the CA's default).
	Profile string
	Logger  *slog.Logger
}

// ACMEIssuer obtains certificates from an ACME CA with lego: http-01
// through the webroot, DNS-01 through a DNS provider for wildcard names.
// It is an Issuer.
type ACMEIssuer struct {
	cfg IssuerConfig
	log *slog.Logger
	hc  *http.Client
	mu  sync.Mutex // guards the account files; orders run concurrently
}

var _ Issuer = (*ACMEIssuer)(nil)

// NewIssuer checks cfg and returns the issuer.
func NewIssuer(cfg IssuerConfig) (*ACMEIssuer, error) {
	if cfg.AccountDir == "" || cfg.Webroot == "" || cfg.Settings == nil {
		return nil, errors.New("acme issuer: AccountDir, Webroot and Settings are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.CACertFile != "" {
		data, err := os.ReadFile(cfg.CACertFile)
		if err != nil {
			return nil, fmt.Errorf("acme issuer: read ACME server CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("acme issuer: %s holds no PEM certificate", cfg.CACertFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	if len(cfg.DNSResolvers) > 0 {
		// lego's DNS-01 code (and its providers) use one process-wide
		// resolver client.
		dns01.SetDefaultClient(dns01.NewClient(&dns01.Options{RecursiveNameservers: cfg.DNSResolvers, Timeout: 5 * time.Second}))
	}
	// lego logs through its own default logger; route it into ours.
	legolog.SetDefault(cfg.Logger.With("component", "lego"))
	return &ACMEIssuer{cfg: cfg, log: cfg.Logger, hc: &http.Client{Timeout: 2 * time.Minute, Transport: tr}}, nil
}

// Obtain orders a certificate for names (every name validated first): a
// name starting with "*." needs DNS-01 and the configured provider, the
// others use http-01 through the webroot. Failures are *IssueError with
// plain advice.
func (i *ACMEIssuer) Obtain(ctx context.Context, names []string) ([]byte, []byte, string, error) {
	if len(names) == 0 {
		return nil, nil, "", errors.New("obtain: no names")
	}
	wildcard := false
	for _, n := range names {
		base, isWild := strings.CutPrefix(n, "*.")
		wildcard = wildcard || isWild
		if err := validate.FQDN(base); err != nil {
			return nil, nil, "", fmt.Errorf("obtain certificate for %q: %w", n, err)
		}
	}
	set, err := i.cfg.Settings()
	if err != nil {
		return nil, nil, "", fmt.Errorf("obtain certificate: read settings: %w", err)
	}
	if set.Email == "" {
		return nil, nil, "", errors.New("obtain certificate: no ACME account e-mail is set (onboarding sets it)")
	}
	challenge := ChallengeHTTP01
	if wildcard {
		challenge = ChallengeDNS01
		if set.DNSProvider == "" {
			return nil, nil, "", fmt.Errorf("obtain certificate for %s: a wildcard certificate needs a DNS provider (acme.dnsProvider in panel.json)", strings.Join(names, ", "))
		}
	}
	res, err := i.order(ctx, set, names, challenge)
	if err != nil && isProblem(err, legoacme.AccountDoesNotExistErrorType) {
		// The CA forgot the account (Pebble restarted; an account removed
		// by the CA): register again and retry once.
		i.log.Info("ACME account unknown to the CA; registering again")
		i.mu.Lock()
		rerr := os.Remove(filepath.Join(i.cfg.AccountDir, accountFile))
		i.mu.Unlock()
		if rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			return nil, nil, "", rerr
		}
		res, err = i.order(ctx, set, names, challenge)
	}
	if err != nil {
		i.log.Warn("ACME order failed", "names", names, "err", err)
		return nil, nil, "", explain(names, set.DirectoryURL, err)
	}
	return res.Certificate, res.PrivateKey, challenge, nil
}

func (i *ACMEIssuer) order(ctx context.Context, set Settings, names []string, challenge string) (*certificate.Resource, error) {
	client, err := i.client(ctx, set)
	if err != nil {
		return nil, err
	}
	switch challenge {
	case ChallengeDNS01:
		p, err := newDNSProvider(set.DNSProvider, i.cfg.DNSCredentials)
		if err != nil {
			return nil, err
		}
		var opts []dns01.ChallengeOption
		if len(i.cfg.DNSResolvers) > 0 {
			opts = append(opts, dns01.DisableAuthoritativeNssPropagationRequirement())
		}
		if err := client.Challenge.SetDNS01Provider(p, opts...); err != nil {
			return nil, err
		}
	default:
		if err := os.MkdirAll(i.cfg.Webroot, 0o755); err != nil {
			return nil, fmt.Errorf("create ACME webroot: %w", err)
		}
		p, err := webroot.NewHTTPProvider(i.cfg.Webroot)
		if err != nil {
			return nil, err
		}
		if err := client.Challenge.SetHTTP01Provider(readableWebroot{p, i.cfg.Webroot}); err != nil {
			return nil, err
		}
	}
	return client.Certificate.Obtain(ctx, certificate.ObtainRequest{Domains: names, Bundle: true, Profile: i.cfg.Profile, KeyType: certcrypto.EC256})
}

// client returns a lego client for the relay's account, registering the
// account first when it has no registration at this CA for this e-mail.
func (i *ACMEIssuer) client(ctx context.Context, set Settings) (*lego.Client, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	user, err := i.loadAccount(set)
	if err != nil {
		return nil, err
	}
	lc := lego.NewConfig(user)
	lc.CADirURL = set.DirectoryURL
	// lego wraps the client's transport in place: each lego client gets
	// its own http.Client (the transport underneath is shared).
	hc := *i.hc
	lc.HTTPClient = &hc
	lc.UserAgent = "portlama"
	client, err := lego.NewClient(lc)
	if err != nil {
		return nil, &unreachableError{err: err}
	}
	if user.reg != nil {
		return client, nil
	}
	reg, err := client.Registration.Register(ctx, registration.RegisterOptions{TermsOfServiceAgreed: true})
	if err != nil {
		return nil, fmt.Errorf("register ACME account: %w", err)
	}
	user.reg = reg
	if err := i.saveAccount(set, reg); err != nil {
		return nil, err
	}
	i.log.Info("ACME account registered", "email", set.Email, "directory", set.DirectoryURL)
	return client, nil
}

// Account files in AccountDir.
const (
	accountKeyFile = "account.key"
	accountFile    = "account.json"
)

// accountDoc is account.json: the registration and what it was made for.
type accountDoc struct {
	Email        string                    `json:"email"`
	DirectoryURL string                    `json:"directoryUrl"`
	Registration *legoacme.ExtendedAccount `json:"registration"`
}

type user struct {
	email string
	key   crypto.Signer
	reg   *legoacme.ExtendedAccount
}

func (u *user) GetEmail() string                           { return u.email }
func (u *user) GetRegistration() *legoacme.ExtendedAccount { return u.reg }
func (u *user) GetPrivateKey() crypto.Signer               { return u.key }

// loadAccount returns the relay's account: its key (created once) and the
// registration, when it was made with the same e-mail at the same CA.
func (i *ACMEIssuer) loadAccount(set Settings) (*user, error) {
	if err := os.MkdirAll(i.cfg.AccountDir, 0o700); err != nil {
		return nil, fmt.Errorf("create ACME account directory: %w", err)
	}
	keyPath := filepath.Join(i.cfg.AccountDir, accountKeyFile)
	data, err := os.ReadFile(keyPath)
	var key crypto.Signer
	switch {
	case errors.Is(err, fs.ErrNotExist):
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate ACME account key: %w", err)
		}
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return nil, err
		}
		if err := store.WriteFileAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return nil, fmt.Errorf("write ACME account key: %w", err)
		}
		key = k
	case err != nil:
		return nil, fmt.Errorf("read ACME account key: %w", err)
	default:
		block, _ := pem.Decode(data)
		if block == nil {
			return nil, fmt.Errorf("%s: no PEM key", keyPath)
		}
		k, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse ACME account key: %w", err)
		}
		key = k
	}
	u := &user{email: set.Email, key: key}
	raw, err := os.ReadFile(filepath.Join(i.cfg.AccountDir, accountFile))
	if err == nil {
		var doc accountDoc
		if json.Unmarshal(raw, &doc) == nil && doc.Email == set.Email && doc.DirectoryURL == set.DirectoryURL && doc.Registration != nil {
			u.reg = doc.Registration
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read ACME account: %w", err)
	}
	return u, nil
}

func (i *ACMEIssuer) saveAccount(set Settings, reg *legoacme.ExtendedAccount) error {
	data, err := store.Marshal(accountDoc{Email: set.Email, DirectoryURL: set.DirectoryURL, Registration: reg})
	if err != nil {
		return err
	}
	if err := store.WriteFileAtomic(filepath.Join(i.cfg.AccountDir, accountFile), data, 0o600); err != nil {
		return fmt.Errorf("write ACME account: %w", err)
	}
	return nil
}

// IssueError is a failed order explained for the user (docs/api.md, "Provisioning":
// rate limits, DNS, unreachable challenges). Error is the advice; Cause
// keeps the CA's answer for logs and errors.As.
type IssueError struct {
	Advice string
	Cause  error
}

func (e *IssueError) Error() string { return e.Advice }
func (e *IssueError) Unwrap() error { return e.Cause }

type unreachableError struct{ err error }

func (e *unreachableError) Error() string { return e.err.Error() }
func (e *unreachableError) Unwrap() error { return e.err }

func isProblem(err error, typ string) bool {
	var p *legoacme.ProblemDetails
	return errors.As(err, &p) && (p.Type == typ || slices.ContainsFunc(p.SubProblems, func(s legoacme.SubProblem) bool { return s.Type == typ }))
}

// explain turns an order failure into advice.
func explain(names []string, directory string, err error) error {
	fqdn := names[0]
	var p *legoacme.ProblemDetails
	if errors.As(err, &p) {
		if id := problemIdentifier(p); id != "" {
			fqdn = id
		}
		types := []string{p.Type}
		for _, s := range p.SubProblems {
			types = append(types, s.Type)
		}
		for _, t := range types {
			switch t {
			case legoacme.RateLimitedErrorType:
				return &IssueError{Advice: fmt.Sprintf("Let's Encrypt rate limit reached for %s; try again later", fqdn), Cause: err}
			case legoacme.DNSErrorType:
				return &IssueError{Advice: fmt.Sprintf("DNS for %s does not point to this server yet", fqdn), Cause: err}
			case legoacme.ConnectionErrorType, legoacme.UnauthorizedErrorType, legoacme.IncorrectResponseErrorType, legoacme.TLSErrorType:
				if strings.HasPrefix(fqdn, "*.") {
					return &IssueError{Advice: fmt.Sprintf("DNS for %s does not point to this server yet", fqdn), Cause: err}
				}
				return &IssueError{Advice: fmt.Sprintf("Let's Encrypt could not reach http://%s/.well-known/acme-challenge/; check that port 80 is open", fqdn), Cause: err}
			}
		}
		return &IssueError{Advice: fmt.Sprintf("The certificate authority refused the certificate for %s: %s", fqdn, p.Detail), Cause: err}
	}
	var ue *unreachableError
	if errors.As(err, &ue) || isNetError(err) {
		return &IssueError{Advice: fmt.Sprintf("Cannot reach the certificate authority at %s; check the relay's outbound network and acme.directoryUrl, then try again", directory), Cause: err}
	}
	return &IssueError{Advice: fmt.Sprintf("Could not obtain a certificate for %s: %v", strings.Join(names, ", "), err), Cause: err}
}

func problemIdentifier(p *legoacme.ProblemDetails) string {
	for _, s := range p.SubProblems {
		if s.Identifier.Value != "" {
			return s.Identifier.Value
		}
	}
	return ""
}

// isNetError reports a failure to reach the CA at all.
func isNetError(err error) bool {
	var oe *net.OpError
	var ue *url.Error
	return errors.As(err, &oe) || errors.As(err, &ue)
}

// readableWebroot makes lego's challenge files readable by nginx: the
// panel runs with UMask=0077, which would leave them 0600 and nginx's
// workers (another user) answering 403 to the CA.
type readableWebroot struct {
	*webroot.HTTPProvider
	dir string
}

func (w readableWebroot) Present(ctx context.Context, domain, token, keyAuth string) error {
	if err := w.HTTPProvider.Present(ctx, domain, token, keyAuth); err != nil {
		return err
	}
	file := filepath.Join(w.dir, http01.ChallengePath(token))
	for d := filepath.Dir(file); strings.HasPrefix(d, w.dir); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			return fmt.Errorf("make the ACME webroot readable: %w", err)
		}
		if d == w.dir {
			break
		}
	}
	if err := os.Chmod(file, 0o644); err != nil {
		return fmt.Errorf("make the ACME challenge readable: %w", err)
	}
	return nil
}
