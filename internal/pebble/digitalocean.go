package pebble

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DigitalOcean is a local stand-in for the part of DigitalOcean's DNS API
// that lego's provider uses (create and delete a TXT record). It is the one
// fake in the ACME tests: the records it is given are served by the real
// DNS test server, where Pebble checks them. Requests need the token.
type DigitalOcean struct {
	URL   string // base URL, for DO_API_URL
	Token string

	srv     *http.Server
	pebble  *Server
	mu      sync.Mutex
	next    int
	records map[int]txtRecord
}

type txtRecord struct{ host, value string }

// StartDigitalOcean serves the fake API on a free loopback port.
func (s *Server) StartDigitalOcean() (*DigitalOcean, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	d := &DigitalOcean{URL: "http://" + ln.Addr().String(), Token: "do-test-token-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		pebble: s, records: map[int]txtRecord{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v2/domains/{zone}/records", d.create)
	mux.HandleFunc("DELETE /v2/domains/{zone}/records/{id}", d.remove)
	d.srv = &http.Server{Handler: d.auth(mux), ReadHeaderTimeout: 5 * time.Second}
	go d.srv.Serve(ln)
	return d, nil
}

// Close stops the fake API.
func (d *DigitalOcean) Close() { d.srv.Close() }

// Records returns the TXT records currently held (host → values).
func (d *DigitalOcean) Records() map[string][]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string][]string{}
	for _, r := range d.records {
		out[r.host] = append(out[r.host], r.value)
	}
	return out
}

func (d *DigitalOcean) auth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+d.Token {
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(map[string]string{"id": "unauthorized", "message": "Unable to authenticate you"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (d *DigitalOcean) create(w http.ResponseWriter, r *http.Request) {
	var rec struct {
		Type, Name, Data string
		TTL              int
	}
	if err := json.NewDecoder(r.Body).Decode(&rec); err != nil || rec.Type != "TXT" || rec.Name == "" {
		w.WriteHeader(http.StatusUnprocessableEntity)
		json.NewEncoder(w).Encode(map[string]string{"id": "unprocessable_entity", "message": "bad record"})
		return
	}
	// lego sends the fully qualified name; DigitalOcean accepts that form.
	host := strings.TrimSuffix(rec.Name, ".")
	d.mu.Lock()
	d.next++
	id := d.next
	d.records[id] = txtRecord{host: host, value: rec.Data}
	d.mu.Unlock()
	if err := d.sync(r.Context(), host); err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		json.NewEncoder(w).Encode(map[string]string{"id": "server_error", "message": err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(map[string]any{"domain_record": map[string]any{"id": id, "type": "TXT", "name": rec.Name, "data": rec.Data, "ttl": rec.TTL}})
}

func (d *DigitalOcean) remove(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.Atoi(r.PathValue("id"))
	d.mu.Lock()
	rec, ok := d.records[id]
	delete(d.records, id)
	d.mu.Unlock()
	if err != nil || !ok {
		w.WriteHeader(http.StatusNotFound)
		json.NewEncoder(w).Encode(map[string]string{"id": "not_found", "message": "The resource you were accessing could not be found."})
		return
	}
	if err := d.sync(r.Context(), rec.host); err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// sync makes the DNS server's TXT records of host equal to the held ones.
func (d *DigitalOcean) sync(ctx context.Context, host string) error {
	d.mu.Lock()
	var values []string
	for _, r := range d.records {
		if r.host == host {
			values = append(values, r.value)
		}
	}
	d.mu.Unlock()
	if err := d.pebble.ClearTXT(ctx, host); err != nil {
		return err
	}
	for _, v := range values {
		if err := d.pebble.SetTXT(ctx, host, v); err != nil {
			return err
		}
	}
	return nil
}
