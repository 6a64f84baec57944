// Package bench holds the load and benchmark harness of circlegate: cmd/cgbench
// drives a gateway subprocess with load-generator processes (see docs/benchmarks.md),
// cmd/cgprofgw is the gateway with CPU and heap profiling, and this package's
// benchmarks time in-process the costs that dominate a handshake.
package bench
