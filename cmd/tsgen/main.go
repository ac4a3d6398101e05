// Command tsgen writes the web UI's TypeScript types from internal/api
// (see package internal/api/tsgen).
//
//	go run ./cmd/tsgen -pkg internal/api -o web/src/api/types.gen.ts
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/portlama/portlama/internal/api/tsgen"
	"github.com/portlama/portlama/internal/store"
)

func main() {
	pkg := flag.String("pkg", "internal/api", "directory of the Go package to read")
	out := flag.String("o", "web/src/api/types.gen.ts", "TypeScript file to write")
	flag.Parse()
	src, err := tsgen.Generate(*pkg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := store.WriteFileAtomic(*out, src, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "tsgen:", err)
		os.Exit(1)
	}
}
