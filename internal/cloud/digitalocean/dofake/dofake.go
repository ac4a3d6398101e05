// Package dofake is a fake of the DigitalOcean API endpoints the home app
// provisions with (the one mock the project allows: no real API can run in
// a test). Creating a droplet calls Options.Boot, which stands in for the
// provider and cloud-init (the lab puts the account key and the user
// data's host key into its booted container there).
package dofake

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/portlama/portlama/internal/cloud/digitalocean"
)

// Options configure the fake.
type Options struct {
	// Token is the only token accepted.
	Token string
	// Regions and Sizes are what the account is offered.
	Regions []digitalocean.Region
	Sizes   []digitalocean.Size
	// Addr is every droplet's public IPv4 address.
	Addr string
	// Boot prepares the machine behind a new droplet: accountKey is the
	// uploaded public key, userData the request's cloud-init. An error
	// answers 500 and makes no droplet.
	Boot func(ctx context.Context, accountKey, userData string) error
}

// API is the fake; it is an http.Handler.
type API struct {
	o Options

	mu       sync.Mutex
	nextID   int
	keys     map[int]digitalocean.SSHKey
	droplets map[int]digitalocean.CreateDropletRequest
	// loseCreate: the next create makes the droplet but answers 500, as a
	// request whose answer was lost.
	loseCreate bool
}

// New returns the fake.
func New(o Options) *API {
	return &API{o: o, nextID: 500, keys: map[int]digitalocean.SSHKey{}, droplets: map[int]digitalocean.CreateDropletRequest{}}
}

// LoseNextCreateAnswer makes the next create-droplet request succeed
// without its answer reaching the client.
func (a *API) LoseNextCreateAnswer() {
	a.mu.Lock()
	a.loseCreate = true
	a.mu.Unlock()
}

// Counts returns how many SSH keys and droplets the account has.
func (a *API) Counts() (keys, droplets int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.keys), len(a.droplets)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"id": strings.ToLower(strings.ReplaceAll(http.StatusText(status), " ", "_")), "message": msg})
}

const notFound = "The resource you were accessing could not be found."

// ServeHTTP answers the API's endpoints, with its shapes and refusals.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+a.o.Token {
		writeError(w, http.StatusUnauthorized, "Unable to authenticate you")
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/account", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"account": digitalocean.Account{UUID: "fake", Email: "me@example.com", Status: "active", DropletLimit: 10}})
	})
	mux.HandleFunc("GET /v2/regions", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"regions": a.o.Regions})
	})
	mux.HandleFunc("GET /v2/sizes", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"sizes": a.o.Sizes})
	})
	mux.HandleFunc("POST /v2/account/keys", a.createKey)
	mux.HandleFunc("DELETE /v2/account/keys/{id}", deleteFrom(&a.mu, a.keys))
	mux.HandleFunc("POST /v2/droplets", a.createDroplet)
	mux.HandleFunc("GET /v2/droplets/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.Atoi(r.PathValue("id"))
		a.mu.Lock()
		req, ok := a.droplets[id]
		a.mu.Unlock()
		if !ok {
			writeError(w, 404, notFound)
			return
		}
		writeJSON(w, 200, map[string]any{"droplet": a.view(id, req)})
	})
	mux.HandleFunc("GET /v2/droplets", func(w http.ResponseWriter, r *http.Request) {
		tag := r.URL.Query().Get("tag_name")
		out := []map[string]any{}
		a.mu.Lock()
		for id, req := range a.droplets {
			if slices.Contains(req.Tags, tag) {
				out = append(out, a.view(id, req))
			}
		}
		a.mu.Unlock()
		writeJSON(w, 200, map[string]any{"droplets": out})
	})
	mux.HandleFunc("DELETE /v2/droplets/{id}", deleteFrom(&a.mu, a.droplets))
	mux.ServeHTTP(w, r)
}

func (a *API) createKey(w http.ResponseWriter, r *http.Request) {
	var k digitalocean.SSHKey
	if json.NewDecoder(r.Body).Decode(&k) != nil || k.Name == "" || !strings.HasPrefix(k.PublicKey, "ssh-ed25519 ") {
		writeError(w, 422, "Key invalid, key should be of the format `type key [comment]`")
		return
	}
	a.mu.Lock()
	a.nextID++
	k.ID = a.nextID
	a.keys[k.ID] = k
	a.mu.Unlock()
	writeJSON(w, 201, map[string]any{"ssh_key": k})
}

func (a *API) createDroplet(w http.ResponseWriter, r *http.Request) {
	var req digitalocean.CreateDropletRequest
	if json.NewDecoder(r.Body).Decode(&req) != nil || req.Name == "" || req.Region == "" || req.Size == "" || len(req.SSHKeys) != 1 {
		writeError(w, 422, "name, region, size and one ssh key are required")
		return
	}
	a.mu.Lock()
	key, ok := a.keys[req.SSHKeys[0]]
	a.mu.Unlock()
	if !ok {
		writeError(w, 422, "ssh_keys contains an unknown key")
		return
	}
	if a.o.Boot != nil {
		if err := a.o.Boot(r.Context(), key.PublicKey, req.UserData); err != nil {
			writeError(w, 500, "fake: prepare the droplet: "+err.Error())
			return
		}
	}
	a.mu.Lock()
	a.nextID++
	id := a.nextID
	a.droplets[id] = req
	lose := a.loseCreate
	a.loseCreate = false
	a.mu.Unlock()
	if lose {
		writeError(w, 500, "Server was unable to give you a response.")
		return
	}
	writeJSON(w, 202, map[string]any{"droplet": map[string]any{"id": id, "name": req.Name, "status": "new"}})
}

// view is a droplet as GET answers it: active at Addr.
func (a *API) view(id int, req digitalocean.CreateDropletRequest) map[string]any {
	return map[string]any{"id": id, "name": req.Name, "status": "active", "size": map[string]any{"price_monthly": 4},
		"networks": map[string]any{"v4": []map[string]string{{"ip_address": a.o.Addr, "type": "public"}}}}
}

// deleteFrom answers DELETE …/{id} for the objects in m: 204, or 404.
func deleteFrom[V any](mu *sync.Mutex, m map[int]V) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.Atoi(r.PathValue("id"))
		mu.Lock()
		_, ok := m[id]
		delete(m, id)
		mu.Unlock()
		if !ok {
			writeError(w, 404, notFound)
			return
		}
		w.WriteHeader(204)
	}
}
