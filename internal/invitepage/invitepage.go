// Package invitepage holds the invitation page that nginx serves at
// https://auth.<d>/invite/#<token> from <WWWDir>/invite/ (docs/api.md,
// "Invitations"). The page is static: its script reads the token from the
// URL's fragment (never sent to a server, so never logged), calls
// POST /api/invite/lookup {token}, asks for a password, posts
// {token, password} to /api/invite/accept and shows the TOTP QR code and
// manual key the panel returns.
//
// It loads only same-origin resources and has no inline script or style,
// so it works under the page's Content-Security-Policy (CSP below), which
// the nginx vhost sends together with Referrer-Policy: no-referrer.
package invitepage

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/portlama/portlama/internal/store"
)

// CSP is the Content-Security-Policy the auth vhost sends with the page.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Dir is the page's directory below the web root.
const Dir = "invite"

//go:embed assets/index.html assets/invite.js assets/invite.css
var assets embed.FS

// Files returns the page's files (index.html, invite.js, invite.css).
func Files() fs.FS {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return sub
}

// Write writes the page into <wwwDir>/invite/ (directory 0755, files 0644),
// replacing each file atomically.
func Write(wwwDir string) error {
	dir := filepath.Join(wwwDir, Dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create invitation page directory: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return fmt.Errorf("set mode of invitation page directory: %w", err)
	}
	files := Files()
	entries, err := fs.ReadDir(files, ".")
	if err != nil {
		return fmt.Errorf("list invitation page files: %w", err)
	}
	for _, e := range entries {
		data, err := fs.ReadFile(files, e.Name())
		if err != nil {
			return fmt.Errorf("read embedded %s: %w", e.Name(), err)
		}
		if err := store.WriteFileAtomic(filepath.Join(dir, e.Name()), data, 0o644); err != nil {
			return fmt.Errorf("write invitation page %s: %w", e.Name(), err)
		}
	}
	return nil
}
