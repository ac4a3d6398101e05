// Package sitepath holds the file rules of static sites (docs/api.md, "Static sites"):
// which paths below a site root may be uploaded, listed and deleted, which
// extensions files may have, and how an upload part's file name is read.
// The relay applies them to every request; portlama-agent applies them
// before a deploy, so a refused file is reported before anything is sent.
package sitepath

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"net/textproto"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/portlama/portlama/internal/errkind"
	"github.com/portlama/portlama/internal/validate"
)

// The file rules' messages (docs/api.md, "Static sites"), verbatim: clients match on them.
const (
	MsgPathRequired  = "Path is required"
	MsgPathNull      = "Path contains null bytes"
	MsgPathAbsolute  = "Absolute paths are not allowed"
	MsgPathTraversal = "Path traversal is not allowed"
	MsgPathHidden    = "Hidden files/directories are not allowed"
	MsgPathRoot      = "Path traversal detected"
	// Rules the contract does not list (docs/api.md, "Static sites").
	MsgPathControl = "Path contains control characters"
	MsgPathUTF8    = "Path is not valid UTF-8"
	MsgPathLong    = "Path is too long"
)

// MaxFileSize is the largest file one upload part may carry
// (docs/api.md, "Placement and transport": 50 MiB per file).
const MaxFileSize = 50 << 20

// Length limits of a site path: what Linux file systems take.
const (
	maxComponent = 255
	maxPath      = 1024
)

// Clean applies the file rules to p, a path relative to a site root,
// and returns it normalised: forward slashes (a backslash counts as one),
// no "." or empty components, no trailing slash. The root itself (".",
// "a/..") is accepted only when root is true (listing and the upload
// directory); deleting it is "Path traversal detected". A returned path
// never leaves the root, names no hidden file and contains no "..".
func Clean(p string, root bool) (string, error) {
	switch {
	case p == "":
		return "", invalid(MsgPathRequired)
	case strings.IndexByte(p, 0) >= 0:
		return "", invalid(MsgPathNull)
	case !utf8.ValidString(p):
		return "", invalid(MsgPathUTF8)
	case hasControl(p):
		return "", invalid(MsgPathControl)
	}
	p = strings.ReplaceAll(p, `\`, "/")
	if strings.HasPrefix(p, "/") {
		return "", invalid(MsgPathAbsolute)
	}
	clean := path.Clean(p)
	if strings.HasPrefix(clean, "..") || strings.Contains(clean, "/..") {
		return "", invalid(MsgPathTraversal)
	}
	if clean == "." {
		if root {
			return ".", nil
		}
		return "", invalid(MsgPathRoot)
	}
	if len(clean) > maxPath {
		return "", invalid(MsgPathLong)
	}
	for _, c := range strings.Split(clean, "/") {
		if strings.HasPrefix(c, ".") {
			return "", invalid(MsgPathHidden)
		}
		if len(c) > maxComponent {
			return "", invalid(MsgPathLong)
		}
	}
	return clean, nil
}

// hasControl reports control characters and Unicode format characters
// (bidi overrides, zero-width characters: names that display as something
// else).
func hasControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return true
		}
	}
	return false
}

func invalid(msg string) error { return errkind.New(errkind.Invalid, "%s", msg) }

// CheckExtension applies the allowed-extension rule to the last component
// of a cleaned path; name is the file name as the client sent it (for the
// message).
func CheckExtension(clean, name string) error {
	ext := path.Ext(path.Base(clean))
	if ext == "" || ext == "." {
		return errkind.New(errkind.Invalid, "File '%s' has no extension and is not allowed", name)
	}
	if _, ok := validate.SiteFileType(ext[1:]); !ok {
		return errkind.New(errkind.Invalid, "File '%s' has disallowed extension '%s'", name, strings.ToLower(ext))
	}
	return nil
}

// Upload returns where a file part named name (its filename as sent)
// is stored when uploaded into dir (a cleaned directory, "." for the
// root): both obey the file rules, and the file must have an allowed
// extension.
func Upload(dir, name string) (string, error) {
	n, err := Clean(name, false)
	if err != nil {
		return "", err
	}
	joined := n
	if dir != "." {
		joined = dir + "/" + n
	}
	clean, err := Clean(joined, false)
	if err != nil {
		return "", err
	}
	if err := CheckExtension(clean, name); err != nil {
		return "", err
	}
	return clean, nil
}

// PartFileName reads the file name of a multipart part from its
// Content-Disposition header as sent (filename, or filename* per RFC
// 2231/5987), without mime/multipart's reduction to the last path
// element: a name with directories is stored in those directories, and a
// name with ".." is refused rather than silently shortened. isFile is false
// for a part without a file name (a form field, or an empty file input),
// which uploads ignore.
func PartFileName(h textproto.MIMEHeader) (name string, isFile bool, err error) {
	cd := h.Get("Content-Disposition")
	if cd == "" {
		return "", false, nil
	}
	_, params, err := mime.ParseMediaType(cd)
	if err != nil {
		return "", false, errkind.New(errkind.Invalid, "malformed Content-Disposition of a part")
	}
	name, ok := params["filename"]
	if !ok || name == "" {
		return "", false, nil
	}
	return name, true, nil
}

// FormatSize formats a byte count for people (1.5 KiB, 512.0 MiB), as
// the relay's size warning and the agent print it.
func FormatSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// SHA256 returns the hex SHA-256 of what r yields: how the relay's listing
// and the agent's deploy compare a file's content.
func SHA256(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
