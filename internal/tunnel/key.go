package tunnel

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/jpillora/chisel/share/ccrypto"
	"github.com/portlama/portlama/internal/store"
	"golang.org/x/crypto/ssh"
)

// EnsureKey makes sure keyFile holds the tunnel server's private key in
// chisel key format ("ck-…", what `chisel server --keygen` prints and
// `--keyfile` reads), creating it (mode 0600) if it does not exist, and
// that fingerprintFile (mode 0644) holds its fingerprint as chisel prints
// it. It returns the fingerprint. An existing key is never replaced.
func EnsureKey(keyFile, fingerprintFile string) (string, error) {
	key, err := os.ReadFile(keyFile)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = newChiselKey()
		if err != nil {
			return "", err
		}
		if err := store.WriteFileAtomic(keyFile, key, 0o600); err != nil {
			return "", fmt.Errorf("write tunnel server key: %w", err)
		}
	} else if err != nil {
		return "", fmt.Errorf("read tunnel server key: %w", err)
	}
	fp, err := KeyFingerprint(key)
	if err != nil {
		return "", err
	}
	if fingerprintFile != "" {
		cur, err := os.ReadFile(fingerprintFile)
		if err != nil || strings.TrimSpace(string(cur)) != fp {
			if err := store.WriteFileAtomic(fingerprintFile, []byte(fp+"\n"), 0o644); err != nil {
				return "", fmt.Errorf("write tunnel server fingerprint: %w", err)
			}
		}
	}
	return fp, nil
}

// ReadFingerprint returns the fingerprint stored in fingerprintFile.
func ReadFingerprint(fingerprintFile string) (string, error) {
	b, err := os.ReadFile(fingerprintFile)
	if err != nil {
		return "", fmt.Errorf("read tunnel server fingerprint: %w", err)
	}
	fp := strings.TrimSpace(string(b))
	if err := checkFingerprint(fp); err != nil {
		return "", err
	}
	return fp, nil
}

// KeyFingerprint returns the SHA256 fingerprint of a chisel or PEM key.
func KeyFingerprint(key []byte) (string, error) {
	pemBytes, err := keyPEM(key)
	if err != nil {
		return "", err
	}
	signer, err := ssh.ParsePrivateKey(pemBytes)
	if err != nil {
		return "", fmt.Errorf("parse tunnel server key: %w", err)
	}
	return ccrypto.FingerprintKey(signer.PublicKey()), nil
}

// keyPEM returns the PEM form of a chisel ("ck-…") or PEM key.
func keyPEM(key []byte) ([]byte, error) {
	if !ccrypto.IsChiselKey(key) {
		return key, nil
	}
	pemBytes, err := ccrypto.ChiselKey2PEM([]byte(strings.TrimSpace(string(key))))
	if err != nil {
		return nil, fmt.Errorf("decode tunnel server key: %w", err)
	}
	return pemBytes, nil
}

func newChiselKey() ([]byte, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate tunnel server key: %w", err)
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encode tunnel server key: %w", err)
	}
	return []byte(ccrypto.ChiselKeyPrefix + base64.RawStdEncoding.EncodeToString(der)), nil
}
