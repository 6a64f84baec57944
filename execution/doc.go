// Package execution runs applications: the wazero engine and its host ABI
// (engine*.go, abi*.go), the job queues that carry mutations to workers
// (queue_memory.go embedded, queue_redis.go in a fleet), the workers that execute and
// commit jobs (worker.go), and the service layer every transport calls for apps,
// contexts, query, mutate and play (service*.go).
//
// Concurrency: Engine, Service and the queues are safe for concurrent use. A queue
// hands its handler batches; jobs of one context are never in two batches of one
// process at once, and a handler runs a context's jobs of one batch in order, so the
// mutations of one context are serializable while different contexts run and commit in
// parallel, sharing storage syncs. In a fleet, workers in different processes may run
// jobs of one context at the same time: the store's optimistic commit (ErrStale) makes
// the later one run again on the new state. The fleet queue delivers a job at least
// once (Job.AtLeastOnce), and the service records every such commit under the job's
// id, so a job commits at most once.
package execution
