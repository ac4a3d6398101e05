//go:build !linux && !darwin

package discover

import (
	"context"
	"errors"
)

func systemListeners(context.Context) ([]Listener, error) {
	return nil, errors.New("service discovery works on Linux and macOS only")
}
