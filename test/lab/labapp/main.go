// Command labapp is the web app the lab's home machine runs as a systemd
// service (the sample app on one address), so that it comes back after
// the machine reboots, as a real home app does.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/portlama/portlama/internal/sampleapp"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to serve on")
	name := flag.String("name", "lab app", "the app's name, shown on its page")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "labapp:", err)
		os.Exit(1)
	}
	if err := sampleapp.Serve(ctx, ln, *name); err != nil {
		fmt.Fprintln(os.Stderr, "labapp:", err)
		os.Exit(1)
	}
}
