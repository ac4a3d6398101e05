package qr

import (
	"bytes"
	"encoding/base64"
	"image/png"
	"strings"
	"testing"
)

func TestPNGDataURL(t *testing.T) {
	u, err := PNGDataURL("otpauth://totp/Portlama:alice?secret=JBSWY3DPEHPK3PXP&issuer=Portlama&algorithm=SHA1&digits=6&period=30")
	if err != nil {
		t.Fatal(err)
	}
	const prefix = "data:image/png;base64,"
	if !strings.HasPrefix(u, prefix) {
		t.Fatalf("prefix: %.30q", u)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(u, prefix))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != DefaultSize || b.Dy() != DefaultSize {
		t.Fatalf("size %v", b)
	}
}

func TestPNGRefusesOversizedContent(t *testing.T) {
	if _, err := PNG(strings.Repeat("x", 5000), 0); err == nil {
		t.Fatal("content beyond QR capacity accepted")
	}
}
