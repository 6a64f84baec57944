package execution

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/store"
)

// maxStaleRetries is how many commit races a job may lose before it fails; the job's
// deadline bounds its re-runs too. Between tries it waits a random while that grows with
// each loss (staleBackoff), so that two workers of a fleet contending for one context
// take turns instead of one of them losing every race.
const maxStaleRetries = 64

// staleBackoff returns the wait before retry n (0-based) of a job that lost a commit
// race: random in [0, min(1ms<<n, 20ms)).
func staleBackoff(n int) time.Duration {
	ceil := min(time.Millisecond<<min(n, 5), 20*time.Millisecond)
	return time.Duration(rand.Int64N(int64(ceil)))
}

// handle runs a batch from the queue in rounds: round k holds the k-th job of every
// context in the batch (the queues give a batch one job per context, so it is one
// round). A round's jobs execute concurrently, then commit together in
// one CommitMany (one storage sync for the round), then the next round runs on the
// state they left. Jobs whose commits lost a race re-execute together (runRound).
func (s *Service) handle(ctx context.Context, jobs []*Job) []Outcome {
	out := make([]Outcome, len(jobs))
	run := make([]int, 0, len(jobs))
	now := s.now()
	for i, j := range jobs {
		if j.Attempt > 1 && j.expired(now) {
			out[i] = s.lateRedelivery(ctx, j)
			continue
		}
		run = append(run, i)
	}
	for _, round := range rounds(jobs, run) {
		s.runRound(ctx, jobs, round, out)
	}
	return out
}

// lateRedelivery is the outcome of a job a fleet queue delivers again after its
// deadline: its recorded result if its first delivery committed it (the worker died
// before acknowledging), else the expiry error. It never runs the job.
func (s *Service) lateRedelivery(ctx context.Context, job *Job) Outcome {
	if o, ok := s.recorded(ctx, job); ok {
		return o
	}
	return Outcome{Err: errJobExpired}
}

// rounds groups the batch indexes idx so that each round has at most one job per
// context and a context's jobs keep their order across rounds.
func rounds(jobs []*Job, idx []int) [][]int {
	var out [][]int
	seen := make(map[string]int, len(idx))
	for _, i := range idx {
		j := jobs[i]
		k := j.Tenant + "/" + j.ContextID
		r := seen[k]
		seen[k] = r + 1
		if r == len(out) {
			out = append(out, nil)
		}
		out[r] = append(out[r], i)
	}
	return out
}

// prepared is an executed job waiting for its commit.
type prepared struct {
	idx    int
	commit *store.Commit // nil when the job needs no commit (failed, replayed, detached)
	events []store.Event
	result json.RawMessage
	err    error
}

// runRound runs a round, then runs again, as a round of their own, the jobs whose
// commits lost a race (their contexts changed after the round read them; on a fleet,
// another worker committed to them), until none is left. The re-runs read their
// contexts again in one call and commit together, as the first run did: jobs that
// lost a race hold up the rest of their batch (its outcomes are acknowledged
// together) for one more round each time, not for a round trip of their own per job.
// A job whose commit found its idempotency key recorded (another delivery of it
// committed) does not run again: it answers the recorded result. A job that loses
// maxStaleRetries times, or whose deadline would pass during the pause before its
// next run, fails with an overloaded error, unless its result is recorded by then.
func (s *Service) runRound(ctx context.Context, jobs []*Job, round []int, out []Outcome) {
	for losses := 1; ; losses++ {
		stale, taken := s.tryRound(ctx, jobs, round, out)
		for _, i := range taken {
			if o, ok := s.recorded(ctx, jobs[i]); ok {
				out[i] = o
			} else { // the record expired in between: run it again
				stale = append(stale, i)
			}
		}
		if len(stale) == 0 {
			return
		}
		wait := staleBackoff(losses - 1)
		round = stale[:0]
		for _, i := range stale {
			if losses >= maxStaleRetries || jobs[i].expired(s.now().Add(wait)) {
				out[i] = s.giveUp(ctx, jobs[i])
				continue
			}
			round = append(round, i)
		}
		if len(round) == 0 {
			return
		}
		if !sleepCtx(ctx, wait) {
			for _, i := range round {
				out[i] = s.giveUp(ctx, jobs[i])
			}
			return
		}
		s.metrics.staleRetries.Add(float64(len(round)))
	}
}

// recorded returns the outcome recorded under the job's idempotency key, if a commit
// recorded one.
func (s *Service) recorded(ctx context.Context, job *Job) (Outcome, bool) {
	key, _ := s.idemKey(job)
	if key == "" || job.ContextID == "" {
		return Outcome{}, false
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	res, done, err := s.replayKey(rctx, job, key)
	return Outcome{Result: res, Err: err}, done
}

// giveUp is the outcome of a job that stops re-running after lost races: its
// recorded result if another delivery of it committed meanwhile, else an overloaded
// error.
func (s *Service) giveUp(ctx context.Context, job *Job) Outcome {
	if o, ok := s.recorded(ctx, job); ok {
		return o
	}
	return Outcome{Err: errs.Wrap(errs.Overloaded, store.ErrStale, "context %s is too contended, try again", job.ContextID)}
}

// tryRound executes a round's jobs and commits them together. It sets the outcome of
// every job but those whose commits lost a race, which it returns: stale, those that
// lost to another job's commit, and taken, those whose idempotency key a commit
// recorded already (store.ErrTaken: another delivery of the job committed it).
func (s *Service) tryRound(ctx context.Context, jobs []*Job, round []int, out []Outcome) (stale, taken []int) {
	start := time.Now()
	preps := make([]prepared, len(round))
	s.executeRound(ctx, jobs, round, preps)
	commits := make([]store.Commit, 0, len(preps))
	pending := make([]*prepared, 0, len(preps))
	for n := range preps {
		p := &preps[n]
		if p.commit == nil {
			out[p.idx] = Outcome{Result: p.result, Err: p.err}
			continue
		}
		commits = append(commits, *p.commit)
		pending = append(pending, p)
	}
	s.metrics.executeTime.Observe(time.Since(start).Seconds())
	if len(commits) == 0 {
		return nil, nil
	}
	start = time.Now()
	errs := s.store.CommitMany(ctx, commits)
	s.metrics.commitTime.Observe(time.Since(start).Seconds())
	s.metrics.roundJobs.Observe(float64(len(commits)))
	for n, p := range pending {
		switch {
		case errs[n] == nil:
			s.publishStored(ctx, jobs[p.idx].Tenant, p.events)
			out[p.idx] = Outcome{Result: p.result}
		case errors.Is(errs[n], store.ErrTaken):
			taken = append(taken, p.idx)
		case errors.Is(errs[n], store.ErrStale):
			stale = append(stale, p.idx)
		default:
			out[p.idx] = Outcome{Err: errs[n]}
		}
	}
	return stale, taken
}

// executeRound prepares the jobs of a round into preps on at most GOMAXPROCS
// goroutines: this one and pooled helpers, each taking the next job not yet taken.
// The jobs are CPU-bound (wasm, cached state), so more goroutines than CPUs would
// only add hand-offs and wake-ups; a job that blocks holds up only the jobs its
// goroutine has not taken yet, and the round commits after its slowest job anyway.
func (s *Service) executeRound(ctx context.Context, jobs []*Job, round []int, preps []prepared) {
	snaps := s.snapshots(ctx, jobs, round)
	var next atomic.Int64
	work := func() {
		for {
			n := int(next.Add(1)) - 1
			if n >= len(round) {
				return
			}
			i := round[n]
			var snap *store.Snapshot
			if snaps != nil && snaps[n].Err == nil {
				snap = &snaps[n]
			}
			p := s.prepareSafe(ctx, jobs[i], snap)
			p.idx = i
			preps[n] = p
		}
	}
	var wg sync.WaitGroup
	for range min(len(round), runtime.GOMAXPROCS(0)) - 1 {
		s.pool.Go(&wg, work)
	}
	work()
	wg.Wait()
}

// snapshotStateBytes is the largest state that a round reads whole, with its
// context's head, from a store that reads over the network (SnapshotReader);
// a larger state is read key by key as the job asks for keys.
const snapshotStateBytes = 16 << 10

// snapshots reads the heads, and the small states, of a round's contexts in one
// call when the store is a SnapshotReader (the fleet's Redis): otherwise each job
// would wait for a round trip for its head and another for each key it reads.
// It returns nil for other stores; a snapshot that failed is read again by its job.
func (s *Service) snapshots(ctx context.Context, jobs []*Job, round []int) []store.Snapshot {
	sr, ok := s.store.(store.SnapshotReader)
	if !ok {
		return nil
	}
	refs := make([]store.ContextRef, len(round))
	var deadline time.Time // the round's last: a job whose own deadline passed fails by itself
	for n, i := range round {
		refs[n] = store.ContextRef{Tenant: jobs[i].Tenant, ID: jobs[i].ContextID}
		if jobs[i].Deadline.After(deadline) {
			deadline = jobs[i].Deadline
		}
	}
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	snaps := sr.Snapshots(ctx, refs, snapshotStateBytes)
	for n := range snaps {
		s.metrics.observeSnapshot(&snaps[n])
	}
	return snaps
}

// prepareSafe is prepare with panics turned into internal errors.
func (s *Service) prepareSafe(ctx context.Context, job *Job, snap *store.Snapshot) (p prepared) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic in job", "job", job.ID, "panic", r)
			p = prepared{err: errs.E(errs.Internal, "panic")}
		}
	}()
	return s.prepare(ctx, job, snap)
}

// sleepCtx waits d, and reports false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// prepare runs a job once on the context's current state and returns the commit it
// needs (nil for a failure, a replayed idempotent result or a detached play). It looks
// for the job's recorded result first when the job may have committed already: it
// has a caller's idempotency key, or it is a redelivery.
// snap, if not nil, is the context as the round read it (head, perhaps whole state).
func (s *Service) prepare(ctx context.Context, job *Job, snap *store.Snapshot) prepared {
	if job.ContextID == "" {
		res, err := s.playDetached(ctx, job)
		return prepared{result: res, err: err}
	}
	var meta store.Context
	if snap != nil {
		meta = snap.Context
	} else {
		var err error
		if meta, err = s.store.GetContext(ctx, job.Tenant, job.ContextID); err != nil {
			return prepared{err: err}
		}
	}
	caller := Caller{PubKey: job.Caller, Owner: job.CallerOwner}
	if roleIn(caller, &meta) < roleMember {
		return prepared{err: errs.E(errs.Forbidden, "%s may not mutate context %s", roleName(roleIn(caller, &meta)), job.ContextID)}
	}
	key, ttl := s.idemKey(job)
	if key != "" && (job.IdempotencyKey != "" || job.Attempt > 1) {
		if res, done, err := s.replayKey(ctx, job, key); done {
			return prepared{result: res, err: err}
		}
	}
	call := s.jobCall(job, meta.AppID)
	call.State = s.stateReader(ctx, job.ContextID, snap)
	res, err := s.engine.Run(ctx, call)
	if err != nil {
		return prepared{err: err}
	}
	output, err := outputJSON(res.Output)
	if err != nil {
		return prepared{err: err}
	}
	tx := store.Tx{
		Seq: meta.Seq + 1, ID: job.ID, PrevHash: meta.RootHash, Method: call.Method,
		ArgsDigest: digest(job.Args, job.Script), Caller: job.Caller, Time: job.Time, Writes: res.Writes,
	}
	tx.Events = append([]store.Event{{Kind: EventStateMutation}}, appEvents(res.Events)...)
	finishTx(&tx, job.ContextID, meta.EventSeq)
	result := encodeMutateResult(&MutateResult{
		JobID: job.ID, TxID: tx.ID, Seq: tx.Seq, RootHash: tx.Hash, Output: output, Events: resultEvents(tx.Events[1:]),
	})
	c := &store.Commit{Tenant: job.Tenant, ContextID: job.ContextID, ExpectedSeq: meta.Seq, Tx: tx}
	if key != "" {
		c.IdempotencyKey, c.IdempotencyTTL = key, ttl
		c.Idempotency = store.Idempotency{Digest: jobDigest(job), Result: result}
	}
	return prepared{commit: c, events: tx.Events, result: result}
}

// jobKeyPrefix starts the idempotency key under which a fleet job's commit is
// recorded; callers' keys may not start with it (Mutate refuses a NUL byte).
const jobKeyPrefix = "\x00job:"

// idemKey returns the key a job's commit is recorded under, and for how long: the
// caller's idempotency key (kept), or, for a job a fleet queue may deliver twice,
// its id, kept long enough that every delivery of the job that can still commit
// finds it: every delivery before the deadline, or up to a call timeout after it.
func (s *Service) idemKey(job *Job) (string, time.Duration) {
	switch {
	case job.IdempotencyKey != "":
		return job.IdempotencyKey, 0
	case job.AtLeastOnce:
		return jobKeyPrefix + job.ID, 2*s.cfg.JobTimeout + time.Minute
	}
	return "", 0
}

// jobCall is the engine call of a job: its app method, or its play script.
func (s *Service) jobCall(job *Job, appID string) Call {
	call := Call{
		Tenant: job.Tenant, AppID: appID, Wasm: s.blob(job.Tenant, appID), Method: job.Method,
		Args: job.Args, Caller: job.Caller, ContextID: job.ContextID, Time: job.Time, Deadline: job.Deadline,
	}
	if job.Kind == JobPlay {
		call.AppID = "play:" + digest(job.Script)
		call.Wasm = func() ([]byte, error) { return job.Script, nil }
	}
	return call
}

// playDetached runs a play script without a context: empty state, writes discarded.
func (s *Service) playDetached(ctx context.Context, job *Job) (json.RawMessage, error) {
	call := s.jobCall(job, "")
	call.State = emptyState{}
	defer s.engine.Evict(job.Tenant, call.AppID)
	res, err := s.engine.Run(ctx, call)
	if err != nil {
		return nil, err
	}
	output, err := outputJSON(res.Output)
	if err != nil {
		return nil, err
	}
	return json.Marshal(MutateResult{JobID: job.ID, Output: output, Events: []AppEvent{}})
}

// appEvents turns what an app emitted into store events (seqs assigned by finishTx).
func appEvents(em []Emitted) []store.Event {
	out := make([]store.Event, len(em))
	for i, e := range em {
		out[i] = store.Event{Kind: e.Kind, Data: e.Data}
	}
	return out
}

// finishTx numbers a tx's events after prevEventSeq, stamps them, computes the tx
// hash and puts it on the StateMutation event.
func finishTx(tx *store.Tx, contextID string, prevEventSeq uint64) {
	for i := range tx.Events {
		e := &tx.Events[i]
		e.ContextID, e.Seq, e.TxID, e.TxSeq, e.Time = contextID, prevEventSeq+1+uint64(i), tx.ID, tx.Seq, tx.Time
	}
	tx.Hash = store.TxHash(tx)
	for i := range tx.Events {
		if tx.Events[i].Kind == EventStateMutation {
			tx.Events[i].RootHash = tx.Hash
		}
	}
}

func resultEvents(evs []store.Event) []AppEvent {
	out := make([]AppEvent, len(evs))
	for i, e := range evs {
		data := json.RawMessage(e.Data)
		if !json.Valid(data) {
			data, _ = json.Marshal(string(e.Data))
		}
		out[i] = AppEvent{Seq: e.Seq, Kind: e.Kind, Data: data}
	}
	return out
}
