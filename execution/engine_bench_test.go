package execution_test

import (
	"context"
	"testing"
	"time"

	"github.com/circlegate/circlegate/execution"
)

// BenchmarkNoop measures the engine's overhead: a method that does nothing, on a
// pooled instance of a Go guest.
func BenchmarkNoop(b *testing.B) {
	e := newEngine(b, execution.EngineConfig{})
	c := call(example(b, "counter"), "noop", "", nil)
	ctx := context.Background()
	benchRuns(b, e, ctx, c)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/call")
}

// BenchmarkNoopDeadline is BenchmarkNoop under a caller's context with a deadline,
// as a worker runs jobs: the engine then also watches the caller's cancellation.
func BenchmarkNoopDeadline(b *testing.B) {
	e := newEngine(b, execution.EngineConfig{})
	c := call(example(b, "counter"), "noop", "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	benchRuns(b, e, ctx, c)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/call")
}

// BenchmarkNoopWAT is BenchmarkNoop with a hand-written guest (no Go runtime).
func BenchmarkNoopWAT(b *testing.B) {
	e := newEngine(b, execution.EngineConfig{})
	c := call(example(b, "watcounter"), "get", "", newState())
	ctx := context.Background()
	benchRuns(b, e, ctx, c)
}

// BenchmarkIncrement is a real method: JSON args and result, a read and a write.
func BenchmarkIncrement(b *testing.B) {
	e := newEngine(b, execution.EngineConfig{})
	st := newState()
	c := call(example(b, "counter"), "increment", `{"by":2}`, st)
	ctx := context.Background()
	benchRuns(b, e, ctx, c)
}

// BenchmarkIncrementNoArgs is increment as cgbench's mutate scenario calls it: no
// args, so the guest decodes nothing.
func BenchmarkIncrementNoArgs(b *testing.B) {
	e := newEngine(b, execution.EngineConfig{})
	st := newState()
	c := call(example(b, "counter"), "increment", "", st)
	benchRuns(b, e, context.Background(), c)
}

// BenchmarkInstantiate measures starting a Go guest: instantiation and the Go
// runtime's _initialize, plus one noop call. Another tenant keeps the module
// compiled while the benchmark's pool is evicted after every call.
func BenchmarkInstantiate(b *testing.B) {
	e := newEngine(b, execution.EngineConfig{})
	counter := example(b, "counter")
	ctx := context.Background()
	if _, err := e.Run(ctx, call(counter, "noop", "", nil)); err != nil {
		b.Fatal(err)
	}
	c := call(counter, "noop", "", nil)
	c.Tenant = "bench"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Run(ctx, c); err != nil {
			b.Fatal(err)
		}
		e.Evict(c.Tenant, c.AppID)
	}
}

// benchRuns runs c once to warm the pool, then b.N times, failing on any error.
func benchRuns(b *testing.B, e *execution.Engine, ctx context.Context, c execution.Call) {
	b.Helper()
	if _, err := e.Run(ctx, c); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := e.Run(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
}
