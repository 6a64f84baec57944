package execution

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/circlegate/circlegate/errs"
)

// JobKind says what a job runs.
type JobKind string

// The kinds of job.
const (
	JobMutate JobKind = "mutate" // an app method on a context
	JobPlay   JobKind = "play"   // a caller-supplied script with the caller's rights
)

// Job is one mutation travelling through a queue to a worker. It is plain data, so it
// can be serialized into a Redis stream.
type Job struct {
	ID        string          `json:"id"`
	Kind      JobKind         `json:"kind"`
	Tenant    string          `json:"tenant"`
	ContextID string          `json:"contextId,omitempty"`
	Method    string          `json:"method"`
	Args      json.RawMessage `json:"args,omitempty"`
	Caller    string          `json:"caller"`
	// CallerOwner is true when the caller owns the tenant (checked at submit time).
	CallerOwner    bool      `json:"callerOwner,omitempty"`
	IdempotencyKey string    `json:"idempotencyKey,omitempty"`
	Script         []byte    `json:"script,omitempty"` // play: the wasm module
	Time           time.Time `json:"time"`             // accepted at; the tx time
	Deadline       time.Time `json:"deadline"`
	// Node is the gateway node that accepted the job and waits for its outcome
	// (fleet queue).
	Node string `json:"node,omitempty"`

	// Attempt is the delivery count of this run of the job, set by the queue: 1 for
	// the first delivery, more when a fleet queue hands it out again because its
	// worker died or stalled.
	Attempt int `json:"-"`
	// AtLeastOnce is set by a queue that may deliver a job more than once (the fleet
	// queue): the handler then records every commit under the job's id, so that a
	// second delivery finds it and commits nothing.
	AtLeastOnce bool `json:"-"`
}

// expired reports whether the job's deadline, if it has one, has passed at now.
func (j *Job) expired(now time.Time) bool {
	return !j.Deadline.IsZero() && now.After(j.Deadline)
}

// deadlineTimer returns a channel that is ready at the job's deadline (nil, never
// ready, when it has none) and what stops it.
func deadlineTimer(j *Job) (<-chan time.Time, func() bool) {
	if j.Deadline.IsZero() {
		return nil, func() bool { return false }
	}
	t := time.NewTimer(time.Until(j.Deadline))
	return t.C, t.Stop
}

// Outcome is what running a job produced: a JSON result or an error.
type Outcome struct {
	Result json.RawMessage
	Err    error
}

// Handler runs a batch of jobs and returns one outcome per job, in the same order.
// Jobs of one context appear in submission order and must be run in that order.
type Handler func(ctx context.Context, jobs []*Job) []Outcome

// Queue carries jobs from the gateways that accept them to the workers that run them.
type Queue interface {
	// Submit queues a job and waits for its outcome, for ctx to end or for the job's
	// deadline to pass (context.DeadlineExceeded; the job may still commit). A full
	// queue is an errs.Overloaded error, returned at once.
	Submit(ctx context.Context, job *Job) (json.RawMessage, error)
	// Run pulls batches of jobs and runs h on them with the given number of
	// concurrent workers until ctx ends.
	Run(ctx context.Context, workers int, h Handler) error
	// Close stops the queue; pending and later Submits fail with errs.Overloaded.
	Close() error
	// Status returns the record of a job this queue (any node of a fleet) accepted:
	// queued until it finishes, then done or failed (or dead), kept for the record
	// TTL after acceptance. An errs.NotFound error for a job it does not know.
	Status(ctx context.Context, jobID string) (JobRecord, error)
}

// The statuses of a job record.
const (
	JobQueued = "queued" // accepted, not finished yet: waiting or running
	JobDone   = "done"   // finished: committed, or a detached play ran; Result is its result
	JobFailed = "failed" // finished with Err
	JobDead   = "dead"   // a fleet queue gave up after max_attempts deliveries
)

// JobRecord is what a queue remembers of a job, for job.get: who submitted it, its
// status and, once finished, its result or error.
type JobRecord struct {
	ID         string
	Kind       JobKind
	Tenant     string
	Caller     string
	ContextID  string
	Status     string
	Result     json.RawMessage
	Err        error
	AcceptedAt time.Time
	FinishedAt time.Time // zero while queued
	Attempts   int       // deliveries so far (fleet); 0 if unknown
}

// newRecord returns the queued record of a job just accepted.
func newRecord(j *Job) JobRecord {
	return JobRecord{ID: j.ID, Kind: j.Kind, Tenant: j.Tenant, Caller: j.Caller, ContextID: j.ContextID,
		Status: JobQueued, AcceptedAt: j.Time}
}

// finished returns r after the job ended with o.
func (r JobRecord) finished(o Outcome, at time.Time) JobRecord {
	r.Status, r.Result, r.Err, r.FinishedAt = JobDone, o.Result, o.Err, at
	if o.Err != nil {
		r.Status, r.Result = JobFailed, nil
	}
	return r
}

var errNoJob = errs.E(errs.NotFound, "job not found (unknown, or its record expired)")

var errQueueFull = errs.E(errs.Overloaded, "job queue is full, try again later")
var errQueueClosed = errs.E(errs.Overloaded, "job queue is closed")
var errJobExpired = errs.E(errs.Overloaded, "the job's deadline passed before a worker took it")

// PerContext runs f on every job of a batch: the jobs of one context one after another
// in batch order, different contexts concurrently. It returns the outcomes in batch
// order. Handlers use it to keep each context serial while contexts run in parallel.
func PerContext(jobs []*Job, f func(*Job) Outcome) []Outcome {
	out := make([]Outcome, len(jobs))
	groups := make(map[string][]int, len(jobs))
	var order []string
	for i, j := range jobs {
		k := j.Tenant + "/" + j.ContextID
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
	}
	if len(order) == 1 {
		for _, i := range groups[order[0]] {
			out[i] = f(jobs[i])
		}
		return out
	}
	var wg sync.WaitGroup
	for _, k := range order {
		idx := groups[k]
		wg.Go(func() {
			for _, i := range idx {
				out[i] = f(jobs[i])
			}
		})
	}
	wg.Wait()
	return out
}
