package execution

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

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

// TestAckScriptSkipsJobsAcknowledgedElsewhere: the ack script acknowledges and deletes
// the entries still pending, stores their records with the TTL and replies once per
// accepting node; an entry another worker acknowledged first gets no record and no
// reply from this ack, and a job with no accepting node gets a record only.
func TestAckScriptSkipsJobsAcknowledgedElsewhere(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx := context.Background()
	rdb, err := redisx.Open(ctx, srv.URL(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	const stream, group = "{q}:jobs", "workers"
	if err := rdb.XGroupCreateMkStream(ctx, stream, group, "0").Err(); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 4 {
		id, err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []string{"id", "j"}}).Result()
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: group, Consumer: "w1", Streams: []string{stream, ">"}, Count: 10}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.XAck(ctx, stream, group, ids[1]).Err(); err != nil { // another worker's ack
		t.Fatal(err)
	}
	sub := rdb.Subscribe(ctx, "reply:n1", "reply:n2")
	t.Cleanup(func() { _ = sub.Close() })
	for range 2 {
		if _, err := sub.Receive(ctx); err != nil {
			t.Fatal(err)
		}
	}
	keys := []string{stream, "{q}:r0", "{q}:r1", "{q}:r2", "{q}:r3"}
	args := []any{group, 60000, "reply:", ids[0], "n1", `{"a":0}`, ids[1], "n1", `{"a":1}`, ids[2], "", `{"a":2}`, ids[3], "n2", `{"a":3}`}
	n, err := queueScripts.ack.Run(ctx, rdb, keys, args...).Int()
	if err != nil || n != 3 {
		t.Fatalf("ack = %d, %v; want 3 acknowledged", n, err)
	}
	for i, want := range []string{`{"a":0}`, "", `{"a":2}`, `{"a":3}`} {
		got, _ := rdb.Get(ctx, keys[i+1]).Result()
		ttl, _ := rdb.PTTL(ctx, keys[i+1]).Result()
		if got != want || (want != "" && (ttl <= 0 || ttl > time.Minute)) {
			t.Errorf("record %d = %q (TTL %v), want %q with a TTL of at most 1m", i, got, ttl, want)
		}
	}
	pending, err := rdb.XPending(ctx, stream, group).Result()
	if n, _ := rdb.XLen(ctx, stream).Result(); err != nil || pending.Count != 0 || n != 1 {
		t.Errorf("after the ack: %d pending (%v), stream length %d; want 0 pending and only the entry acknowledged elsewhere left", pending.Count, err, n)
	}
	replies := map[string]string{}
	for range 2 {
		m, err := sub.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		replies[m.Channel] = m.Payload
	}
	if replies["reply:n1"] != `[{"a":0}]` || replies["reply:n2"] != `[{"a":3}]` {
		t.Errorf("replies %v, want n1 [{\"a\":0}] and n2 [{\"a\":3}]", replies)
	}
}
