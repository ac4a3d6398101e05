//go:build tools

// Package tools pins the development tools `make check` builds (deadcode),
// in a module of their own so the relay's module does not depend on them.
package tools

import _ "golang.org/x/tools/cmd/deadcode"
