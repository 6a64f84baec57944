// Package store is circlegate's durable state behind one interface, Store: each
// tenant's applications (blob and metadata), contexts (app, owner, members, public flag,
// seq, rootHash), per-context key-value state, the per-context hash-chained transaction
// log, the per-context event history and idempotency records.
//
// Backends: Pebble (store_pebble.go, embedded mode) and Redis (store_redis.go, fleet
// mode). Both pass the conformance suite in store/storetest.
//
// A commit (state writes + tx + events + idempotency record + context head) is one
// atomic, durable operation: when Commit returns nil, the commit survives kill -9 of
// any process. Commit checks the context's expected seq (optimistic concurrency), so a
// writer holding stale state fails with ErrStale and re-executes on fresh state.
//
// Concurrency: every method of a Store is safe for concurrent use.
package store
