package execution

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/circlegate/circlegate/internal/redistest"
	"github.com/circlegate/circlegate/internal/redisx"
)

// TestRedisQueueFindsLostReplies: when a gateway's reply subscription misses a reply
// (as it does while reconnecting after an outage), the gateway still gets the outcome,
// from the job's record.
func TestRedisQueueFindsLostReplies(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	open := func() *RedisQueue {
		rdb, err := redisx.Open(context.Background(), srv.URL(), 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = rdb.Close() })
		q, err := NewRedisQueue(context.Background(), RedisQueueConfig{Client: rdb, Prefix: "lost", Block: 50 * time.Millisecond}, time.Second, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = q.Close() })
		return q
	}
	gateway, worker := open(), open()
	if err := gateway.sub.Unsubscribe(context.Background(), gateway.keys.replyPrefix+gateway.Node()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = worker.Run(ctx, 1, func(_ context.Context, jobs []*Job) []Outcome {
			return PerContext(jobs, func(*Job) Outcome { return Outcome{Result: json.RawMessage(`"ok"`)} })
		})
	}()
	defer func() { cancel(); <-done }()
	job := &Job{ID: "j1", Kind: JobMutate, Tenant: "t", ContextID: "c", Method: "m", Time: time.Now(), Deadline: time.Now().Add(10 * time.Second)}
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	out, err := gateway.Submit(sctx, job)
	if err != nil || string(out) != `"ok"` {
		t.Fatalf("Submit = %s, %v", out, err)
	}
	if n := testutil.ToFloat64(gateway.metrics.repliesMissed); n != 1 {
		t.Errorf("replies found by the sweep: %v, want 1", n)
	}
}
