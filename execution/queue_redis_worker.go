package execution

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/internal/redisx"
)

// Run implements Queue for the workers of this process: it reads batches from the
// stream and reclaims the jobs of dead workers, runs them on per-context lanes with
// the given number of concurrent batches, and acknowledges them in batches. When ctx
// ends it stops reading, lets running batches finish and acknowledges them, and
// hands the jobs it holds but has not started back to the fleet.
func (q *RedisQueue) Run(ctx context.Context, workers int, h Handler) error {
	workers = max(workers, 1)
	limit := workers * q.cfg.MaxBatch
	local, err := NewMemoryQueue(MemoryQueueConfig{Capacity: limit + q.cfg.MaxBatch, MaxBatch: q.cfg.MaxBatch})
	if err != nil {
		return err
	}
	r := &runner{q: q, local: local, limit: limit, held: make(map[string]bool),
		acks: make(chan ackItem, limit+q.cfg.MaxBatch), space: make(chan struct{}, 1)}
	// Batches run on a context that outlives ctx: a job bounds itself by its deadline
	// (its guest call, its round's read, no re-run after a lost race once it passed),
	// and a running batch finishes so that its commits are acknowledged.
	hctx := context.WithoutCancel(ctx)
	lctx, stopLocal := context.WithCancel(hctx)
	localDone := make(chan struct{})
	go func() {
		defer close(localDone)
		_ = local.Run(lctx, workers, func(_ context.Context, jobs []*Job) []Outcome { return h(hctx, jobs) })
	}()
	ackCtx, stopAcks := context.WithCancel(hctx)
	var loops sync.WaitGroup
	loops.Add(3)
	go func() { defer loops.Done(); r.fetchLoop(ctx) }()
	go func() { defer loops.Done(); r.reclaimLoop(ctx) }()
	go func() { defer loops.Done(); r.heartbeatLoop(ctx) }()
	ackDone := make(chan struct{})
	go func() { defer close(ackDone); r.ackLoop(ackCtx) }()

	<-ctx.Done()
	loops.Wait()
	stopLocal() // waiting jobs come back as errQueueClosed and are released
	<-localDone
	r.drainAcks()
	stopAcks()
	<-ackDone
	r.releaseHeld()
	return nil
}

// runner is one Run: the jobs this process holds, by stream entry id.
type runner struct {
	q     *RedisQueue
	local *MemoryQueue
	limit int

	mu       sync.Mutex
	held     map[string]bool // entry ids read or claimed and not yet acknowledged
	released []string        // entry ids to hand back at the end
	acks     chan ackItem
	space    chan struct{} // signalled when held shrinks
	ackWG    sync.WaitGroup
}

type ackItem struct {
	entry string
	job   *Job
	out   Outcome
}

// room waits until this process holds fewer than limit jobs and returns how many more
// it may take (at most a batch), or 0 when ctx ends.
func (r *runner) room(ctx context.Context, wait bool) int {
	for {
		r.mu.Lock()
		n := r.limit - len(r.held)
		r.mu.Unlock()
		if n > 0 || !wait {
			return max(0, min(n, r.q.cfg.MaxBatch))
		}
		select {
		case <-r.space:
		case <-ctx.Done():
			return 0
		}
	}
}

func (r *runner) fetchLoop(ctx context.Context) {
	q := r.q
	for failures := 0; ctx.Err() == nil; {
		n := r.room(ctx, true)
		if n == 0 {
			continue
		}
		res, err := q.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: q.keys.group, Consumer: q.cfg.Node, Streams: []string{q.keys.stream, ">"},
			Count: int64(n), Block: q.cfg.Block,
		}).Result()
		if errors.Is(err, redis.Nil) || ctx.Err() != nil {
			continue
		}
		q.noteErr("read", err)
		if err != nil {
			if isRedisErr(err, "NOGROUP") { // Redis lost the stream (restarted without persistence)
				_ = q.ensureGroup(ctx)
			}
			redisx.Sleep(ctx, redisx.Backoff(failures, 2*time.Second))
			failures++
			continue
		}
		failures = 0
		for _, s := range res {
			for _, m := range s.Messages {
				r.accept(ctx, m.ID, str(m.Values["id"]), str(m.Values["n"]), str(m.Values["j"]), 1)
			}
		}
	}
}

func str(v any) string { s, _ := v.(string); return s }

// accept takes a delivered job into a local lane, unless this process holds it
// already. A job that does not decode goes to the dead letters at once.
func (r *runner) accept(ctx context.Context, entry, jobID, node, raw string, attempt int) {
	job, err := decodeJob([]byte(raw))
	if err != nil || job.ID == "" {
		r.deadLetter(ctx, entry, jobID, node, raw, attempt, "the job does not decode")
		return
	}
	r.mu.Lock()
	if r.held[entry] {
		r.mu.Unlock()
		return
	}
	r.held[entry] = true
	r.mu.Unlock()
	job.Attempt, job.AtLeastOnce = attempt, true
	p := &pending{job: &job, onDone: func(j *Job, o Outcome) { r.done(entry, j, o) }}
	if err := r.local.push(p); err != nil {
		r.done(entry, &job, Outcome{Err: errQueueClosed})
	}
}

// done receives a job's outcome from its lane. It never blocks: acks has room for
// every job held.
func (r *runner) done(entry string, j *Job, o Outcome) {
	switch {
	case o.Err == errQueueClosed: // never started: hand it back
		r.mu.Lock()
		r.released = append(r.released, entry)
		r.mu.Unlock()
		r.forget(entry)
	case errors.Is(o.Err, redisx.ErrUnavailable):
		// Redis did not answer its commit: the job may or may not have committed.
		// Leave it pending; when Redis is back, a worker takes it again and either
		// finds its commit or runs it.
		r.forget(entry)
	default:
		r.ackWG.Add(1)
		r.acks <- ackItem{entry: entry, job: j, out: o}
	}
}

// forget drops entries from the held set.
func (r *runner) forget(entries ...string) {
	r.mu.Lock()
	for _, e := range entries {
		delete(r.held, e)
	}
	r.mu.Unlock()
	select {
	case r.space <- struct{}{}:
	default:
	}
}

// ackLoop acknowledges finished jobs: whatever is waiting when the previous ack
// returns goes in the next one.
func (r *runner) ackLoop(ctx context.Context) {
	batch := make([]ackItem, 0, 256)
	for {
		select {
		case it := <-r.acks:
			batch = append(batch[:0], it)
		case <-ctx.Done():
			return
		}
	drain:
		for len(batch) < cap(batch) {
			select {
			case it := <-r.acks:
				batch = append(batch, it)
			default:
				break drain
			}
		}
		r.ack(ctx, batch)
	}
}

// ack runs the ack script for a batch, retrying while Redis is away; when ctx ends
// first, the jobs stay pending and are redelivered (and replay their commits).
func (r *runner) ack(ctx context.Context, batch []ackItem) {
	q := r.q
	keys := make([]string, 0, len(batch)+1)
	args := make([]any, 0, 3+3*len(batch))
	keys = append(keys, q.keys.stream)
	args = append(args, q.keys.group, q.cfg.RecordTTL.Milliseconds(), q.keys.replyPrefix)
	now := time.Now().UTC()
	entries := make([]string, len(batch))
	for i, it := range batch {
		rec := newRecord(it.job).finished(it.out, now)
		rec.Attempts = it.job.Attempt
		keys = append(keys, q.keys.recordPrefix+it.job.ID)
		args = append(args, it.entry, it.job.Node, encodeRecord(&rec))
		entries[i] = it.entry
		if it.out.Err != nil && errs.KindOf(it.out.Err) == errs.Internal {
			q.log.Error("job failed", "job", it.job.ID, "err", it.out.Err)
		}
	}
	for failures := 0; ; failures++ {
		err := queueScripts.ack.Run(ctx, q.rdb, keys, args...).Err()
		q.noteErr("ack", err)
		if err == nil || !redisx.Sleep(ctx, redisx.Backoff(failures, 2*time.Second)) {
			break
		}
	}
	r.forget(entries...)
	r.ackWG.Add(-len(batch))
}

// drainAcks waits until every outcome handed to acks was acknowledged (or given up
// on), for up to a few seconds.
func (r *runner) drainAcks() {
	done := make(chan struct{})
	go func() { r.ackWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

// releaseHeld hands the jobs this process holds but never started back to the fleet:
// their idle time is set past the visibility timeout, so the next reclaim anywhere
// takes them at once.
func (r *runner) releaseHeld() {
	r.mu.Lock()
	ids := append(r.released, mapKeys(r.held)...)
	r.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	q := r.q
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	args := []any{"XCLAIM", q.keys.stream, q.keys.group, q.cfg.Node, 0}
	for _, id := range ids {
		args = append(args, id)
	}
	args = append(args, "IDLE", q.cfg.VisibilityTimeout.Milliseconds()+1, "JUSTID")
	if err := q.rdb.Do(ctx, args...).Err(); err != nil {
		q.log.Warn("could not hand back unstarted jobs; they return after the visibility timeout", "jobs", len(ids), "err", err)
	}
}

func mapKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// heartbeatLoop renews the jobs this process holds every third of the visibility
// timeout (XCLAIM JUSTID resets their idle time without counting a delivery), so only
// the jobs of a dead or stalled worker are reclaimed.
func (r *runner) heartbeatLoop(ctx context.Context) {
	q := r.q
	t := time.NewTicker(q.cfg.VisibilityTimeout / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.mu.Lock()
		ids := mapKeys(r.held)
		r.mu.Unlock()
		for from := 0; from < len(ids); from += 1000 {
			err := q.rdb.XClaimJustID(ctx, &redis.XClaimArgs{
				Stream: q.keys.stream, Group: q.keys.group, Consumer: q.cfg.Node, Messages: ids[from:min(from+1000, len(ids))],
			}).Err()
			q.noteErr("renew", err)
		}
	}
}

// reclaimLoop takes over, every half visibility timeout, the jobs idle for longer
// than the visibility timeout, and now and then drops consumers of the group that
// left long ago with nothing pending.
func (r *runner) reclaimLoop(ctx context.Context) {
	q := r.q
	t := time.NewTicker(max(q.cfg.VisibilityTimeout/2, 50*time.Millisecond))
	defer t.Stop()
	lastCleanup := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.reclaim(ctx)
		if time.Since(lastCleanup) > time.Minute {
			lastCleanup = time.Now()
			q.dropGoneConsumers(ctx)
		}
	}
}

func (r *runner) reclaim(ctx context.Context) {
	q := r.q
	for cursor := "0-0"; ; {
		n := r.room(ctx, false)
		if n == 0 {
			return
		}
		v, err := queueScripts.reclaim.Run(ctx, q.rdb, []string{q.keys.stream, q.keys.stats},
			q.keys.group, q.cfg.Node, q.cfg.VisibilityTimeout.Milliseconds(), cursor, n).Slice()
		q.noteErr("reclaim", err)
		if err != nil || len(v) == 0 {
			return
		}
		for i := 1; i+4 < len(v); i += 5 {
			entry, jobID, node, raw := str(v[i]), str(v[i+2]), str(v[i+3]), str(v[i+4])
			deliveries, _ := v[i+1].(int64)
			if int(deliveries) > q.cfg.MaxAttempts {
				r.deadLetter(ctx, entry, jobID, node, raw, int(deliveries),
					"delivered "+strconv.FormatInt(deliveries-1, 10)+" times, and each worker that took it stopped before finishing it")
				continue
			}
			q.metrics.reclaimed.Inc()
			q.log.Info("reclaimed a job whose worker stopped", "job", jobID, "delivery", deliveries)
			r.accept(ctx, entry, jobID, node, raw, int(deliveries))
		}
		if cursor = str(v[0]); cursor == "0-0" || cursor == "" {
			return
		}
	}
}

// deadLetter moves a job to the dead-letter stream, records it as dead and tells the
// gateway that waits for it.
func (r *runner) deadLetter(ctx context.Context, entry, jobID, node, raw string, deliveries int, reason string) {
	q := r.q
	job, _ := decodeJob([]byte(raw))
	job.ID = jobID
	rec := newRecord(&job)
	rec.Status, rec.Attempts, rec.FinishedAt = JobDead, deliveries, time.Now().UTC()
	rec.Err = errs.E(errs.Execution, "job %s was given up: %s", jobID, reason)
	reply := ""
	if node != "" {
		reply = q.keys.replyPrefix + node
	}
	moved, err := queueScripts.dead.Run(ctx, q.rdb, []string{q.keys.stream, q.keys.dead, q.keys.recordPrefix + jobID, q.keys.stats},
		q.keys.group, entry, q.cfg.DeadLetters, jobID, node, raw, deliveries, reason, encodeRecord(&rec),
		q.cfg.RecordTTL.Milliseconds(), reply).Int()
	q.noteErr("dead-letter", err)
	if err == nil && moved == 1 {
		q.metrics.deadLettered.Inc()
		q.log.Warn("job moved to the dead letters", "job", jobID, "deliveries", deliveries, "reason", reason)
	}
}

// dropGoneConsumers deletes the group's consumers that hold nothing and have been
// idle for an hour: each worker process is a consumer named by its node id, new at
// every start.
func (q *RedisQueue) dropGoneConsumers(ctx context.Context) {
	cs, err := q.rdb.XInfoConsumers(ctx, q.keys.stream, q.keys.group).Result()
	if err != nil {
		return
	}
	for _, c := range cs {
		if c.Pending == 0 && c.Idle > time.Hour && c.Name != q.cfg.Node {
			_ = q.rdb.XGroupDelConsumer(ctx, q.keys.stream, q.keys.group, c.Name).Err()
		}
	}
}
