package tunnel

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/portlama/portlama/internal/store"
)

// ProxySecretFileName is the tunnel server's proof secret inside the tunnel
// directory. nginx's tunnel vhost sends it in HeaderSecret (snippet
// portlama-tunnel-secret.conf); it is not the panel's proxy secret.
const ProxySecretFileName = "proxy-secret"

// EnsureProxySecret makes sure path holds a 64-hex secret (mode 0600),
// creating it if it does not exist, and returns it. An existing valid
// secret is never replaced; an invalid one is an error.
func EnsureProxySecret(path string) (string, error) {
	s, err := ReadProxySecret(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return s, err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate tunnel proxy secret: %w", err)
	}
	s = hex.EncodeToString(b)
	if err := store.WriteFileAtomic(path, []byte(s+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write tunnel proxy secret: %w", err)
	}
	return s, nil
}

// ReadProxySecret reads the secret at path (64 lower-case hex characters,
// optional trailing newline).
func ReadProxySecret(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read tunnel proxy secret: %w", err)
	}
	s := strings.TrimSpace(string(data))
	if !hex64Re.MatchString(s) {
		return "", fmt.Errorf("tunnel proxy secret in %s: must be 64 lower-case hex characters", path)
	}
	return s, nil
}
