// Package keychain keeps the home app's secrets (cloud API tokens, the
// passwords of imported admin P12 files) in the OS keychain: the macOS
// Keychain (through /usr/bin/security) or the Linux Secret Service (over
// D-Bus: gnome-keyring, KeePassXC, KWallet's bridge). Both work without
// CGO (github.com/zalando/go-keyring).
//
// When no keychain answers (a headless Linux machine without a Secret
// Service), Open fails with ErrUnavailable and says what to do. Secrets are
// never written in plain text unless the user chose the file backend
// explicitly (BackendFile, PORTLAMA_KEYCHAIN=file): docs/home.md
// "Credentials" documents that fallback and what it costs.
package keychain

import (
	"errors"
	"fmt"
	"regexp"

	"github.com/zalando/go-keyring"

	"github.com/portlama/portlama/internal/store"
)

// Backends.
const (
	// BackendOS is the OS keychain (the default).
	BackendOS = "os"
	// BackendFile is a 0600 JSON file, not encrypted: only by explicit choice.
	BackendFile = "file"
)

// EnvBackend names the environment variable commands read the backend
// from (the package itself reads no environment).
const EnvBackend = "PORTLAMA_KEYCHAIN"

// ErrUnavailable is returned by Open when the OS keychain cannot be reached.
var ErrUnavailable = errors.New("no OS keychain is available (on Linux: a Secret Service such as gnome-keyring or KeePassXC on the D-Bus session bus; on macOS: the login keychain)")

// ErrNotFound is returned by Get for a key that has no secret.
var ErrNotFound = errors.New("no such secret in the keychain")

// Keychain stores secrets by key.
type Keychain interface {
	Set(key, secret string) error
	Get(key string) (string, error)
	Delete(key string) error
	// Backend is BackendOS or BackendFile.
	Backend() string
}

// Options say which backend Open uses.
type Options struct {
	// Backend is BackendOS (default when empty) or BackendFile.
	Backend string
	// Service is the keychain service the items are stored under.
	Service string
	// File is the file of BackendFile.
	File string
}

// keyPattern: keys name items in the keychain and fields of the file
// backend; they are made by the program ("p12-password/<server>").
var keyPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._/-]{0,127}$`)

// ValidateKey checks a secret's key.
func ValidateKey(key string) error {
	if !keyPattern.MatchString(key) {
		return fmt.Errorf("invalid secret key %q", key)
	}
	return nil
}

// probeKey is looked up by Open: any answer but "not found" means the
// keychain does not work.
const probeKey = "portlama-probe"

// Open returns the keychain of o. With BackendOS it checks that the OS
// keychain answers; when it does not, the error wraps ErrUnavailable and
// names the fallback.
func Open(o Options) (Keychain, error) {
	if o.Service == "" {
		o.Service = "portlama"
	}
	switch o.Backend {
	case "", BackendOS:
		k := osKeychain{service: o.Service}
		if _, err := keyring.Get(o.Service, probeKey); err != nil && !errors.Is(err, keyring.ErrNotFound) {
			return nil, &UnavailableError{Cause: err}
		}
		return k, nil
	case BackendFile:
		if o.File == "" {
			return nil, errors.New("the file keychain needs a file path")
		}
		return fileKeychain{doc: store.NewDoc[map[string]string](o.File, 0o600)}, nil
	default:
		return nil, fmt.Errorf("unknown keychain backend %q: use %q or %q", o.Backend, BackendOS, BackendFile)
	}
}

// UnavailableError is Open's error when the OS keychain does not answer.
type UnavailableError struct{ Cause error }

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("%v: %v. Start a Secret Service (for example gnome-keyring-daemon --unlock --components=secrets in your D-Bus session), or, knowing that secrets are then kept unencrypted in ~/.portlama/secrets.json (mode 0600), set %s=%s",
		ErrUnavailable, e.Cause, EnvBackend, BackendFile)
}

func (e *UnavailableError) Unwrap() []error { return []error{ErrUnavailable, e.Cause} }

type osKeychain struct{ service string }

func (k osKeychain) Backend() string { return BackendOS }

func (k osKeychain) Set(key, secret string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if err := keyring.Set(k.service, key, secret); err != nil {
		return fmt.Errorf("store %s in the keychain: %w", key, err)
	}
	return nil
}

func (k osKeychain) Get(key string) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	s, err := keyring.Get(k.service, key)
	if errors.Is(err, keyring.ErrNotFound) {
		return "", fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("read %s from the keychain: %w", key, err)
	}
	return s, nil
}

func (k osKeychain) Delete(key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	err := keyring.Delete(k.service, key)
	if err != nil && !errors.Is(err, keyring.ErrNotFound) {
		return fmt.Errorf("delete %s from the keychain: %w", key, err)
	}
	return nil
}

type fileKeychain struct{ doc *store.Doc[map[string]string] }

func (k fileKeychain) Backend() string { return BackendFile }

func (k fileKeychain) Set(key, secret string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	_, err := k.doc.Update(func(m *map[string]string) error {
		if *m == nil {
			*m = map[string]string{}
		}
		(*m)[key] = secret
		return nil
	})
	if err != nil {
		return fmt.Errorf("store %s in the secrets file: %w", key, err)
	}
	return nil
}

func (k fileKeychain) Get(key string) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	m, err := k.doc.Load()
	if err != nil {
		return "", fmt.Errorf("read the secrets file: %w", err)
	}
	s, ok := m[key]
	if !ok {
		return "", fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	return s, nil
}

func (k fileKeychain) Delete(key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	_, err := k.doc.Update(func(m *map[string]string) error {
		delete(*m, key)
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete %s from the secrets file: %w", key, err)
	}
	return nil
}
