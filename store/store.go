package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrStale is returned by Commit when the context's seq is not the expected one: the
// caller executed on stale state and must re-execute.
var ErrStale = errors.New("store: context changed since it was read")

// ErrTaken is returned by Commit when the commit's idempotency key is recorded
// already: the call committed before (perhaps by another delivery of the same job),
// and the caller reads its record (Idempotent) instead of running it again. It is
// also ErrStale (errors.Is), for callers that handle both alike.
var ErrTaken = fmt.Errorf("%w: its idempotency key is recorded already", ErrStale)

// App is an installed application's metadata. The blob is stored beside it.
type App struct {
	ID          string    `json:"appId"` // hex sha256 of the blob
	Tenant      string    `json:"tenant"`
	Name        string    `json:"name,omitempty"`
	Version     string    `json:"version,omitempty"`
	Size        int       `json:"size"`
	InstalledAt time.Time `json:"installedAt"`
	InstalledBy string    `json:"installedBy"`
}

// Context is a context's metadata and head.
type Context struct {
	ID        string    `json:"contextId"`
	Tenant    string    `json:"tenant"`
	AppID     string    `json:"appId"`
	Owner     string    `json:"owner"` // the key that created it
	Members   []string  `json:"members"`
	Public    bool      `json:"public"`
	CreatedAt time.Time `json:"createdAt"`
	// Seq is the seq of the last tx (the genesis tx has seq 0).
	Seq uint64 `json:"seq"`
	// RootHash is the hash of the last tx, hex.
	RootHash string `json:"rootHash"`
	// EventSeq is the seq of the last event (0 = none yet).
	EventSeq uint64 `json:"eventSeq"`
}

// Write is one state change of a tx. Delete removes Key; otherwise Key is set to Value.
type Write struct {
	Key    []byte `json:"key"`
	Value  []byte `json:"value,omitempty"`
	Delete bool   `json:"delete,omitempty"`
}

// Event is one event of a context, with its per-context seq.
type Event struct {
	ContextID string `json:"contextId"`
	Seq       uint64 `json:"seq"`
	TxID      string `json:"txId"`
	TxSeq     uint64 `json:"txSeq"`
	// Kind is "StateMutation", a lifecycle kind, or the app's own kind.
	Kind string `json:"kind"`
	// Data is the event payload (JSON); for StateMutation it holds the rootHash.
	Data []byte    `json:"data,omitempty"`
	Time time.Time `json:"time"`
	// RootHash is set on StateMutation events: the hash of their tx. It is not part
	// of TxHash (the tx's hash cannot cover itself); backends store it with the event.
	// It is empty or the tx's Hash: the Pebble store refuses any other value, since
	// its tx record keeps only whether the two are equal.
	RootHash string `json:"rootHash,omitempty"`
}

// Tx is one entry of a context's transaction log. Hash chains it to the previous tx:
// Hash = TxHash(tx) covers PrevHash and every other field but Hash.
type Tx struct {
	Seq        uint64    `json:"seq"`
	ID         string    `json:"txId"`
	PrevHash   string    `json:"prevHash"`
	Hash       string    `json:"hash"`
	Method     string    `json:"method"`
	ArgsDigest string    `json:"argsDigest"` // hex sha256 of the args
	Caller     string    `json:"caller"`
	Time       time.Time `json:"time"`
	Writes     []Write   `json:"writes"`
	Events     []Event   `json:"events"`
}

// Idempotency is the record of a committed job with an idempotency key: the digest of
// the call that made it, and the result that call returned.
type Idempotency struct {
	Digest string `json:"digest"`
	Result []byte `json:"result"`
}

// Commit is everything one tx changes, applied atomically.
type Commit struct {
	Tenant    string
	ContextID string
	// ExpectedSeq is the context seq the tx was executed on; Tx.Seq must be one more.
	ExpectedSeq uint64
	Tx          Tx
	// IdempotencyKey, if set, records Idempotency under it in the same commit. A
	// commit whose key is recorded already fails with ErrTaken: the caller reads the
	// record (Idempotent) instead of applying the call a second time.
	IdempotencyKey string
	Idempotency    Idempotency
	// IdempotencyTTL, if positive, lets the backend forget the record once it is that
	// old (Redis expires it; Pebble keeps it). The fleet's workers record every job
	// this way, so that a job delivered twice commits once.
	IdempotencyTTL time.Duration
}

// Record is one record of ListRecords.
type Record struct {
	ID    string
	Value []byte
}

// KV is one state entry.
type KV struct {
	Key   []byte
	Value []byte
}

// Store is the durable state of a node (embedded) or a fleet (Redis).
type Store interface {
	// PutApp stores an app blob and its metadata; installing the same blob again in
	// the same tenant returns the existing metadata and created=false.
	PutApp(ctx context.Context, app App, blob []byte) (stored App, created bool, err error)
	// GetApp returns an app's metadata, or an errs.NotFound error.
	GetApp(ctx context.Context, tenant, appID string) (App, error)
	// AppBlob returns an app's wasm bytes, or an errs.NotFound error.
	AppBlob(ctx context.Context, tenant, appID string) ([]byte, error)
	// ListApps returns a tenant's apps ordered by id.
	ListApps(ctx context.Context, tenant string) ([]App, error)
	// DeleteApp removes an app; an errs.Conflict error while a context uses it.
	DeleteApp(ctx context.Context, tenant, appID string) error

	// CreateContext stores a new context with its genesis tx (seq 0, the init
	// writes), atomically. c.Seq, c.RootHash and c.EventSeq must match genesis.
	// An errs.Conflict error if the id exists, errs.NotFound if the app does not.
	CreateContext(ctx context.Context, c Context, genesis Tx) error
	// GetContext returns a context, or an errs.NotFound error (also when it belongs
	// to another tenant).
	GetContext(ctx context.Context, tenant, contextID string) (Context, error)
	// ListContexts returns a tenant's contexts ordered by id.
	ListContexts(ctx context.Context, tenant string) ([]Context, error)
	// DeleteContext removes a context with its state, log, events and idempotency
	// records.
	DeleteContext(ctx context.Context, tenant, contextID string) error
	// UpdateMembers adds and removes members and returns the updated context. It
	// appends ev (a lifecycle event; its Seq is assigned here as EventSeq+1) to the
	// context's event history in the same atomic write and returns it with its seq.
	UpdateMembers(ctx context.Context, tenant, contextID string, add, remove []string, ev Event) (Context, Event, error)

	// Get reads one state key of a context.
	Get(ctx context.Context, contextID string, key []byte) (value []byte, found bool, err error)
	// Scan returns up to limit entries with prefix whose key is greater than after,
	// in key order.
	Scan(ctx context.Context, contextID string, prefix, after []byte, limit int) ([]KV, error)
	// StateSize returns the number of keys and their total key+value bytes.
	StateSize(ctx context.Context, contextID string) (keys, bytes int64, err error)

	// Commit applies one tx atomically and durably, or returns ErrStale when the
	// context's seq is not c.ExpectedSeq, or when the tx's first event seq is not the
	// context's EventSeq+1 (UpdateMembers appended an event since the tx was
	// executed), and changes nothing; ErrTaken (which is also ErrStale) instead when
	// c's idempotency key is recorded, whatever the seq. An errs.NotFound error if
	// the context is gone.
	Commit(ctx context.Context, c Commit) error
	// CommitMany applies several commits, each to a different context, with one
	// durable write where the backend can: it returns one error per commit (nil,
	// ErrStale, ErrTaken, NotFound, ...), and a commit that fails changes nothing
	// while the others still apply. Two commits to one context in one call is an
	// error.
	CommitMany(ctx context.Context, cs []Commit) []error
	// Idempotent returns the record under an idempotency key of a context.
	Idempotent(ctx context.Context, contextID, key string) (Idempotency, bool, error)

	// TxLog returns up to limit txs of a context with seq >= from, in order.
	TxLog(ctx context.Context, contextID string, from uint64, limit int) ([]Tx, error)
	// Events returns up to limit events of a context with seq >= from, in order, and
	// the oldest seq history still holds (0 if none). History keeps the events of
	// committed txs (and lifecycle events) bounded by count and age (HistoryConfig).
	Events(ctx context.Context, contextID string, from uint64, limit int) (events []Event, oldest uint64, err error)

	// PutRecord stores a small document under (tenant, kind, id), replacing any
	// previous one. Records hold what a tenant or the node configures at runtime
	// (webhook secrets and routes, delivery logs, keys); tenant "" is the node's own.
	// Ids sort bytewise, so time-ordered ids list in time order.
	PutRecord(ctx context.Context, tenant, kind, id string, value []byte) error
	// GetRecord returns a record, or found=false.
	GetRecord(ctx context.Context, tenant, kind, id string) (value []byte, found bool, err error)
	// DeleteRecord removes a record and reports whether it existed.
	DeleteRecord(ctx context.Context, tenant, kind, id string) (existed bool, err error)
	// ListRecords returns up to limit records of (tenant, kind) with id greater than
	// after (all when after is ""), in id order; reverse lists in descending id order
	// with id less than after.
	ListRecords(ctx context.Context, tenant, kind, after string, limit int, reverse bool) ([]Record, error)

	// Close releases the store.
	Close() error
}

// RecordsDeleter is implemented by stores that delete several records of one
// (tenant, kind) in one durable write. It is optional: a caller that finds a Store
// without it calls DeleteRecord for each id. Ids that have no record are skipped.
type RecordsDeleter interface {
	DeleteRecords(ctx context.Context, tenant, kind string, ids []string) error
}

// RecordIDLister is implemented by stores that list record ids without reading the
// values. It is optional: a caller that finds a Store without it uses ListRecords.
type RecordIDLister interface {
	// ListRecordIDs returns the ids of the records ListRecords would return, in its
	// order.
	ListRecordIDs(ctx context.Context, tenant, kind, after string, limit int, reverse bool) ([]string, error)
}

// LazyRecordPutter is implemented by stores that can store a record without waiting
// for it to be durable, for records that are worth less than a storage sync each
// (the webhook delivery log). It is optional: a caller that finds a Store without it
// calls PutRecord.
type LazyRecordPutter interface {
	// PutRecordLazy stores a record as PutRecord does, and it is readable at once,
	// but it returns before the record is durable: it becomes durable with the
	// store's next durable write or its Close. A crash of the machine (Pebble: of
	// the process too) before then may lose it.
	PutRecordLazy(ctx context.Context, tenant, kind, id string, value []byte) error
}

// ContextRef names a context of a tenant.
type ContextRef struct {
	Tenant, ID string
}

// Snapshot is a context's head and, when its state was small enough, its whole
// state, both read at one instant.
type Snapshot struct {
	Context Context
	// State is the whole state at Context.Seq when Full is set: a key it lacks has
	// no value. Without Full it is nil and reads go to the store.
	State map[string][]byte
	Full  bool
	// Err is what GetContext would have returned instead (NotFound, ...).
	Err error
}

// SnapshotReader is implemented by stores whose every read is a network round trip
// (Redis): a worker reads the contexts of a round at once instead of one head and
// one key at a time. It is optional; Pebble reads locally and has no need of it.
type SnapshotReader interface {
	// Snapshots returns one Snapshot per ref, in order. A context's state comes
	// along when it holds at most maxStateBytes of keys and values.
	Snapshots(ctx context.Context, refs []ContextRef, maxStateBytes int64) []Snapshot
}

// HistoryConfig bounds the per-context event history every backend keeps.
type HistoryConfig struct {
	// MaxEvents is the most events kept per context. Zero means 1000.
	MaxEvents int `toml:"max_events"`
	// MaxAge is how long an event is kept, counted from its Time. Zero means 24h.
	MaxAge time.Duration `toml:"max_age"`
}

// WithDefaults returns c with every zero field set to its default.
func (c HistoryConfig) WithDefaults() HistoryConfig {
	if c.MaxEvents == 0 {
		c.MaxEvents = 1000
	}
	if c.MaxAge == 0 {
		c.MaxAge = 24 * time.Hour
	}
	return c
}
