package execution

import (
	"context"
	"encoding/json"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/circlegate/circlegate/errs"
)

// MemoryQueueConfig configures the in-process queue of the embedded mode.
type MemoryQueueConfig struct {
	// Capacity bounds the jobs waiting or running; past it Submit fails with -32006.
	// Zero means 10000.
	Capacity int `toml:"capacity"`
	// MaxBatch is the most jobs a worker takes at once. Zero means 128.
	MaxBatch int `toml:"max_batch"`
	// RecordTTL is how long job records stay readable (job.get) after acceptance;
	// the launcher sets it from execution.job_record_ttl. Zero means 10 minutes.
	// At most maxMemoryRecords are kept.
	RecordTTL time.Duration `toml:"-"`
}

// maxMemoryRecords bounds the job records of the memory queue (about 0.5 KiB each).
const maxMemoryRecords = 100000

// WithDefaults returns c with every zero field set to its default.
func (c MemoryQueueConfig) WithDefaults() MemoryQueueConfig {
	if c.Capacity == 0 {
		c.Capacity = 10000
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 128
	}
	if c.RecordTTL == 0 {
		c.RecordTTL = 10 * time.Minute
	}
	return c
}

// Validate reports the first invalid field, by its config key.
func (c MemoryQueueConfig) Validate() error {
	switch {
	case c.Capacity < 1:
		return errs.Param("capacity", "must be at least 1")
	case c.MaxBatch < 1:
		return errs.Param("max_batch", "must be at least 1")
	case c.RecordTTL < 0:
		return errs.Param("record_ttl", "must not be negative")
	}
	return nil
}

// MemoryQueue is the embedded mode's queue: per-context FIFO lanes, a ready list of
// lanes with work and no running batch, and workers that take the first job of each
// ready lane (up to MaxBatch jobs), so that one context is never in two batches at
// once and a batch commits in one round.
type MemoryQueue struct {
	cfg     MemoryQueueConfig
	records *recordBook

	mu     sync.Mutex
	cond   *sync.Cond
	lanes  map[laneKey]*lane
	spare  []*lane // emptied lanes, for the next contexts to get work
	ready  []*lane
	queued int
	closed bool
}

type laneKey struct{ tenant, context string }

type lane struct {
	key     laneKey
	jobs    []*pending
	running bool
	inReady bool
}

// maxSpareLanes bounds the emptied lanes a memory queue keeps for reuse.
const maxSpareLanes = 256

// pending is a queued job and what to do with its outcome: hand it to the waiting
// Submit and its record (memory queue: done, book), or acknowledge it in Redis
// (fleet queue: onDone). onDone must not block.
type pending struct {
	job    *Job
	onDone func(*Job, Outcome)
	done   chan Outcome // buffered
	book   *recordBook
}

func (p *pending) finish(o Outcome) {
	if p.onDone != nil {
		p.onDone(p.job, o)
		return
	}
	p.book.finish(p.job, o)
	p.done <- o
}

// NewMemoryQueue returns an in-process queue.
func NewMemoryQueue(cfg MemoryQueueConfig) (*MemoryQueue, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	q := &MemoryQueue{cfg: cfg, lanes: make(map[laneKey]*lane), records: newRecordBook(cfg.RecordTTL, maxMemoryRecords)}
	q.cond = sync.NewCond(&q.mu)
	return q, nil
}

// Len returns the number of jobs waiting or running.
func (q *MemoryQueue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.queued
}

// Submit implements Queue.
func (q *MemoryQueue) Submit(ctx context.Context, job *Job) (json.RawMessage, error) {
	if job.expired(time.Now()) {
		return nil, errJobExpired
	}
	p := &pending{job: job, done: make(chan Outcome, 1), book: q.records}
	q.records.add(job)
	if err := q.push(p); err != nil {
		q.records.finish(job, Outcome{Err: err})
		return nil, err
	}
	late, stop := deadlineTimer(job)
	defer stop()
	select {
	case o := <-p.done:
		return o.Result, o.Err
	case <-ctx.Done():
		// The job stays queued and may still run; its deadline bounds how late.
		return nil, ctx.Err()
	case <-late:
		return nil, context.DeadlineExceeded // it may still commit, just after
	}
}

func (q *MemoryQueue) push(p *pending) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.closed:
		return errQueueClosed
	case q.queued >= q.cfg.Capacity:
		return errQueueFull
	}
	key := laneKey{p.job.Tenant, p.job.ContextID}
	l := q.lanes[key]
	if l == nil {
		if n := len(q.spare); n > 0 {
			l, q.spare = q.spare[n-1], q.spare[:n-1]
			l.key = key
		} else {
			l = &lane{key: key}
		}
		q.lanes[key] = l
	}
	l.jobs = append(l.jobs, p)
	q.queued++
	if !l.running && !l.inReady {
		l.inReady = true
		q.ready = append(q.ready, l)
		q.cond.Signal()
	}
	return nil
}

// take blocks until there is work or the queue closes, then takes the first job of
// each lane on the ready list, up to MaxBatch jobs. A lane's later jobs wait for the
// next batch: a batch's jobs then all commit in one round (one storage sync, or one
// fleet snapshot and commit script), where a lane's second job would cost a round of
// its own, mostly alone, and hold up the replies of the whole batch until it ends.
func (q *MemoryQueue) take() ([]*lane, []*pending, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.ready) == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return nil, nil, false
	}
	var lanes []*lane
	var batch []*pending
	for len(q.ready) > 0 && len(batch) < q.cfg.MaxBatch {
		l := q.ready[0]
		q.ready[0] = nil
		q.ready = q.ready[1:]
		l.inReady = false
		l.running = true
		batch = append(batch, l.jobs[0])
		l.jobs[0] = nil
		if len(l.jobs) == 1 { // the usual case: the lane's array serves its next jobs
			l.jobs = l.jobs[:0]
		} else {
			l.jobs = l.jobs[1:]
		}
		lanes = append(lanes, l)
	}
	return lanes, batch, true
}

// finish releases the lanes of a batch: a lane with more jobs goes back to the ready
// list, an empty one is forgotten.
func (q *MemoryQueue) finish(lanes []*lane, n int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.queued -= n
	for _, l := range lanes {
		l.running = false
		if q.closed {
			for _, p := range l.jobs {
				p.finish(Outcome{Err: errQueueClosed})
			}
			q.queued -= len(l.jobs)
			l.jobs = nil
		}
		if len(l.jobs) > 0 {
			l.inReady = true
			q.ready = append(q.ready, l)
			q.cond.Signal()
		} else {
			delete(q.lanes, l.key)
			if len(q.spare) < maxSpareLanes {
				*l = lane{jobs: l.jobs[:0]}
				q.spare = append(q.spare, l)
			}
		}
	}
}

// Run implements Queue.
func (q *MemoryQueue) Run(ctx context.Context, workers int, h Handler) error {
	stop := context.AfterFunc(ctx, func() { _ = q.Close() })
	defer stop()
	var wg sync.WaitGroup
	turn := newBatchTurn()
	for range max(workers, 1) {
		wg.Go(func() {
			for {
				release := turn.take()
				lanes, batch, ok := q.take()
				if !ok {
					release()
					return
				}
				long := time.AfterFunc(longBatch, release)
				outs := q.runBatch(ctx, h, batch)
				// The batch's room is freed before its callers hear back, so that a
				// caller's next job finds it (a full queue refuses with -32006).
				q.finish(lanes, len(batch))
				for i, p := range batch {
					p.finish(outs[i])
				}
				if hook := repliedHook.Load(); hook != nil {
					(*hook)()
				}
				long.Stop()
				// Let the callers this batch has just woken reply before the turn
				// passes: release readies the next worker ahead of them on this P
				// (runnext), and it would execute its whole batch before they ran.
				// In an execution trace of the mutate benchmark their wait for a
				// processor fell from 1.04 to 0.74 ms (docs/benchmarks.md).
				runtime.Gosched()
				release()
			}
		})
	}
	wg.Wait()
	return nil
}

// repliedHook, if set, runs after a batch's callers have their outcomes; a test sets
// it to hold the worker there (SetRepliedHook).
var repliedHook atomic.Pointer[func()]

// runBatch runs a batch and returns its outcomes, in batch order. A job whose
// deadline passed while it waited fails with errJobExpired without running.
func (q *MemoryQueue) runBatch(ctx context.Context, h Handler, batch []*pending) []Outcome {
	now := time.Now()
	// A redelivered job (fleet) goes to the handler even when late: it may have
	// committed before, and then reports that outcome (Service.handle).
	runs := func(p *pending) bool { return p.job.Attempt > 1 || !p.job.expired(now) }
	jobs := make([]*Job, 0, len(batch))
	for _, p := range batch {
		if runs(p) {
			jobs = append(jobs, p.job)
		}
	}
	if len(jobs) == len(batch) {
		return h(ctx, jobs)
	}
	outs := make([]Outcome, len(batch))
	var ran []Outcome
	if len(jobs) > 0 {
		ran = h(ctx, jobs)
	}
	for i, p := range batch {
		if runs(p) {
			outs[i], ran = ran[0], ran[1:]
		} else {
			outs[i] = Outcome{Err: errJobExpired}
		}
	}
	return outs
}

// Status implements Queue from the records of this process's jobs.
func (q *MemoryQueue) Status(_ context.Context, jobID string) (JobRecord, error) {
	if r, ok := q.records.get(jobID); ok {
		return r, nil
	}
	return JobRecord{}, errNoJob
}

// Close implements Queue: jobs still waiting fail with -32006.
func (q *MemoryQueue) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil
	}
	q.closed = true
	for _, l := range q.lanes {
		if l.running {
			continue
		}
		for _, p := range l.jobs {
			p.finish(Outcome{Err: errQueueClosed})
		}
		q.queued -= len(l.jobs)
		l.jobs = nil
	}
	q.ready = nil
	q.cond.Broadcast()
	return nil
}
