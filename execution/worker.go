package execution

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/store"
)

// maxStaleRetries bounds how often a job re-executes after losing a commit race.
const maxStaleRetries = 8

// handle runs a batch from the queue in rounds: round k holds the k-th job of every
// context in the batch. A round's jobs execute concurrently, then commit together in
// one CommitMany (one storage sync for the round), then the next round runs on the
// state they left. A job whose commit lost a race re-executes on its own.
func (s *Service) handle(ctx context.Context, jobs []*Job) []Outcome {
	out := make([]Outcome, len(jobs))
	for _, round := range rounds(jobs) {
		s.runRound(ctx, jobs, round, out)
	}
	return out
}

// rounds groups batch indexes so that each round has at most one job per context and
// a context's jobs keep their order across rounds.
func rounds(jobs []*Job) [][]int {
	var out [][]int
	seen := make(map[string]int, len(jobs))
	for i, j := range jobs {
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

func (s *Service) runRound(ctx context.Context, jobs []*Job, round []int, out []Outcome) {
	start := time.Now()
	preps := make([]prepared, len(round))
	var wg sync.WaitGroup
	for n, i := range round {
		s.pool.Go(&wg, func() {
			jctx, cancel := context.WithDeadline(ctx, jobs[i].Deadline)
			defer cancel()
			p := s.prepareSafe(jctx, jobs[i])
			p.idx = i
			preps[n] = p
		})
	}
	wg.Wait()
	var commits []store.Commit
	var pending []*prepared
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
		return
	}
	start = time.Now()
	errs := s.store.CommitMany(ctx, commits)
	s.metrics.commitTime.Observe(time.Since(start).Seconds())
	s.metrics.roundJobs.Observe(float64(len(commits)))
	for n, p := range pending {
		switch {
		case errs[n] == nil:
			s.publish(ctx, jobs[p.idx].Tenant, p.events)
			out[p.idx] = Outcome{Result: p.result}
		case errors.Is(errs[n], store.ErrStale):
			s.metrics.staleRetries.Inc()
			out[p.idx] = s.runJob(ctx, jobs[p.idx])
		default:
			out[p.idx] = Outcome{Err: errs[n]}
		}
	}
}

// prepareSafe is prepare with panics turned into internal errors.
func (s *Service) prepareSafe(ctx context.Context, job *Job) (p prepared) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic in job", "job", job.ID, "panic", r)
			p = prepared{err: errs.E(errs.Internal, "panic")}
		}
	}()
	return s.prepare(ctx, job)
}

// runJob runs one job alone, committing on its own, re-executing when it loses a
// commit race.
func (s *Service) runJob(ctx context.Context, job *Job) Outcome {
	ctx, cancel := context.WithDeadline(ctx, job.Deadline)
	defer cancel()
	for attempt := 0; ; attempt++ {
		p := s.prepareSafe(ctx, job)
		if p.commit == nil {
			return Outcome{Result: p.result, Err: p.err}
		}
		err := s.store.Commit(ctx, *p.commit)
		if err == nil {
			s.publish(ctx, job.Tenant, p.events)
			return Outcome{Result: p.result}
		}
		if !errors.Is(err, store.ErrStale) || attempt >= maxStaleRetries {
			if errors.Is(err, store.ErrStale) {
				err = errs.Wrap(errs.Overloaded, err, "context %s is too contended, try again", job.ContextID)
			}
			return Outcome{Err: err}
		}
		s.metrics.staleRetries.Inc()
	}
}

// prepare runs a job once on the context's current state and returns the commit it
// needs (nil for a failure, a replayed idempotent result or a detached play).
func (s *Service) prepare(ctx context.Context, job *Job) prepared {
	if job.ContextID == "" {
		res, err := s.playDetached(ctx, job)
		return prepared{result: res, err: err}
	}
	meta, err := s.store.GetContext(ctx, job.Tenant, job.ContextID)
	if err != nil {
		return prepared{err: err}
	}
	caller := Caller{PubKey: job.Caller, Owner: job.CallerOwner}
	if roleIn(caller, &meta) < roleMember {
		return prepared{err: errs.E(errs.Forbidden, "%s may not mutate context %s", roleName(roleIn(caller, &meta)), job.ContextID)}
	}
	if job.IdempotencyKey != "" {
		if res, done, err := s.replay(ctx, job); done {
			return prepared{result: res, err: err}
		}
	}
	call := s.jobCall(job, meta.AppID)
	call.State = &storeState{ctx: ctx, st: s.store, contextID: job.ContextID}
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
	result, _ := json.Marshal(MutateResult{
		JobID: job.ID, TxID: tx.ID, Seq: tx.Seq, RootHash: tx.Hash, Output: output, Events: resultEvents(tx.Events[1:]),
	})
	c := &store.Commit{Tenant: job.Tenant, ContextID: job.ContextID, ExpectedSeq: meta.Seq, Tx: tx}
	if job.IdempotencyKey != "" {
		c.IdempotencyKey = job.IdempotencyKey
		c.Idempotency = store.Idempotency{Digest: jobDigest(job), Result: result}
	}
	return prepared{commit: c, events: tx.Events, result: result}
}

// jobCall is the engine call of a job: its app method, or its play script.
func (s *Service) jobCall(job *Job, appID string) Call {
	call := Call{
		Tenant: job.Tenant, AppID: appID, Wasm: s.blob(job.Tenant, appID), Method: job.Method,
		Args: job.Args, Caller: job.Caller, ContextID: job.ContextID, Time: job.Time,
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
