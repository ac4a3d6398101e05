// Package qr renders QR codes as PNG data URLs, for TOTP enrolment pages
// that must not load images from other hosts.
package qr

import (
	"encoding/base64"
	"fmt"

	qrcode "github.com/skip2/go-qrcode"
)

// DefaultSize is the PNG edge length in pixels used by PNGDataURL.
const DefaultSize = 256

// PNG renders content as a QR code PNG of size×size pixels (medium error
// correction).
func PNG(content string, size int) ([]byte, error) {
	if size <= 0 {
		size = DefaultSize
	}
	png, err := qrcode.Encode(content, qrcode.Medium, size)
	if err != nil {
		return nil, fmt.Errorf("render QR code: %w", err)
	}
	return png, nil
}

// PNGDataURL renders content as "data:image/png;base64,..." at DefaultSize.
func PNGDataURL(content string) (string, error) {
	png, err := PNG(content, DefaultSize)
	if err != nil {
		return "", err
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(png), nil
}
