package execution_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/circlegate/circlegate/execution"
	"github.com/circlegate/circlegate/internal/embedtest"
	"github.com/circlegate/circlegate/internal/testapps"
)

// BenchmarkMutate is the durable mutation path without the network: 64 callers run
// closed loops of Service.Mutate (counter increment) over 1,000 contexts, through
// the memory queue and the workers, committing to Pebble on disk. Besides ns/op
// (wall time per mutation, all callers together) it reports the process's CPU time
// per mutation, which is what bounds throughput on a busy 2-core machine.
func BenchmarkMutate(b *testing.B) {
	benchMutate(b, 1000, 64)
}

func benchMutate(b *testing.B, contexts, callers int) {
	ctx := context.Background()
	svc, _, reg := embedtest.Service(b)
	owner := execution.Caller{PubKey: callerKey, Owner: true}
	app, err := svc.InstallApp(ctx, "tenant-a", owner, testapps.Build(b, "counter"), "counter", "")
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]string, contexts)
	for i := range ids {
		c, err := svc.CreateContext(ctx, "tenant-a", owner, app.ID, execution.CreateOptions{})
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = c.ID
	}
	var next atomic.Int64
	run := func(n int64) {
		var wg sync.WaitGroup
		for g := range callers {
			wg.Go(func() {
				for i := int64(g); ; i += int64(callers) {
					if next.Add(1) > n {
						return
					}
					if _, err := svc.Mutate(ctx, "tenant-a", owner, ids[i%int64(contexts)], "increment", nil, ""); err != nil {
						panic(fmt.Sprintf("mutate: %v", err))
					}
				}
			})
		}
		wg.Wait()
	}
	run(int64(2 * callers)) // warm the pool
	next.Store(0)
	cpu := cpuTime()
	b.ReportAllocs()
	b.ResetTimer()
	run(int64(b.N))
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
	reportRounds(b, reg)
}

// reportRounds reports the average jobs, execution time and commit time of a round.
func reportRounds(b *testing.B, reg *prometheus.Registry) {
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	means := map[string]float64{}
	for _, mf := range mfs {
		if len(mf.GetMetric()) == 1 {
			if h := mf.GetMetric()[0].GetHistogram(); h.GetSampleCount() > 0 {
				means[mf.GetName()] = h.GetSampleSum() / float64(h.GetSampleCount())
			}
		}
	}
	avg := func(name string) float64 { return means["circlegate_execution_"+name] }
	b.ReportMetric(avg("round_jobs"), "jobs/round")
	b.ReportMetric(avg("round_execute_seconds")*1e3, "exec-ms/round")
	b.ReportMetric(avg("round_commit_seconds")*1e3, "commit-ms/round")
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
