//go:build tools

// Package tools pins the stock chisel clients the compatibility tests run:
// scripts/deps.sh --test builds bin/chisel-<version> from here, the
// current release from go.mod and an older one with -modfile=v1.9.1.mod.
package tools

import _ "github.com/jpillora/chisel"
