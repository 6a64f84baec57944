// Package embedtest starts the embedded execution stack (Pebble on disk, an engine
// with the shared compile cache, the memory queue and its workers) for the
// benchmarks of the packages built on it.
package embedtest

import (
	"context"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/circlegate/circlegate/events"
	"github.com/circlegate/circlegate/execution"
	"github.com/circlegate/circlegate/internal/testapps"
	"github.com/circlegate/circlegate/store"
)

// Service returns a service on a fresh Pebble store in tb's temporary directory, with
// its workers running until tb's cleanup, the store, and the registry its metrics
// are in.
func Service(tb testing.TB) (*execution.Service, *store.Pebble, *prometheus.Registry) {
	tb.Helper()
	st, err := store.OpenPebble(store.PebbleConfig{Dir: tb.TempDir()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	eng, err := execution.NewEngine(context.Background(), execution.EngineConfig{CacheDir: testapps.CompileCacheDir(tb)}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = eng.Close(context.Background()) })
	q, err := execution.NewMemoryQueue(execution.MemoryQueueConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	svc, err := execution.NewService(execution.Config{}, st, eng, q, events.NewMemory(), nil, reg)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var workers sync.WaitGroup
	workers.Go(func() { _ = svc.RunWorkers(ctx) })
	tb.Cleanup(func() { cancel(); workers.Wait() }) // first: cleanups run last-in first-out
	return svc, st, reg
}
