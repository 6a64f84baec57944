package execution

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/store"
)

// maxStaleRetries bounds how often a job re-executes after losing a commit race.
const maxStaleRetries = 8

// handle runs a batch from the queue: each context's jobs in order, contexts in
// parallel, so their commits share storage syncs.
func (s *Service) handle(ctx context.Context, jobs []*Job) []Outcome {
	return PerContext(jobs, func(j *Job) Outcome { return s.runJob(ctx, j) })
}

func (s *Service) runJob(ctx context.Context, job *Job) (out Outcome) {
	ctx, cancel := context.WithDeadline(ctx, job.Deadline)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic in job", "job", job.ID, "panic", r)
			out = Outcome{Err: errs.E(errs.Internal, "panic")}
		}
	}()
	for attempt := 0; ; attempt++ {
		res, err := s.execute(ctx, job)
		if errors.Is(err, store.ErrStale) && attempt < maxStaleRetries {
			s.metrics.staleRetries.Inc()
			continue
		}
		if errors.Is(err, store.ErrStale) {
			err = errs.Wrap(errs.Overloaded, err, "context %s is too contended, try again", job.ContextID)
		}
		return Outcome{Result: res, Err: err}
	}
}

// execute runs a job once on the context's current state and commits it.
func (s *Service) execute(ctx context.Context, job *Job) (json.RawMessage, error) {
	if job.ContextID == "" {
		return s.playDetached(ctx, job)
	}
	meta, err := s.store.GetContext(ctx, job.Tenant, job.ContextID)
	if err != nil {
		return nil, err
	}
	caller := Caller{PubKey: job.Caller, Owner: job.CallerOwner}
	if roleIn(caller, &meta) < roleMember {
		return nil, errs.E(errs.Forbidden, "%s may not mutate context %s", roleName(roleIn(caller, &meta)), job.ContextID)
	}
	if job.IdempotencyKey != "" {
		if res, done, err := s.replay(ctx, job); done {
			return res, err
		}
	}
	call := s.jobCall(job, meta.AppID)
	call.State = &storeState{ctx: ctx, st: s.store, contextID: job.ContextID}
	res, err := s.engine.Run(ctx, call)
	if err != nil {
		return nil, err
	}
	output, err := outputJSON(res.Output)
	if err != nil {
		return nil, err
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
	c := store.Commit{Tenant: job.Tenant, ContextID: job.ContextID, ExpectedSeq: meta.Seq, Tx: tx}
	if job.IdempotencyKey != "" {
		c.IdempotencyKey = job.IdempotencyKey
		c.Idempotency = store.Idempotency{Digest: jobDigest(job), Result: result}
	}
	if err := s.store.Commit(ctx, c); err != nil {
		return nil, err
	}
	s.publish(ctx, job.Tenant, tx.Events)
	return result, nil
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
