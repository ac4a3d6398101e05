package auth

import (
	"net"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"

	"github.com/portlama/portlama/internal/store"
)

func codeAt(secret string, t time.Time) (string, error) {
	return hotp.GenerateCodeCustom(secret, uint64(t.Unix()/30), hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
}

func listen(t testing.TB) (net.Listener, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln, ln.Addr().String()
}

func writeTestFile(path string, data []byte) error {
	return store.WriteFileAtomic(path, data, 0o600)
}
