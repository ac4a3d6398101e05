package onboarding

import (
	"net"
	"testing"
)

// listenSilent returns the address of a UDP socket that reads and never answers.
func listenSilent(t *testing.T) (string, error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	return pc.LocalAddr().String(), nil
}
