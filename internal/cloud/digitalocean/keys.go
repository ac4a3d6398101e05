package digitalocean

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// KeyPair is an Ed25519 SSH key made on this machine.
type KeyPair struct {
	Private ed25519.PrivateKey
	Signer  ssh.Signer
	// AuthorizedKey is the public key in authorized_keys format.
	AuthorizedKey string
	// PEM is the private key in OpenSSH format.
	PEM []byte
}

// NewKeyPair generates a key pair: one for logging in, one as the
// droplet's host key.
func NewKeyPair(comment string) (*KeyPair, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate an SSH key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	spub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, err
	}
	ak := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(spub)))
	if comment != "" {
		ak += " " + comment
	}
	return &KeyPair{Private: priv, Signer: signer, AuthorizedKey: ak, PEM: pem.EncodeToMemory(block)}, nil
}

// CloudInit returns the droplet's user data: cloud-init installs host as
// the SSH host key (and generates no other), so the first connection can
// verify it with HostKeyCallback instead of trusting what it is shown.
func CloudInit(host *KeyPair) string {
	var b strings.Builder
	b.WriteString("#cloud-config\n")
	b.WriteString("ssh_deletekeys: true\n")
	b.WriteString("ssh_genkeytypes: []\n")
	b.WriteString("ssh_keys:\n")
	b.WriteString("  ed25519_private: |\n")
	for _, l := range strings.Split(strings.TrimRight(string(host.PEM), "\n"), "\n") {
		b.WriteString("    " + l + "\n")
	}
	b.WriteString("  ed25519_public: " + host.AuthorizedKey + "\n")
	return b.String()
}

// HostKeyCallback accepts exactly host's public key.
func HostKeyCallback(host *KeyPair) ssh.HostKeyCallback {
	return ssh.FixedHostKey(host.Signer.PublicKey())
}
