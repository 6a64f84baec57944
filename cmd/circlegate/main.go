// Command circlegate is the circlegate gateway. All of it lives in package launcher.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/circlegate/circlegate/launcher"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := launcher.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
