package execution

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/internal/redisx"
)

// RedisQueueConfig configures the fleet's queue. The launcher fills it from the
// [redis] and [redis.queue] sections of the config file.
type RedisQueueConfig struct {
	// Client is the connection to Redis. Required; the caller closes it after the queue.
	Client redis.UniversalClient `toml:"-"`
	// Prefix starts every key and channel, as in store.RedisConfig. Empty means "cg".
	Prefix string `toml:"-"`
	// Node names this process in the fleet: its consumer name and its reply channel.
	// Empty means a random id, new at every start.
	Node string `toml:"-"`
	// Capacity bounds the jobs waiting or running in the whole fleet; past it Submit
	// fails with -32006. Zero means 100000.
	Capacity int `toml:"capacity"`
	// MaxBatch is the most jobs a worker reads from the stream at once (and hands its
	// handler at once). Zero means 128.
	MaxBatch int `toml:"max_batch"`
	// VisibilityTimeout is how long a job may stay with a worker that no longer
	// reports it alive (a worker renews its jobs every third of it) before another
	// worker takes it over. Zero means the execution call timeout plus one second.
	VisibilityTimeout time.Duration `toml:"visibility_timeout"`
	// MaxAttempts is how many times a job is delivered before it goes to the
	// dead-letter stream instead. Zero means 5.
	MaxAttempts int `toml:"max_attempts"`
	// DeadLetters is about how many jobs the dead-letter stream keeps (the oldest go
	// first). Zero means 10000.
	DeadLetters int `toml:"dead_letters"`
	// RecordTTL is how long a job record stays readable (job.get) after the job was
	// accepted; the launcher sets it from execution.job_record_ttl. Zero means 10
	// minutes.
	RecordTTL time.Duration `toml:"-"`
	// Block is how long a worker's read waits for new jobs before it looks again.
	// Zero means 1s.
	Block time.Duration `toml:"-"`
}

// WithDefaults returns c with every zero field set to its default; callTimeout is
// the execution call timeout, which the visibility timeout follows by default.
func (c RedisQueueConfig) WithDefaults(callTimeout time.Duration) RedisQueueConfig {
	if c.Prefix == "" {
		c.Prefix = "cg"
	}
	if c.Node == "" {
		c.Node = newID()[:16]
	}
	if c.Capacity == 0 {
		c.Capacity = 100000
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 128
	}
	if c.VisibilityTimeout == 0 {
		c.VisibilityTimeout = callTimeout + time.Second
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 5
	}
	if c.DeadLetters == 0 {
		c.DeadLetters = 10000
	}
	if c.RecordTTL == 0 {
		c.RecordTTL = 10 * time.Minute
	}
	if c.Block == 0 {
		c.Block = time.Second
	}
	return c
}

// Validate reports the first invalid field, by its config key.
func (c RedisQueueConfig) Validate() error {
	switch {
	case c.Capacity < 1:
		return errs.Param("capacity", "must be at least 1")
	case c.MaxBatch < 1:
		return errs.Param("max_batch", "must be at least 1")
	case c.VisibilityTimeout < 100*time.Millisecond:
		return errs.Param("visibility_timeout", "must be at least 100ms")
	case c.MaxAttempts < 1:
		return errs.Param("max_attempts", "must be at least 1")
	case c.DeadLetters < 1:
		return errs.Param("dead_letters", "must be at least 1")
	case c.RecordTTL < time.Second:
		return errs.Param("record_ttl", "must be at least 1s")
	}
	return redisx.CheckPrefix(c.Prefix)
}

// RedisQueue is the fleet's queue: one Redis stream of jobs read by a consumer group
// of workers in any process, a record per job, and a reply channel per gateway node.
//
//   - Submit runs one script: refuse if the stream holds Capacity entries, XADD the
//     job, store its record (queued). Submits of many callers share a pipeline.
//   - Workers XREADGROUP batches, run them with per-context lanes (as the memory
//     queue), and acknowledge finished jobs in batches with one script: XACK, XDEL
//     (so the stream holds only waiting and running jobs, and nothing pending is ever
//     trimmed), the record (done or failed), and one PUBLISH per accepting node.
//   - A worker renews its jobs (XCLAIM JUSTID) every third of the visibility timeout;
//     jobs idle longer (their worker died) are claimed by another worker (XAUTOCLAIM),
//     which runs them again: the job's commit is idempotent by its id, so a job that
//     committed before returns its recorded result. After MaxAttempts deliveries a
//     job goes to the dead-letter stream.
//   - A gateway waits for the reply on its channel and, for replies lost while its
//     subscription reconnected, reads the records of jobs it has waited on a while.
//
// Keys ({P:q} is the cluster hash tag, so the scripts run on one slot):
//
//	{P:q}:jobs      stream: id (job id), n (accepting node), j (job JSON)
//	{P:q}:dead      stream: dead letters (the same fields, deliveries, reason)
//	{P:q}:job:<id>  string with a TTL: the job's record (JSON)
//	{P:q}:stats     hash: the fleet's totals of reclaimed and dead-lettered jobs
//	P:reply:<node>  pub/sub channel: JSON arrays of records
type RedisQueue struct {
	cfg     RedisQueueConfig
	rdb     redis.UniversalClient
	log     *slog.Logger
	metrics *queueMetrics
	keys    queueKeys

	submits  chan *submitReq
	waiters  sync.Map // job id -> *waiter
	sub      *redis.PubSub
	stop     context.CancelFunc
	bg       sync.WaitGroup
	closed   atomic.Bool
	closeMu  sync.RWMutex // held shared while sending on submits
	loggedMu sync.Mutex
	down     map[string]bool // operations whose failure is logged until they work again
}

type queueKeys struct {
	stream, dead, stats, recordPrefix, replyPrefix, group string
}

type submitReq struct {
	jobRef   *Job
	job, rec []byte // encoded
	done     chan error
}

type waiter struct {
	ch     chan JobRecord // buffered 1
	since  time.Time
	queued atomic.Int64 // when Redis took the job (Unix ns); 0 before
}

var _ Queue = (*RedisQueue)(nil)

// NewRedisQueue connects the queue: it makes sure the stream and the consumer group
// exist, loads the scripts and subscribes to this node's reply channel. reg may be nil.
func NewRedisQueue(ctx context.Context, cfg RedisQueueConfig, callTimeout time.Duration, log *slog.Logger, reg prometheus.Registerer) (*RedisQueue, error) {
	cfg = cfg.WithDefaults(callTimeout)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Client == nil {
		return nil, errs.Param("client", "is nil")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tag := "{" + cfg.Prefix + ":q}:"
	q := &RedisQueue{
		cfg: cfg, rdb: cfg.Client, log: log.With("component", "queue", "node", cfg.Node),
		keys: queueKeys{stream: tag + "jobs", dead: tag + "dead", stats: tag + "stats", recordPrefix: tag + "job:",
			replyPrefix: cfg.Prefix + ":reply:", group: "workers"},
		submits: make(chan *submitReq, 4096),
		down:    make(map[string]bool),
	}
	if err := q.ensureGroup(ctx); err != nil {
		return nil, err
	}
	for _, s := range queueScripts.all {
		if err := s.Load(ctx, q.rdb).Err(); err != nil {
			return nil, redisx.Err(err, "load queue scripts")
		}
	}
	var err error
	if q.metrics, err = newQueueMetrics(reg, q); err != nil {
		return nil, err
	}
	q.sub = q.rdb.Subscribe(ctx, q.keys.replyPrefix+cfg.Node)
	if _, err := q.sub.Receive(ctx); err != nil { // the confirmation: replies reach us from now on
		_ = q.sub.Close()
		return nil, redisx.Err(err, "subscribe to replies")
	}
	bgctx, stop := context.WithCancel(context.Background())
	q.stop = stop
	q.bg.Add(3)
	go q.submitLoop(bgctx)
	go q.replyLoop()
	go q.sweepLoop(bgctx)
	return q, nil
}

// Node returns this process's node id.
func (q *RedisQueue) Node() string { return q.cfg.Node }

// Config returns the configuration with defaults applied.
func (q *RedisQueue) Config() RedisQueueConfig { return q.cfg }

// ensureGroup creates the stream and its consumer group, from the start of the
// stream, unless they exist.
func (q *RedisQueue) ensureGroup(ctx context.Context) error {
	err := q.rdb.XGroupCreateMkStream(ctx, q.keys.stream, q.keys.group, "0").Err()
	if err != nil && !isRedisErr(err, "BUSYGROUP") {
		return redisx.Err(err, "create consumer group")
	}
	return nil
}

func isRedisErr(err error, prefix string) bool {
	var re redis.Error
	return errors.As(err, &re) && len(re.Error()) >= len(prefix) && re.Error()[:len(prefix)] == prefix
}

//go:embed lua/*.lua
var queueLua embed.FS

var queueScripts = func() (s struct {
	submit, ack, reclaim, dead *redis.Script
	all                        []*redis.Script
}) {
	mk := func(name string) *redis.Script {
		b, err := queueLua.ReadFile("lua/" + name + ".lua")
		if err != nil {
			panic(err)
		}
		sc := redis.NewScript(string(b))
		s.all = append(s.all, sc)
		return sc
	}
	s.submit, s.ack, s.reclaim, s.dead = mk("submit"), mk("ack"), mk("reclaim"), mk("dead")
	return s
}()

// Submit implements Queue: the job is queued in Redis (with the submits of other
// callers in one pipeline) and Submit waits for its record to come back on this
// node's reply channel.
func (q *RedisQueue) Submit(ctx context.Context, job *Job) (json.RawMessage, error) {
	if job.expired(time.Now()) {
		return nil, errJobExpired
	}
	job.Node = q.cfg.Node
	jb, err := encodeJob(job)
	if err != nil {
		return nil, errs.Wrap(errs.Internal, err, "encode job")
	}
	rec := newRecord(job)
	w := &waiter{ch: make(chan JobRecord, 1), since: time.Now()}
	q.waiters.Store(job.ID, w)
	defer q.waiters.Delete(job.ID)
	req := &submitReq{jobRef: job, job: jb, rec: encodeRecord(&rec), done: make(chan error, 1)}
	if err := q.enqueue(req); err != nil {
		return nil, err
	}
	late, stop := deadlineTimer(job)
	defer stop()
	select {
	case err := <-req.done:
		if err != nil {
			return nil, err
		}
		w.queued.Store(time.Now().UnixNano())
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-late:
		return nil, context.DeadlineExceeded
	}
	select {
	case r := <-w.ch:
		return r.Result, r.Err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-late:
		return nil, context.DeadlineExceeded // it may still commit, just after
	}
}

func (q *RedisQueue) enqueue(req *submitReq) error {
	q.closeMu.RLock()
	defer q.closeMu.RUnlock()
	if q.closed.Load() {
		return errQueueClosed
	}
	select {
	case q.submits <- req:
		return nil
	default:
		return errQueueFull // this node has thousands of submits in flight already
	}
}

// submitLoop sends the queued submits in pipelines: whatever waits when the previous
// pipeline returns goes in the next one.
func (q *RedisQueue) submitLoop(ctx context.Context) {
	defer q.bg.Done()
	batch := make([]*submitReq, 0, 256)
	for {
		select {
		case req, ok := <-q.submits:
			if !ok {
				return
			}
			batch = append(batch[:0], req)
		case <-ctx.Done():
			return
		}
	drain:
		for len(batch) < cap(batch) {
			select {
			case req, ok := <-q.submits:
				if !ok {
					break drain
				}
				batch = append(batch, req)
			default:
				break drain
			}
		}
		q.submitBatch(ctx, batch)
	}
}

// submitBatch queues a batch of jobs with one script call.
func (q *RedisQueue) submitBatch(ctx context.Context, batch []*submitReq) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	keys := make([]string, 0, 1+len(batch))
	args := make([]any, 0, 2+4*len(batch))
	keys = append(keys, q.keys.stream)
	args = append(args, q.cfg.Capacity, q.cfg.RecordTTL.Milliseconds())
	for _, r := range batch {
		keys = append(keys, q.keys.recordPrefix+r.jobRef.ID)
		args = append(args, r.jobRef.ID, q.cfg.Node, r.job, r.rec)
	}
	res, err := queueScripts.submit.Run(ctx, q.rdb, keys, args...).Int64Slice()
	q.noteErr("submit", err)
	for i, r := range batch {
		switch {
		case err != nil:
			r.done <- redisx.Err(err, "submit job")
		case i >= len(res) || res[i] == 0:
			r.done <- errQueueFull
		default:
			r.done <- nil
		}
	}
}

// replyLoop hands the records on this node's reply channel to their waiters. The
// subscription reconnects by itself after a Redis outage; what it missed meanwhile,
// sweepLoop finds.
func (q *RedisQueue) replyLoop() {
	defer q.bg.Done()
	for msg := range q.sub.Channel(redis.WithChannelSize(4096)) {
		recs, err := decodeRecords([]byte(msg.Payload))
		if err != nil {
			q.log.Error("undecodable reply", "records", len(recs), "err", err)
		}
		for _, r := range recs {
			q.deliver(r, nil)
		}
	}
}

// deliver hands a finished record to its waiter, if any; counted, if set, is called
// first when there is one.
func (q *RedisQueue) deliver(r JobRecord, counted func()) {
	v, ok := q.waiters.LoadAndDelete(r.ID)
	if !ok {
		return
	}
	if counted != nil {
		counted()
	}
	v.(*waiter).ch <- r
}

// sweepInterval is how often a gateway reads the records of jobs it has waited on
// for longer than that, in case their reply was lost.
const sweepInterval = 500 * time.Millisecond

func (q *RedisQueue) sweepLoop(ctx context.Context) {
	defer q.bg.Done()
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var ws []sweptJob
		old := time.Now().Add(-sweepInterval)
		q.waiters.Range(func(k, v any) bool {
			if w := v.(*waiter); w.since.Before(old) {
				ws = append(ws, sweptJob{id: k.(string), queued: w.queued.Load()})
			}
			return len(ws) < 10000
		})
		q.sweep(ctx, ws)
	}
}

// sweptJob is a job a sweep reads the record of, and when Redis took it (0: not
// known to have).
type sweptJob struct {
	id     string
	queued int64
}

// sweep reads the records of jobs waited on for a while. A finished one is handed
// to its waiter. A missing one, of a job Redis took less than half the record TTL
// ago (so the record has not expired), was lost by Redis (a restart without its
// latest writes, a failover, or eviction, which docs/operations.md rules out with
// noeviction): its waiter gets errJobLost now instead of waiting for the job's
// deadline.
func (q *RedisQueue) sweep(ctx context.Context, ws []sweptJob) {
	for from := 0; from < len(ws); from += 500 {
		page := ws[from:min(from+500, len(ws))]
		keys := make([]string, len(page))
		for i, w := range page {
			keys[i] = q.keys.recordPrefix + w.id
		}
		vals, err := q.rdb.MGet(ctx, keys...).Result()
		q.noteErr("sweep", err)
		if err != nil {
			return
		}
		lostAfter := time.Now().Add(-q.cfg.RecordTTL / 2).UnixNano() // well before the record's own expiry
		for i, v := range vals {
			s, _ := v.(string)
			if s == "" {
				if w := page[i]; w.queued != 0 && w.queued > lostAfter {
					q.deliver(JobRecord{ID: w.id, Status: JobFailed, Err: errJobLost}, q.metrics.jobsLost.Inc)
				}
				continue
			}
			if r, err := decodeRecord([]byte(s)); err == nil && r.Status != JobQueued {
				q.deliver(r, q.metrics.repliesMissed.Inc)
			}
		}
	}
}

// errJobLost is what a caller gets when Redis no longer holds a job it took. After
// a restart or a failover, a job whose record is gone has not committed on the same
// Redis (what survives is a prefix of its writes), but on Redis Cluster its context
// may live on another master, and an evicted record's job may still run, so the
// message does not promise that it did not run.
var errJobLost = errs.E(errs.Overloaded,
	"job lost: Redis no longer holds it (restarted without its latest writes?); it may not have run: read the context, or call again with the same idempotencyKey")

// Status implements Queue: the job's record in Redis.
func (q *RedisQueue) Status(ctx context.Context, jobID string) (JobRecord, error) {
	s, err := q.rdb.Get(ctx, q.keys.recordPrefix+jobID).Result()
	if errors.Is(err, redis.Nil) {
		return JobRecord{}, errNoJob
	}
	if err != nil {
		return JobRecord{}, redisx.Err(err, "read job record")
	}
	r, err := decodeRecord([]byte(s))
	if err != nil {
		return JobRecord{}, errs.Wrap(errs.Internal, err, "decode job record %s", jobID)
	}
	return r, nil
}

// Close stops accepting jobs and stops waiting: callers still waiting get -32006
// (their jobs may still run on a worker; job.get tells). It does not stop Run,
// which ends with its context.
func (q *RedisQueue) Close() error {
	q.closeMu.Lock()
	already := q.closed.Swap(true)
	q.closeMu.Unlock()
	if already {
		return nil
	}
	q.stop()
	err := q.sub.Close()
	q.bg.Wait()
	q.waiters.Range(func(k, v any) bool {
		q.waiters.Delete(k)
		v.(*waiter).ch <- JobRecord{Err: errs.E(errs.Overloaded, "this gateway is shutting down; job %s may still commit: ask job.get", k)}
		return true
	})
	for {
		select {
		case req := <-q.submits:
			req.done <- errQueueClosed
		default:
			return redisx.Err(err, "close reply subscription")
		}
	}
}

// noteErr logs the first failure of an operation and its recovery, not every retry.
func (q *RedisQueue) noteErr(op string, err error) {
	if errors.Is(err, redis.Nil) {
		err = nil
	}
	q.loggedMu.Lock()
	defer q.loggedMu.Unlock()
	switch {
	case err != nil && !q.down[op]:
		q.down[op] = true
		q.log.Warn("redis operation failing; retrying with backoff", "op", op, "err", err)
	case err == nil && q.down[op]:
		delete(q.down, op)
		q.log.Info("redis operation works again", "op", op)
	}
	if err != nil {
		q.metrics.errors.WithLabelValues(op).Inc()
	}
}
