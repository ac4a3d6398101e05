package demo

import (
	"context"
	"log/slog"
	"time"

	"github.com/portlama/portlama/internal/pki"
)

// relayCAIssuer issues domain certificates from the relay's own CA, for
// an offline demo: no public CA can certify a made-up domain without
// network, and clients trust the relay CA instead (demo.json caCert).
type relayCAIssuer struct {
	dir string
	log *slog.Logger
}

func (r relayCAIssuer) Obtain(_ context.Context, names []string) ([]byte, []byte, string, error) {
	p, err := pki.Open(pki.Config{Dir: r.dir, Logger: r.log})
	if err != nil {
		return nil, nil, "", err
	}
	certPEM, keyPEM, err := p.IssueServer(names, 90*24*time.Hour)
	if err != nil {
		return nil, nil, "", err
	}
	return certPEM, keyPEM, "relay-ca", nil
}
