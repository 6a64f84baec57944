package execution_test

import (
	"context"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/circlegate/circlegate/execution"
	"github.com/circlegate/circlegate/internal/redistest"
	"github.com/circlegate/circlegate/store"
)

// BenchmarkFleetMutate runs counter increments through the fleet's backends in one
// process: the Redis store, the Redis queue (Submit and Run on the same node) and the
// service, 256 callers over 1,000 contexts, so a CPU profile shows what a gateway
// and a worker spend per mutation besides the network and WebSocket work.
func BenchmarkFleetMutate(b *testing.B) { benchFleet(b, "counter") }

// BenchmarkFleetMutateWAT is BenchmarkFleetMutate with the counter written in WAT: no
// Go runtime and no JSON in the guest, so nearly all the cost is the fleet's.
func BenchmarkFleetMutateWAT(b *testing.B) { benchFleet(b, "watcounter") }

// startFleetService starts a service on the fleet's backends (the Redis store and
// queue on srv) with its workers running until the test ends; its metrics go to reg
// if not nil.
func startFleetService(tb testing.TB, srv *redistest.Server, reg prometheus.Registerer) (*execution.Service, *store.Redis) {
	tb.Helper()
	st, err := store.OpenRedis(context.Background(), store.RedisConfig{Client: dial(tb, srv.URL()), Prefix: "bench"})
	if err != nil {
		tb.Fatal(err)
	}
	q := openRedisQueue(tb, srv.URL(), execution.RedisQueueConfig{Prefix: "bench"})
	svc, err := execution.NewService(execution.Config{Workers: 2}, st, newEngine(tb, execution.EngineConfig{}), q, nil, nil, reg)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = svc.RunWorkers(ctx) }()
	tb.Cleanup(func() { cancel(); <-done })
	return svc, st
}

// fleetOwner owns tenant "t", where fleetContexts installs its app.
var fleetOwner = execution.Caller{PubKey: "owner", Owner: true}

// fleetContexts installs the example app appName in tenant "t" of svc and returns the
// ids of n new contexts of it.
func fleetContexts(tb testing.TB, svc *execution.Service, appName string, n int) []string {
	tb.Helper()
	app, err := svc.InstallApp(context.Background(), "t", fleetOwner, example(tb, appName).wasm, appName, "")
	if err != nil {
		tb.Fatal(err)
	}
	ids := make([]string, n)
	for i := range ids {
		c, err := svc.CreateContext(context.Background(), "t", fleetOwner, app.ID, execution.CreateOptions{})
		if err != nil {
			tb.Fatal(err)
		}
		ids[i] = c.ID
	}
	return ids
}

func benchFleet(b *testing.B, appName string) {
	srv := redistest.Start(b, redistest.Options{})
	rdb := dial(b, srv.URL())
	svc, _ := startFleetService(b, srv, nil)
	ids := fleetContexts(b, svc, appName, 1000)
	var next atomic.Int64
	var wg sync.WaitGroup
	redis0, self0 := srv.CPU(b), selfCPU()
	b.ResetTimer()
	start := time.Now()
	for g := range 256 {
		wg.Go(func() {
			for i := g; next.Add(1) <= int64(b.N); i += 256 {
				if _, err := svc.Mutate(context.Background(), "t", fleetOwner, ids[i%len(ids)], "increment", nil, ""); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "mutations/s")
	b.ReportMetric((srv.CPU(b)-redis0).Seconds()*1e6/float64(b.N), "redis-µs/op")
	b.ReportMetric((selfCPU()-self0).Seconds()*1e6/float64(b.N), "process-µs/op")
	if testing.Verbose() {
		info, _ := rdb.Info(context.Background(), "commandstats").Result()
		b.Log(info)
	}
}

// selfCPU returns the CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
