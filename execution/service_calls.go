package execution

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/store"
)

// Query runs a method read-only, right away, without the queue. Members and the
// owner may query; anyone authenticated may query a public context.
func (s *Service) Query(ctx context.Context, tenant string, c Caller, id, method string, args json.RawMessage) (json.RawMessage, error) {
	meta, state, err := s.readContext(ctx, tenant, c, id, roleReader)
	if err != nil {
		return nil, err
	}
	if err := checkMethod(method); err != nil {
		return nil, err
	}
	res, err := s.engine.Run(ctx, Call{
		Tenant: tenant, AppID: meta.AppID, Wasm: s.blob(tenant, meta.AppID), Method: method, Args: args,
		Caller: c.PubKey, ContextID: id, Time: s.now().UTC(), ReadOnly: true, State: state,
	})
	if err != nil {
		return nil, err
	}
	return outputJSON(res.Output)
}

// readContext is context for a call that reads the state right away (query), with
// the state to read. When the store reads over the network (SnapshotReader) the head
// and a small state come in one round trip, and the call sees the state of one
// instant even if it reads many keys while commits land.
func (s *Service) readContext(ctx context.Context, tenant string, c Caller, id string, want role) (store.Context, StateReader, error) {
	sr, ok := s.store.(store.SnapshotReader)
	if !ok {
		meta, err := s.context(ctx, tenant, c, id, want)
		return meta, s.stateReader(ctx, id, nil), err
	}
	snap := sr.Snapshots(ctx, []store.ContextRef{{Tenant: tenant, ID: id}}, snapshotStateBytes)[0]
	s.metrics.observeSnapshot(&snap)
	if snap.Err != nil {
		return store.Context{}, nil, snap.Err
	}
	meta := snap.Context
	if err := checkRole(c, &meta, want); err != nil {
		return meta, nil, err
	}
	return meta, s.stateReader(ctx, id, &snap), nil
}

// stateReader is how a call reads context id's state: from snap when it holds the
// whole state, else from the store.
func (s *Service) stateReader(ctx context.Context, id string, snap *store.Snapshot) StateReader {
	if snap != nil && snap.Full {
		return &snapshotState{m: snap.State}
	}
	return &storeState{ctx: ctx, st: s.store, contextID: id}
}

// MutateResult is what a committed mutation returns.
type MutateResult struct {
	JobID    string          `json:"jobId"`
	TxID     string          `json:"txId"`
	Seq      uint64          `json:"seq"`
	RootHash string          `json:"rootHash"`
	Output   json.RawMessage `json:"output"`
	Events   []AppEvent      `json:"events"`
}

// AppEvent is an event an app emitted, as mutate returns it.
type AppEvent struct {
	Seq  uint64          `json:"seq"`
	Kind string          `json:"kind"`
	Data json.RawMessage `json:"data"`
}

// Mutate queues a method call on a context and waits for its commit. Members and
// the owner may mutate. The same idempotencyKey with the same call returns the first
// result without running again; with a different call it is -32007. The result is
// compact JSON (encodeMutateResult, or the record of it), which rpc sends as it is.
func (s *Service) Mutate(ctx context.Context, tenant string, c Caller, id, method string, args json.RawMessage, idemKey string) (json.RawMessage, error) {
	if err := s.queueCheck(ctx, tenant, c, id); err != nil {
		return nil, err
	}
	if err := checkMethod(method); err != nil {
		return nil, err
	}
	if len(idemKey) > 256 {
		return nil, errs.Param("idempotencyKey", "at most 256 bytes")
	}
	if strings.HasPrefix(idemKey, "\x00") {
		return nil, errs.Param("idempotencyKey", "must not start with a NUL character")
	}
	job := s.newJob(JobMutate, tenant, c, id, method, args)
	job.IdempotencyKey = idemKey
	if idemKey != "" {
		if res, done, err := s.replay(ctx, job); done {
			return res, err
		}
	}
	return s.submit(ctx, job)
}

// Applied is a call that MutateOnce applied, now or before.
type Applied struct {
	// Result is the MutateResult of the job that applied the call.
	Result json.RawMessage
	// JobID and TxID are that job's and its tx's.
	JobID, TxID string
	// Replayed is true when another job had applied the call before: Result is then
	// that job's.
	Replayed bool
}

// MutateOnce applies a call once per idempotency key (required) for callers that
// must tell a first application from a replay, such as webhook deliveries. The same
// key with another call is -32007, as for Mutate. The key is looked up where the job
// runs, not also before it is queued, since such a caller's keys are nearly always
// new; a replay therefore takes a queue slot like any job.
func (s *Service) MutateOnce(ctx context.Context, tenant string, c Caller, id, method string, args json.RawMessage, idemKey string) (Applied, error) {
	if idemKey == "" {
		return Applied{}, errs.Param("idempotencyKey", "is required")
	}
	if err := s.queueCheck(ctx, tenant, c, id); err != nil {
		return Applied{}, err
	}
	if err := checkMethod(method); err != nil {
		return Applied{}, err
	}
	if len(idemKey) > 256 {
		return Applied{}, errs.Param("idempotencyKey", "at most 256 bytes")
	}
	job := s.newJob(JobMutate, tenant, c, id, method, args)
	job.IdempotencyKey = idemKey
	res, err := s.submit(ctx, job)
	if err != nil {
		return Applied{}, err
	}
	return appliedBy(job.ID, res)
}

// AppliedKey returns the call applied under an idempotency key of a context, whatever
// its args, or found=false; Replayed is set. It is for a caller of MutateOnce that
// takes a conflict (-32007) for a replay.
func (s *Service) AppliedKey(ctx context.Context, tenant, id, idemKey string) (a Applied, found bool, err error) {
	if _, err := s.store.GetContext(ctx, tenant, id); err != nil {
		return Applied{}, false, err
	}
	rec, found, err := s.store.Idempotent(ctx, id, idemKey)
	if err != nil || !found {
		return Applied{}, false, err
	}
	a, err = appliedBy("", rec.Result)
	return a, err == nil, err
}

// appliedBy reads the job and tx ids of a mutation's result (MutateResult): the
// result of job jobID applied the call, any other is a replay.
func appliedBy(jobID string, res json.RawMessage) (Applied, error) {
	var ids struct {
		JobID string `json:"jobId"`
		TxID  string `json:"txId"`
	}
	if err := json.Unmarshal(res, &ids); err != nil || ids.JobID == "" {
		return Applied{}, errs.E(errs.Internal, "a mutation result without a jobId")
	}
	return Applied{Result: res, JobID: ids.JobID, TxID: ids.TxID, Replayed: ids.JobID != jobID}, nil
}

// PlayResult is what play returns: the output and, when it ran on a context and
// changed it, the tx.
type PlayResult = MutateResult

// Play runs a caller-supplied module (entry export, default "main") with the
// caller's rights, through the same queue as mutate. On a context it needs member
// rights and commits like a mutation; without one it runs on empty state and its
// writes are discarded.
func (s *Service) Play(ctx context.Context, tenant string, c Caller, script []byte, id, entry string, args json.RawMessage) (json.RawMessage, error) {
	if entry == "" {
		entry = "main"
	}
	if err := checkMethod(entry); err != nil {
		return nil, errs.Param("entry", "%s", err.(*errs.Error).Reason())
	}
	if len(script) == 0 || len(script) > s.cfg.MaxAppBytes {
		return nil, errs.Param("script", "must be 1 to %d bytes of wasm", s.cfg.MaxAppBytes)
	}
	if id != "" {
		if err := s.queueCheck(ctx, tenant, c, id); err != nil {
			return nil, err
		}
	}
	if err := s.engine.Validate(ctx, script); err != nil {
		return nil, err
	}
	job := s.newJob(JobPlay, tenant, c, id, entry, args)
	job.Script = script
	return s.submit(ctx, job)
}

func (s *Service) newJob(kind JobKind, tenant string, c Caller, id, method string, args json.RawMessage) *Job {
	now := s.now().UTC()
	return &Job{
		ID: newID(), Kind: kind, Tenant: tenant, ContextID: id, Method: method, Args: compact(args),
		Caller: c.PubKey, CallerOwner: c.Owner, Time: now, Deadline: now.Add(s.cfg.JobTimeout),
	}
}

func (s *Service) submit(ctx context.Context, job *Job) (json.RawMessage, error) {
	start := time.Now()
	res, err := s.queue.Submit(ctx, job) // waits until job.Deadline at most
	s.metrics.observeJob(job.Kind, err, time.Since(start))
	if err != nil && errs.KindOf(err) == errs.Internal && (ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded)) {
		return nil, errs.E(errs.Overloaded, "job %s did not finish within %s; it may still commit", job.ID, s.cfg.JobTimeout)
	}
	return res, err
}

// replay returns the recorded result of a job with a caller's idempotency key, if any.
func (s *Service) replay(ctx context.Context, job *Job) (json.RawMessage, bool, error) {
	return s.replayKey(ctx, job, job.IdempotencyKey)
}

// replayKey returns the result recorded under key for job, if any; a record of
// another call under the same key is a conflict.
func (s *Service) replayKey(ctx context.Context, job *Job, key string) (json.RawMessage, bool, error) {
	rec, ok, err := s.store.Idempotent(ctx, job.ContextID, key)
	switch {
	case err != nil:
		return nil, true, err
	case !ok:
		return nil, false, nil
	case rec.Digest != jobDigest(job):
		return nil, true, errs.E(errs.Conflict, "idempotencyKey %q was used for a different call", key)
	}
	return rec.Result, true, nil
}

func jobDigest(j *Job) string {
	return digest([]byte(j.Kind), []byte(j.ContextID), []byte(j.Method), j.Args, []byte(j.Caller), j.Script)
}

func checkMethod(m string) error {
	if m == "" || len(m) > 128 {
		return errs.Param("method", "must be 1 to 128 bytes")
	}
	return nil
}

// compact returns a copy of args without insignificant white space (a plain copy if
// they are not valid JSON).
func compact(args json.RawMessage) json.RawMessage {
	if len(args) == 0 {
		return nil
	}
	if bytes.IndexAny(args, " \t\r\n") < 0 {
		return bytes.Clone(args) // no white space to remove (json.Marshal's output)
	}
	var b bytes.Buffer
	if json.Compact(&b, args) != nil {
		return args
	}
	return b.Bytes()
}

// outputJSON checks that a method's output is JSON; no output is null.
func outputJSON(out []byte) (json.RawMessage, error) {
	if len(out) == 0 {
		return json.RawMessage("null"), nil
	}
	if !json.Valid(out) {
		return nil, errs.E(errs.Execution, "the method returned output that is not valid JSON")
	}
	return out, nil
}

func (s *Service) blob(tenant, appID string) func() ([]byte, error) {
	return func() ([]byte, error) { return s.store.AppBlob(context.Background(), tenant, appID) }
}

// storeState reads a context's committed state for the engine.
type storeState struct {
	ctx       context.Context
	st        store.Store
	contextID string
}

func (r *storeState) Get(key []byte) ([]byte, bool, error) {
	return r.st.Get(r.ctx, r.contextID, key)
}

func (r *storeState) Scan(prefix, after []byte, limit int) ([]store.KV, error) {
	return r.st.Scan(r.ctx, r.contextID, prefix, after, limit)
}

// snapshotState is a context's whole state as a round read it (store.Snapshot).
type snapshotState struct {
	m    map[string][]byte
	keys []string // m's keys in order, sorted at the first Scan
}

func (r *snapshotState) Get(key []byte) ([]byte, bool, error) {
	v, ok := r.m[string(key)]
	return v, ok, nil
}

func (r *snapshotState) Scan(prefix, after []byte, limit int) ([]store.KV, error) {
	if r.keys == nil {
		r.keys = slices.Sorted(maps.Keys(r.m))
	}
	from := string(prefix)
	if len(after) > 0 && string(after) >= from {
		from = string(after) + "\x00" // the first key greater than after
	}
	var out []store.KV
	for i, _ := slices.BinarySearch(r.keys, from); i < len(r.keys) && len(out) < limit; i++ {
		k := r.keys[i]
		if !strings.HasPrefix(k, string(prefix)) {
			break
		}
		out = append(out, store.KV{Key: []byte(k), Value: r.m[k]})
	}
	return out, nil
}

// emptyState is the state of a context being created, or of a play without one.
type emptyState struct{}

func (emptyState) Get([]byte) ([]byte, bool, error)             { return nil, false, nil }
func (emptyState) Scan([]byte, []byte, int) ([]store.KV, error) { return nil, nil }

// Job returns the record of a job of this tenant (job.get) to the key that submitted
// it and to the tenant's owner. For anyone else it does not exist, so a job id
// reveals nothing.
func (s *Service) Job(ctx context.Context, tenant string, c Caller, jobID string) (JobRecord, error) {
	if jobID == "" || len(jobID) > 128 {
		return JobRecord{}, errs.Param("jobId", "must be 1 to 128 bytes")
	}
	r, err := s.queue.Status(ctx, jobID)
	if err != nil {
		return JobRecord{}, err
	}
	if r.Tenant != tenant || (!c.Owner && r.Caller != c.PubKey) {
		return JobRecord{}, errNoJob
	}
	return r, nil
}
