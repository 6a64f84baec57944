package execution_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/execution"
	"github.com/circlegate/circlegate/execution/queuetest"
	"github.com/circlegate/circlegate/internal/redistest"
	"github.com/circlegate/circlegate/internal/redisx"
	"github.com/circlegate/circlegate/internal/testutil"
)

var queuePrefixes atomic.Int64

func dial(t testing.TB, url string) redis.UniversalClient {
	t.Helper()
	rdb, err := redisx.Open(context.Background(), url, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// openRedisQueue opens a queue node on srv with cfg (Client set here), closed in
// t.Cleanup; its metrics go to reg if given.
func openRedisQueue(t testing.TB, url string, cfg execution.RedisQueueConfig, reg ...*prometheus.Registry) *execution.RedisQueue {
	t.Helper()
	cfg.Client = dial(t, url)
	r := prometheus.NewRegistry()
	if len(reg) > 0 {
		r = reg[0]
	}
	q, err := execution.NewRedisQueue(context.Background(), cfg, time.Second, nil, r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	return q
}

func TestRedisQueue(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	queuetest.Run(t, func(t *testing.T, capacity int) execution.Queue {
		return openRedisQueue(t, srv.URL(), execution.RedisQueueConfig{
			Prefix: fmt.Sprintf("q%d", queuePrefixes.Add(1)), Capacity: capacity, Block: 100 * time.Millisecond,
		})
	})
}

// runQueue runs q's workers with h until the test ends.
func runQueue(t *testing.T, q execution.Queue, h execution.Handler) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = q.Run(ctx, 2, h) }()
	t.Cleanup(func() { cancel(); <-done })
}

func mutateJob(id string) *execution.Job {
	return &execution.Job{ID: id, Kind: execution.JobMutate, Tenant: "t", ContextID: "c", Method: "m", Caller: "k",
		Time: time.Now(), Deadline: time.Now().Add(20 * time.Second)}
}

// stealOne reads one job from the stream as a consumer that then vanishes: it never
// acknowledges nor renews it, like a worker killed mid-job.
func stealOne(t *testing.T, rdb redis.UniversalClient, prefix string) string {
	t.Helper()
	var id string
	testutil.CheckFor(t, 10*time.Second, func() error {
		res, err := rdb.XReadGroup(context.Background(), &redis.XReadGroupArgs{
			Group: "workers", Consumer: "dead-worker", Streams: []string{"{" + prefix + ":q}:jobs", ">"}, Count: 1, Block: -1,
		}).Result()
		if err != nil || len(res) == 0 || len(res[0].Messages) == 0 {
			return fmt.Errorf("no job to steal yet: %v", err)
		}
		id = res[0].Messages[0].Values["id"].(string)
		return nil
	})
	return id
}

// TestRedisQueueReclaimsDeadWorkersJob: a job whose worker vanished after taking it
// runs elsewhere once the visibility timeout passes, exactly once, and its outcome
// reaches the gateway that accepted it.
func TestRedisQueueReclaimsDeadWorkersJob(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	cfg := execution.RedisQueueConfig{Prefix: "reclaim", VisibilityTimeout: 300 * time.Millisecond, Block: 50 * time.Millisecond}
	gatewayMetrics, workerMetrics := prometheus.NewRegistry(), prometheus.NewRegistry()
	gateway := openRedisQueue(t, srv.URL(), cfg, gatewayMetrics)
	res := make(chan error, 1)
	go func() {
		out, err := gateway.Submit(context.Background(), mutateJob("job-1"))
		if err == nil && string(out) != `{"ran":"job-1","attempt":2}` {
			err = fmt.Errorf("result %s", out)
		}
		res <- err
	}()
	if got := stealOne(t, dial(t, srv.URL()), "reclaim"); got != "job-1" {
		t.Fatalf("stole %s", got)
	}
	var runs atomic.Int32
	worker := openRedisQueue(t, srv.URL(), cfg, workerMetrics)
	runQueue(t, worker, func(_ context.Context, jobs []*execution.Job) []execution.Outcome {
		return execution.PerContext(jobs, func(j *execution.Job) execution.Outcome {
			runs.Add(1)
			if !j.AtLeastOnce {
				return execution.Outcome{Err: errs.E(errs.Internal, "a fleet job must be marked at-least-once")}
			}
			return execution.Outcome{Result: json.RawMessage(fmt.Sprintf(`{"ran":%q,"attempt":%d}`, j.ID, j.Attempt))}
		})
	})
	select {
	case err := <-res:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the reclaimed job never finished")
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("the job ran %d times, want 1", n)
	}
	r, err := gateway.Status(context.Background(), "job-1")
	if err != nil || r.Status != execution.JobDone || r.Attempts != 2 {
		t.Errorf("record %+v, %v; want done after 2 deliveries", r, err)
	}
	wantMetric(t, workerMetrics, "circlegate_queue_reclaimed_total", 1)
	wantMetric(t, gatewayMetrics, "circlegate_queue_fleet_reclaimed_total", 1)
	wantMetric(t, gatewayMetrics, "circlegate_queue_stream_length", 0)
	wantMetric(t, gatewayMetrics, "circlegate_queue_pending", 0)
}

// TestRedisQueueLostJob: when Redis loses a job it took (a restart without its
// latest writes), the gateway's sweep finds its record gone and fails the call with
// -32006 instead of letting it wait for its deadline; a job still held is not
// touched, and finishes once a worker runs it.
func TestRedisQueueLostJob(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	cfg := execution.RedisQueueConfig{Prefix: "lost", Block: 50 * time.Millisecond}
	reg := prometheus.NewRegistry()
	gateway := openRedisQueue(t, srv.URL(), cfg, reg)
	submit := func(id string) chan error {
		res := make(chan error, 1)
		go func() {
			_, err := gateway.Submit(context.Background(), mutateJob(id))
			res <- err
		}()
		return res
	}
	lost, kept := submit("job-lost"), submit("job-kept")
	rdb := dial(t, srv.URL())
	testutil.CheckFor(t, 10*time.Second, func() error {
		n, err := rdb.XLen(context.Background(), "{lost:q}:jobs").Result()
		if err != nil || n != 2 {
			return fmt.Errorf("%d jobs queued (%v)", n, err)
		}
		return nil
	})
	entries, err := rdb.XRange(context.Background(), "{lost:q}:jobs", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries { // as Redis would come back without them
		if e.Values["id"] == "job-lost" {
			if err := rdb.XDel(context.Background(), "{lost:q}:jobs", e.ID).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := rdb.Del(context.Background(), "{lost:q}:job:job-lost").Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-lost:
		if !errs.Is(err, errs.Overloaded) || !strings.Contains(err.Error(), "job lost") {
			t.Fatalf("the lost job's call failed with %v, want -32006 job lost", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the lost job's call still waits")
	}
	wantMetric(t, reg, "circlegate_queue_jobs_lost_total", 1)
	select {
	case err := <-kept:
		t.Fatalf("the job Redis still holds ended with %v", err)
	case <-time.After(1500 * time.Millisecond): // three sweeps
	}
	runQueue(t, openRedisQueue(t, srv.URL(), cfg), func(_ context.Context, jobs []*execution.Job) []execution.Outcome {
		return execution.PerContext(jobs, func(j *execution.Job) execution.Outcome {
			return execution.Outcome{Result: json.RawMessage(`{}`)}
		})
	})
	select {
	case err := <-kept:
		if err != nil {
			t.Fatalf("the kept job: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the kept job never finished")
	}
	wantMetric(t, reg, "circlegate_queue_jobs_lost_total", 1)
}

// wantMetric fails unless reg's unlabelled sample name has value want.
func wantMetric(t *testing.T, reg *prometheus.Registry, name string, want float64) {
	t.Helper()
	got, ok := metricValue(t, reg, name)
	switch {
	case !ok:
		t.Errorf("no metric %s", name)
	case got != want:
		t.Errorf("%s = %v, want %v", name, got, want)
	}
}

// metricValue returns the sum of the samples of the counter or gauge name in reg,
// and whether reg has it.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var v float64
		for _, m := range mf.GetMetric() {
			v += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
		return v, true
	}
	return 0, false
}

// TestRedisQueueDeadLetters: a job delivered more than max_attempts times goes to the
// dead-letter stream; its gateway gets an execution error and job.get says dead.
func TestRedisQueueDeadLetters(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	cfg := execution.RedisQueueConfig{Prefix: "dead", VisibilityTimeout: 200 * time.Millisecond, MaxAttempts: 1, Block: 50 * time.Millisecond}
	gatewayMetrics := prometheus.NewRegistry()
	gateway := openRedisQueue(t, srv.URL(), cfg, gatewayMetrics)
	res := make(chan error, 1)
	go func() { _, err := gateway.Submit(context.Background(), mutateJob("job-poison")); res <- err }()
	stealOne(t, dial(t, srv.URL()), "dead")
	worker := openRedisQueue(t, srv.URL(), cfg)
	var runs atomic.Int32
	runQueue(t, worker, func(_ context.Context, jobs []*execution.Job) []execution.Outcome {
		runs.Add(int32(len(jobs)))
		return make([]execution.Outcome, len(jobs))
	})
	var err error
	select {
	case err = <-res:
	case <-time.After(20 * time.Second):
		t.Fatal("no outcome for the dead-lettered job")
	}
	if errs.KindOf(err) != errs.Execution {
		t.Fatalf("outcome %v, want an execution error", err)
	}
	if runs.Load() != 0 {
		t.Errorf("the job ran %d times after its last attempt", runs.Load())
	}
	r, err := gateway.Status(context.Background(), "job-poison")
	if err != nil || r.Status != execution.JobDead || r.Attempts != 2 {
		t.Errorf("record %+v, %v; want dead after 2 deliveries", r, err)
	}
	rdb := dial(t, srv.URL())
	if n, err := rdb.XLen(context.Background(), "{dead:q}:dead").Result(); err != nil || n != 1 {
		t.Errorf("dead letters: %d, %v; want 1", n, err)
	}
	if n, err := rdb.XLen(context.Background(), "{dead:q}:jobs").Result(); err != nil || n != 0 {
		t.Errorf("job stream holds %d entries, %v; want 0", n, err)
	}
	wantMetric(t, gatewayMetrics, "circlegate_queue_dead_letters", 1)
	wantMetric(t, gatewayMetrics, "circlegate_queue_fleet_dead_lettered_total", 1)
}
