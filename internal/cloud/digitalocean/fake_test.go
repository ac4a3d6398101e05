package digitalocean

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeAPI implements the endpoints the client uses, with the API's
// shapes and refusals: the one mock the project allows.
type fakeAPI struct {
	token string

	mu       sync.Mutex
	nextID   int
	keys     map[int]SSHKey
	droplets map[int]*fakeDroplet
}

type fakeDroplet struct {
	req   CreateDropletRequest
	polls int
}

func newFakeAPI(t *testing.T, token string) (*fakeAPI, string) {
	f := &fakeAPI{token: token, nextID: 100, keys: map[int]SSHKey{}, droplets: map[int]*fakeDroplet{}}
	srv := httptest.NewServer(f.handler())
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func writeErr(w http.ResponseWriter, status int, id, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"id": id, "message": msg})
}

func writeOK(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (f *fakeAPI) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/account", func(w http.ResponseWriter, r *http.Request) {
		writeOK(w, 200, map[string]any{"account": Account{UUID: "u-1", Email: "me@example.com", Status: "active", DropletLimit: 10}})
	})
	mux.HandleFunc("GET /v2/regions", func(w http.ResponseWriter, r *http.Request) {
		writeOK(w, 200, map[string]any{"regions": []Region{
			{Slug: "fra1", Name: "Frankfurt 1", Available: true, Sizes: []string{"s-1vcpu-512mb-10gb", "s-1vcpu-1gb"}},
			{Slug: "nyc3", Name: "New York 3", Available: true, Sizes: []string{"s-1vcpu-1gb"}},
		}})
	})
	mux.HandleFunc("GET /v2/sizes", func(w http.ResponseWriter, r *http.Request) {
		writeOK(w, 200, map[string]any{"sizes": []Size{
			{Slug: "s-1vcpu-1gb", Memory: 1024, VCPUs: 1, Disk: 25, PriceMonthly: 6, PriceHourly: 0.00893, Regions: []string{"fra1", "nyc3"}, Available: true},
			{Slug: "s-1vcpu-512mb-10gb", Memory: 512, VCPUs: 1, Disk: 10, PriceMonthly: 4, PriceHourly: 0.00595, Regions: []string{"fra1"}, Available: true},
			{Slug: "s-256mb", Memory: 256, PriceMonthly: 2, Regions: []string{"fra1"}, Available: true},
			{Slug: "s-old-512", Memory: 512, PriceMonthly: 3, Regions: []string{"fra1"}, Available: false},
		}})
	})
	mux.HandleFunc("POST /v2/account/keys", func(w http.ResponseWriter, r *http.Request) {
		var raw map[string]string
		if json.NewDecoder(r.Body).Decode(&raw) != nil || raw["name"] == "" || !strings.HasPrefix(raw["public_key"], "ssh-ed25519 ") {
			writeErr(w, 422, "unprocessable_entity", "Key invalid, key should be of the format `type key [comment]`")
			return
		}
		f.mu.Lock()
		f.nextID++
		k := SSHKey{ID: f.nextID, Name: raw["name"], PublicKey: raw["public_key"], Fingerprint: "aa:bb"}
		f.keys[k.ID] = k
		f.mu.Unlock()
		writeOK(w, 201, map[string]any{"ssh_key": k})
	})
	mux.HandleFunc("DELETE /v2/account/keys/{id}", deleteFrom(&f.mu, f.keys))
	mux.HandleFunc("POST /v2/droplets", func(w http.ResponseWriter, r *http.Request) {
		var req CreateDropletRequest
		if json.NewDecoder(r.Body).Decode(&req) != nil || req.Name == "" || req.Region == "" || req.Size == "" {
			writeErr(w, 422, "unprocessable_entity", "name, region and size are required")
			return
		}
		if req.Image != "ubuntu-24-04-x64" && req.Image != "debian-12-x64" {
			writeErr(w, 422, "unprocessable_entity", "You specified an invalid image for Droplet creation.")
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, id := range req.SSHKeys {
			if _, ok := f.keys[id]; !ok {
				writeErr(w, 422, "unprocessable_entity", "ssh_keys contains an unknown key")
				return
			}
		}
		f.nextID++
		f.droplets[f.nextID] = &fakeDroplet{req: req}
		writeOK(w, 202, map[string]any{"droplet": map[string]any{"id": f.nextID, "name": req.Name, "status": "new"}})
	})
	mux.HandleFunc("GET /v2/droplets/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.Atoi(r.PathValue("id"))
		f.mu.Lock()
		d, ok := f.droplets[id]
		if ok {
			d.polls++
		}
		f.mu.Unlock()
		if !ok {
			writeErr(w, 404, "not_found", "The resource you were accessing could not be found.")
			return
		}
		out := map[string]any{"id": id, "name": d.req.Name, "status": "new", "size": map[string]any{"price_monthly": 4}}
		// Active with an address from the third poll on, as a droplet
		// boots.
		if d.polls >= 3 {
			out["status"] = "active"
			out["networks"] = map[string]any{"v4": []map[string]string{{"ip_address": "10.0.0.5", "type": "private"}, {"ip_address": "203.0.113.50", "type": "public"}}}
		}
		writeOK(w, 200, map[string]any{"droplet": out})
	})
	mux.HandleFunc("DELETE /v2/droplets/{id}", deleteFrom(&f.mu, f.droplets))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+f.token {
			writeErr(w, 401, "unauthorized", "Unable to authenticate you")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// deleteFrom answers DELETE …/{id} for the objects in m: 204, or 404 for
// one that is not there.
func deleteFrom[V any](mu *sync.Mutex, m map[int]V) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.Atoi(r.PathValue("id"))
		mu.Lock()
		_, ok := m[id]
		delete(m, id)
		mu.Unlock()
		if !ok {
			writeErr(w, 404, "not_found", "The resource you were accessing could not be found.")
			return
		}
		w.WriteHeader(204)
	}
}
