// Package servers is the home app's registry of relays
// (~/.portlama/servers.json, written atomically with mode 0600): each
// server is either an agent enrollment of this machine (its key and
// certificate live in the agent's label directory, see internal/agent) or
// an imported admin P12 (the file next to the registry, its password in the
// OS keychain). One server is current; the control UI works on it.
package servers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/portlama/portlama/internal/agent"
	"github.com/portlama/portlama/internal/keychain"
	"github.com/portlama/portlama/internal/store"
)

// Server kinds.
const (
	// KindAgent: this machine enrolled as an agent (tunnels run here).
	KindAgent = "agent"
	// KindAdmin: an imported admin certificate (P12).
	KindAdmin = "admin"
)

// Server is one relay in the registry.
type Server struct {
	// ID names the server; for KindAgent it is the agent label.
	ID       string `json:"id"`
	Kind     string `json:"kind"`
	PanelURL string `json:"panelUrl"`
	// AdminP12 is the imported P12 file (KindAdmin).
	AdminP12 string `json:"adminP12,omitempty"`
	AddedAt  string `json:"addedAt"`
}

// File is servers.json.
type File struct {
	Current string   `json:"current"`
	Servers []Server `json:"servers"`
}

// Registry reads and changes servers.json.
type Registry struct {
	home agent.Home
	keys keychain.Keychain
	doc  *store.Doc[File]
	now  func() time.Time
}

// New returns the registry in home.Dir. keys holds P12 passwords; it may be
// nil, and then importing a P12 is refused with the keychain's error.
func New(home agent.Home, keys keychain.Keychain) *Registry {
	return &Registry{
		home: home, keys: keys,
		doc: store.NewDoc[File](filepath.Join(home.Dir, "servers.json"), 0o600),
		now: time.Now,
	}
}

// Path is servers.json.
func (r *Registry) Path() string { return r.doc.Path() }

// List returns the registry. Agent enrollments made with the CLI (in
// agents.json but not yet here) are listed too, so the app and the CLI
// agree on what this machine is enrolled with.
func (r *Registry) List() (File, error) {
	f, err := r.doc.Load()
	if err != nil {
		return File{}, fmt.Errorf("read the server registry: %w", err)
	}
	reg, err := r.home.LoadRegistry()
	if err != nil {
		return File{}, err
	}
	for _, a := range reg.Agents {
		if indexOf(f.Servers, a.Label) < 0 {
			f.Servers = append(f.Servers, Server{ID: a.Label, Kind: KindAgent, PanelURL: a.PanelURL, AddedAt: a.EnrolledAt})
		}
	}
	if f.Servers == nil {
		f.Servers = []Server{}
	}
	slices.SortFunc(f.Servers, func(a, b Server) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	if f.Current == "" && reg.Current != "" {
		f.Current = reg.Current
	}
	return f, nil
}

// Current returns the current server.
func (r *Registry) Current() (Server, error) {
	f, err := r.List()
	if err != nil {
		return Server{}, err
	}
	if i := indexOf(f.Servers, f.Current); i >= 0 {
		return f.Servers[i], nil
	}
	return Server{}, ErrNoServer
}

// ErrNoServer: nothing is set up yet.
var ErrNoServer = errors.New("no relay is set up yet: add one with an enrollment token or an admin P12")

func indexOf(s []Server, id string) int {
	return slices.IndexFunc(s, func(x Server) bool { return x.ID == id })
}

// AddByToken enrolls this machine with a relay (the agent's setup flow,
// progress to o.Report) and makes it current.
func (r *Registry) AddByToken(ctx context.Context, o agent.SetupOptions) (Server, error) {
	if o.Label != "" {
		if err := agent.ValidateLabel(o.Label); err != nil {
			return Server{}, err
		}
		if err := r.checkFree(o.Label, KindAgent); err != nil {
			return Server{}, err
		}
	}
	res, err := agent.Setup(ctx, r.home, o)
	if err != nil {
		return Server{}, err
	}
	s := Server{ID: res.Label, Kind: KindAgent, PanelURL: res.Profile.PanelURL, AddedAt: res.Profile.EnrolledAt}
	if err := r.put(s); err != nil {
		return Server{}, err
	}
	return s, nil
}

// checkFree refuses an id an entry of another kind uses.
func (r *Registry) checkFree(id, kind string) error {
	f, err := r.List()
	if err != nil {
		return err
	}
	if i := indexOf(f.Servers, id); i >= 0 && f.Servers[i].Kind != kind {
		return fmt.Errorf("the name %q is already used by another server: pick another", id)
	}
	return nil
}

// put adds or replaces s and makes it current.
func (r *Registry) put(s Server) error {
	if err := os.MkdirAll(r.home.Dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", r.home.Dir, err)
	}
	_, err := r.doc.Update(func(f *File) error {
		if i := indexOf(f.Servers, s.ID); i >= 0 {
			f.Servers[i] = s
		} else {
			f.Servers = append(f.Servers, s)
		}
		f.Current = s.ID
		return nil
	})
	if err != nil {
		return fmt.Errorf("update the server registry: %w", err)
	}
	if s.Kind == KindAgent {
		return r.home.SetCurrent(s.ID)
	}
	return nil
}

// ImportP12 adds a relay by its admin certificate: the P12 must open with
// password; the file is kept next to the registry (0600) and the password
// in the keychain, never in a file of the registry.
func (r *Registry) ImportP12(id, panelURL string, p12 []byte, password string) (Server, error) {
	if err := agent.ValidateLabel(id); err != nil {
		return Server{}, err
	}
	u, err := agent.NormalizePanelURL(panelURL)
	if err != nil {
		return Server{}, err
	}
	if _, _, _, err := pkcs12.DecodeChain(p12, password); err != nil {
		return Server{}, fmt.Errorf("the P12 file does not open with this password (or is not a P12 file): %w", err)
	}
	if r.keys == nil {
		return Server{}, errors.New("no keychain to keep the P12 password in")
	}
	if err := r.checkFree(id, KindAdmin); err != nil {
		return Server{}, err
	}
	dir := filepath.Join(r.home.Dir, "servers", id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Server{}, fmt.Errorf("create %s: %w", dir, err)
	}
	path := filepath.Join(dir, "admin.p12")
	if err := store.WriteFileAtomic(path, p12, 0o600); err != nil {
		return Server{}, fmt.Errorf("save the P12 file: %w", err)
	}
	if err := r.keys.Set(passwordKey(id), password); err != nil {
		_ = os.RemoveAll(dir)
		return Server{}, err
	}
	s := Server{ID: id, Kind: KindAdmin, PanelURL: u, AdminP12: path, AddedAt: r.now().UTC().Format(time.RFC3339)}
	if err := r.put(s); err != nil {
		_ = os.RemoveAll(dir)
		_ = r.keys.Delete(passwordKey(id))
		return Server{}, err
	}
	return s, nil
}

func passwordKey(id string) string { return "p12-password/" + id }

// AdminP12 returns an admin server's P12 file and its password.
func (r *Registry) AdminP12(id string) ([]byte, string, error) {
	f, err := r.List()
	if err != nil {
		return nil, "", err
	}
	i := indexOf(f.Servers, id)
	if i < 0 || f.Servers[i].Kind != KindAdmin {
		return nil, "", fmt.Errorf("no admin server %q", id)
	}
	data, err := os.ReadFile(f.Servers[i].AdminP12)
	if err != nil {
		return nil, "", fmt.Errorf("read the P12 of %q: %w", id, err)
	}
	if r.keys == nil {
		return nil, "", errors.New("no keychain holds the P12 password")
	}
	pw, err := r.keys.Get(passwordKey(id))
	if err != nil {
		return nil, "", err
	}
	return data, pw, nil
}

// Use makes id current.
func (r *Registry) Use(id string) error {
	f, err := r.List()
	if err != nil {
		return err
	}
	i := indexOf(f.Servers, id)
	if i < 0 {
		return fmt.Errorf("no server %q is set up", id)
	}
	return r.put(f.Servers[i])
}

// Removal says what Remove did on the relay.
type Removal struct {
	// Revoked: the relay revoked this machine's agent certificate.
	Revoked bool
	// Warning is set when the relay could not be told (unreachable, or it
	// refused): the certificate is then still valid there.
	Warning string
}

// Remove deletes a server. For an agent enrollment it first asks the relay
// to revoke this machine's certificate (POST /api/certs/agent/revoke-self);
// a relay that cannot be reached does not block the removal, the answer's
// Warning says the certificate must be revoked on the panel.
func (r *Registry) Remove(ctx context.Context, id string) (Removal, error) {
	f, err := r.List()
	if err != nil {
		return Removal{}, err
	}
	i := indexOf(f.Servers, id)
	if i < 0 {
		return Removal{}, fmt.Errorf("no server %q is set up", id)
	}
	s := f.Servers[i]
	var out Removal
	switch s.Kind {
	case KindAgent:
		out = r.revoke(ctx, id)
		if err := r.home.Unregister(id); err != nil {
			return out, err
		}
	case KindAdmin:
		if r.keys != nil {
			if err := r.keys.Delete(passwordKey(id)); err != nil {
				return out, err
			}
		}
		if err := os.RemoveAll(filepath.Dir(s.AdminP12)); err != nil {
			return out, fmt.Errorf("remove the P12 of %q: %w", id, err)
		}
	}
	_, err = r.doc.Update(func(f *File) error {
		f.Servers = slices.DeleteFunc(f.Servers, func(x Server) bool { return x.ID == id })
		if f.Current == id {
			f.Current = ""
		}
		return nil
	})
	if err != nil {
		return out, fmt.Errorf("update the server registry: %w", err)
	}
	return out, nil
}

func (r *Registry) revoke(ctx context.Context, label string) Removal {
	id, err := r.home.LoadIdentity(label)
	if err != nil {
		return Removal{Warning: fmt.Sprintf("this machine's credentials for %q could not be read (%v); revoke the agent %q on the panel's Certificates page", label, err, label)}
	}
	tlsConf, err := id.PanelTLSConfig()
	if err != nil {
		return Removal{Warning: err.Error()}
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err := agent.NewClient(id.Profile.PanelURL, tlsConf).RevokeSelf(ctx); err != nil {
		return Removal{Warning: fmt.Sprintf("the relay did not revoke this machine's certificate (%v); revoke the agent %q on the panel's Certificates page", err, label)}
	}
	return Removal{Revoked: true}
}
