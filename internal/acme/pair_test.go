package acme

import (
	"crypto/tls"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// readPair reads the certificate and key the way nginx does at a reload:
// it resolves <certs>/<name> once and reads both files from there.
func readPair(dir, name string) (cert, key []byte, err error) {
	root, err := os.OpenRoot(filepath.Join(dir, name))
	if err != nil {
		return nil, nil, err
	}
	defer root.Close()
	read := func(f string) ([]byte, error) {
		h, err := root.Open(f)
		if err != nil {
			return nil, err
		}
		defer h.Close()
		return io.ReadAll(h)
	}
	if cert, err = read(CertFile); err != nil {
		return nil, nil, err
	}
	key, err = read(KeyFile)
	return cert, key, err
}

// While certificates are being replaced, a reader always sees a matching
// certificate and key (never a new certificate with the old key).
func TestInstallKeepsCertificateAndKeyTogether(t *testing.T) {
	dir := t.TempDir()
	s := &Store{Dir: dir, Domain: func() string { return "example.com" }}
	type pair struct{ cert, key []byte }
	var pairs []pair
	for i := 0; i < 3; i++ {
		c, k := selfSigned(t, []string{"app.example.com"}, time.Now().Add(time.Duration(30+i)*24*time.Hour))
		pairs = append(pairs, pair{c, k})
	}
	if err := s.Install("app.example.com", pairs[0].cert, pairs[0].key, []string{"app.example.com"}, "http-01"); err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			p := pairs[i%len(pairs)]
			if err := s.Install("app.example.com", p.cert, p.key, []string{"app.example.com"}, "http-01"); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := 0; i < 300; i++ {
		cert, key, err := readPair(dir, "app.example.com")
		if err != nil {
			// The previous version is kept, so a resolved directory never
			// disappears under a reader.
			t.Fatalf("read %d: %v", i, err)
		}
		if _, err := tls.X509KeyPair(cert, key); err != nil {
			t.Fatalf("read %d: certificate and key do not match: %v", i, err)
		}
	}
	close(stop)
	wg.Wait()

	// Old versions are cleaned up once their grace time has passed: the
	// current and the previous remain.
	s.Now = func() time.Time { return time.Now().Add(versionGrace + time.Minute) }
	if err := s.Install("app.example.com", pairs[0].cert, pairs[0].key, []string{"app.example.com"}, "http-01"); err != nil {
		t.Fatal(err)
	}
	if v := s.versions("app.example.com"); len(v) > 2 {
		t.Fatalf("versions kept: %v", v)
	}
	if names, _ := s.Names(); len(names) != 1 || names[0] != "app.example.com" {
		t.Fatalf("Names() = %v", names)
	}
	if err := s.DeleteIndividual(nil, "app.example.com"); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("delete left %v", entries)
	}
}

// A certificate directory written by an older release (a plain directory)
// is replaced by a versioned one on the next install.
func TestInstallMigratesPlainDirectory(t *testing.T) {
	dir := t.TempDir()
	s := &Store{Dir: dir, Domain: func() string { return "example.com" }}
	c, k := selfSigned(t, []string{"app.example.com"}, time.Now().Add(40*24*time.Hour))
	plain := filepath.Join(dir, "app.example.com")
	os.MkdirAll(plain, 0o700)
	os.WriteFile(filepath.Join(plain, CertFile), c, 0o644)
	os.WriteFile(filepath.Join(plain, KeyFile), k, 0o600)
	if names, _ := s.Names(); len(names) != 1 {
		t.Fatalf("plain directory not listed: %v", names)
	}
	c2, k2 := selfSigned(t, []string{"app.example.com"}, time.Now().Add(80*24*time.Hour))
	if err := s.Install("app.example.com", c2, k2, []string{"app.example.com"}, "http-01"); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(plain)
	if err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("not a symlink after install: %v %v", fi, err)
	}
	cert, key, err := readPair(dir, "app.example.com")
	if err != nil || string(cert) != string(c2) || string(key) != string(k2) {
		t.Fatalf("new pair not current: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(plain, KeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode: %v %v", fi, err)
	}
}
