// Package bench holds the load and benchmark harness of circlegate: cmd/cgbench
// drives a gateway subprocess with load-generator processes (see docs/benchmarks.md),
// cmd/cgprofgw is the gateway with CPU and heap profiling, cmd/cgtrace reads its
// execution traces, cmd/loopfloor and cmd/rpcfloor measure what the fan-out, the
// paced calls and the fleet cost with the gateway taken away, and this package's
// benchmarks time in-process the costs that dominate a handshake, and what a short
// sleep costs on this machine.
package bench
