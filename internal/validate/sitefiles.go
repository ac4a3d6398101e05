package validate

import (
	"maps"
	"slices"
	"strings"
)

// siteFileTypes are the extensions a static site's files may have
// (docs/api.md, "Static sites", lower case without the dot) and the Content-Type nginx serves each
// with. The site vhost's types table is built from this list, so every file
// that can be uploaded has the right type and nothing else has one.
var siteFileTypes = map[string]string{
	"html": "text/html", "htm": "text/html",
	"css": "text/css",
	"js":  "application/javascript", "mjs": "application/javascript",
	"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
	"svg": "image/svg+xml", "ico": "image/x-icon", "webp": "image/webp", "avif": "image/avif",
	"bmp":  "image/bmp",
	"woff": "font/woff", "woff2": "font/woff2", "ttf": "font/ttf", "otf": "font/otf",
	"eot": "application/vnd.ms-fontobject",
	"mp4": "video/mp4", "webm": "video/webm", "ogg": "audio/ogg", "mp3": "audio/mpeg",
	"wav": "audio/wav", "flac": "audio/flac",
	"pdf": "application/pdf", "txt": "text/plain", "md": "text/markdown",
	"json": "application/json", "xml": "text/xml", "csv": "text/csv",
	"geojson": "application/geo+json", "topojson": "application/json", "map": "application/json",
	"webmanifest": "application/manifest+json", "manifest": "text/cache-manifest",
	"wasm": "application/wasm",
}

// SiteFileType returns the Content-Type of a site file with extension ext
// (without the dot, any case); ok is false for an extension sites may not
// have.
func SiteFileType(ext string) (contentType string, ok bool) {
	t, ok := siteFileTypes[strings.ToLower(ext)]
	return t, ok
}

// SiteFileExtensions returns the allowed site file extensions (lower case,
// without the dot), sorted.
func SiteFileExtensions() []string {
	return slices.Sorted(maps.Keys(siteFileTypes))
}
