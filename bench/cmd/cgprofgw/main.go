// Command cgprofgw is the circlegate gateway with profiling, for finding out what a
// benchmark's figures are made of without touching the gateway's code. It runs
// launcher.Main exactly as cmd/circlegate does and, driven by the environment:
//
//	CGPROF_CPU=FILE   writes a CPU profile of the whole run to FILE; in FILE, %c stands
//	                  for the command (serve, worker) and %p for the process id, so the
//	                  processes of a fleet write one profile each
//	CGPROF_HEAP=FILE  writes a heap profile (after a GC) to FILE on each SIGUSR1
//	CGPROF_TRACE=FILE writes an execution trace of the whole run to FILE (%c and %p
//	                  as for CGPROF_CPU); `go tool trace -pprof=sched FILE` then shows
//	                  where goroutines waited for a processor
//
// For example:
//
//	go build -o bin/cgprofgw ./bench/cmd/cgprofgw
//	CGPROF_CPU=/tmp/hs.prof go run ./bench/cmd/cgbench -gateway bin/cgprofgw -scenarios handshake
//	go tool pprof -top bin/cgprofgw /tmp/hs.prof
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"syscall"

	"github.com/circlegate/circlegate/launcher"
)

func main() {
	os.Exit(run())
}

func run() int {
	for _, r := range []struct {
		env   string
		start func(io.Writer) error
		stop  func()
	}{
		{"CGPROF_CPU", pprof.StartCPUProfile, pprof.StopCPUProfile},
		{"CGPROF_TRACE", trace.Start, trace.Stop},
	} {
		stop, err := record(r.env, r.start, r.stop)
		if err != nil {
			fmt.Fprintf(os.Stderr, "cgprofgw: %v\n", err)
			return 1
		}
		defer stop()
	}
	if path := os.Getenv("CGPROF_HEAP"); path != "" {
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, syscall.SIGUSR1)
		go func() {
			for range usr1 {
				writeHeap(path)
			}
		}()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return launcher.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
}

// record starts a recording of the whole run into the file that env names, if it
// is set, and returns what ends it.
func record(env string, start func(io.Writer) error, stop func()) (func(), error) {
	path := os.Getenv(env)
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(expand(path))
	if err != nil {
		return nil, err
	}
	if err := start(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		stop()
		f.Close()
	}, nil
}

// expand replaces %c in path with the command (serve, worker) and %p with the
// process id.
func expand(path string) string {
	cmd := "none"
	if len(os.Args) > 1 {
		cmd = os.Args[1]
	}
	return strings.NewReplacer("%c", cmd, "%p", strconv.Itoa(os.Getpid())).Replace(path)
}

func writeHeap(path string) {
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cgprofgw: %v\n", err)
		return
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		fmt.Fprintf(os.Stderr, "cgprofgw: %v\n", err)
	}
}
