// Command cgtrace reads an execution trace of the gateway and says where the
// goroutines of each role spent their time: in system calls, waiting for a processor,
// blocked, or running. A goroutine's role is the first of -roles whose frame is on its
// stack where it last stopped running (the defaults name the goroutines that a
// query or a mutation passes through: session readers, serve workers, the batch's
// executors and committer, and Pebble's log writer); the rest are "other". With
// -long it also lists the longest waits of a role for a processor, with what each
// processor ran meanwhile, and whether the wait overlapped a GC mark phase.
//
// The trace comes from cgprofgw (CGPROF_TRACE). The first -skip of it (set-up, and
// the warm-up of the paced scenarios) is left out:
//
//	go build -o bin/cgprofgw ./bench/cmd/cgprofgw
//	CGPROF_TRACE=/tmp/m.trace go run ./bench/cmd/cgbench -gateway bin/cgprofgw -scenarios mutate
//	go run ./bench/cmd/cgtrace -skip 9s /tmp/m.trace
//	CGPROF_TRACE=/tmp/q.trace go run ./bench/cmd/cgbench -gateway bin/cgprofgw -warmup 3s -scenarios query
//	go run ./bench/cmd/cgtrace -skip 12s -long reader -n 3 /tmp/q.trace
//
// Durations are wall time: a goroutine that "runs" for a millisecond may have had
// its thread taken by the kernel for most of it.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cgtrace", flag.ContinueOnError)
	fs.SetOutput(stderr)
	skip := fs.Duration("skip", 8*time.Second, "leave out what ends within this much of the trace's start")
	rolesFlag := fs.String("roles", "", "name=frame pairs, comma-separated (default: the gateway's)")
	rows := fs.Int("rows", 12, "lines per table")
	long := fs.String("long", "", "list the longest waits for a processor of this role")
	n := fs.Int("n", 5, "how many of the longest waits -long lists")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *rows < 0 || *n < 0 {
		fmt.Fprintln(stderr, "cgtrace: -rows and -n cannot be negative")
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: cgtrace [flags] TRACE")
		return 2
	}
	roles := defaultRoles
	if *rolesFlag != "" {
		var err error
		if roles, err = parseRoles(*rolesFlag); err != nil {
			fmt.Fprintln(stderr, "cgtrace:", err)
			return 2
		}
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(stderr, "cgtrace:", err)
		return 1
	}
	defer f.Close()
	a, err := analyze(f, roles, *skip)
	if err != nil {
		fmt.Fprintln(stderr, "cgtrace:", err)
		return 1
	}
	a.report(stdout, *rows, *long, *n)
	return 0
}
