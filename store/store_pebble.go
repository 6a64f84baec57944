package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/circlegate/circlegate/errs"
)

// PebbleConfig configures the embedded Pebble backend.
type PebbleConfig struct {
	// Dir is the data directory. Required; created if missing.
	Dir string
	// History bounds each context's event history; see HistoryConfig for defaults.
	History HistoryConfig
	// CacheBytes is the size of the block cache, for blocks alone: Pebble's memtables
	// (up to 4 of MemTableBytes) are charged beside it. Zero means 64 MiB.
	CacheBytes int64
	// MemTableBytes is the size of one memtable. Zero means 32 MiB.
	MemTableBytes int64
	// HeadCacheEntries bounds the decoded context heads kept in memory. Zero means
	// 100000.
	HeadCacheEntries int
	// StateCacheBytes bounds the state values kept in memory for point reads (values
	// of up to 64 KiB that commits wrote or reads found). Zero means 32 MiB; negative
	// means none.
	StateCacheBytes int64
	// Logger receives Pebble's own messages (background errors, recovery). Nil means
	// they are discarded.
	Logger *slog.Logger
}

// WithDefaults returns c with every zero field set to its default.
func (c PebbleConfig) WithDefaults() PebbleConfig {
	c.History = c.History.WithDefaults()
	if c.CacheBytes == 0 {
		c.CacheBytes = 64 << 20
	}
	if c.MemTableBytes == 0 {
		c.MemTableBytes = 32 << 20
	}
	if c.HeadCacheEntries == 0 {
		c.HeadCacheEntries = 100000
	}
	if c.StateCacheBytes == 0 {
		c.StateCacheBytes = 32 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports the first invalid field of c (after WithDefaults).
func (c PebbleConfig) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("store: pebble dir is empty")
	case c.CacheBytes < 0:
		return fmt.Errorf("store: pebble cache_bytes %d is negative", c.CacheBytes)
	case c.MemTableBytes < 1<<20:
		return fmt.Errorf("store: pebble memtable_bytes %d is below 1 MiB", c.MemTableBytes)
	case c.History.MaxEvents < 1:
		return fmt.Errorf("store: history max_events %d is below 1", c.History.MaxEvents)
	case c.History.MaxAge < 0:
		return fmt.Errorf("store: history max_age %s is negative", c.History.MaxAge)
	}
	return nil
}

// Pebble is the embedded Store: one Pebble database in a directory. Every write is
// one synced batch; writers of one context are serialized by a striped lock, writers
// of different contexts commit in parallel and share WAL syncs.
type Pebble struct {
	db    *pebble.DB
	hist  HistoryConfig
	locks *stripes
	heads *headCache
	state *stateCache // nil when off

	closeMu sync.RWMutex // held shared by every call, exclusively by Close
	closed  bool
}

var _ Store = (*Pebble)(nil)

// errClosed is returned by every call after Close.
var errClosed = errs.E(errs.Internal, "store: closed")

// OpenPebble opens (or creates) the database in cfg.Dir.
func OpenPebble(cfg PebbleConfig) (*Pebble, error) {
	cfg = cfg.WithDefaults()
	db, err := OpenPebbleDB(cfg)
	if err != nil {
		return nil, err
	}
	return &Pebble{db: db, hist: cfg.History, locks: newStripes(), heads: newHeadCache(cfg.HeadCacheEntries),
		state: newStateCache(cfg.StateCacheBytes)}, nil
}

// OpenPebbleDB opens (or creates) the bare Pebble database in cfg.Dir with the
// options OpenPebble runs it with: the block cache, memtables in huge pages, logs
// filled ahead. Besides OpenPebble, it serves to measure what the storage alone
// costs (rpcfloor's mutate floor); the caller closes it.
func OpenPebbleDB(cfg PebbleConfig) (*pebble.DB, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// Pebble charges each memtable it holds (the mutable one, those waiting for a
	// flush, zombies still read) against the block cache; sized to CacheBytes alone,
	// two full memtables would leave no room for a single block. The cache is sized
	// for the blocks plus the most memtables Pebble keeps before it stops writes.
	cache := pebble.NewCache(cfg.CacheBytes + memTableStopWrites*cfg.MemTableBytes)
	defer cache.Unref()
	db, err := pebble.Open(cfg.Dir, pebbleOptions(cfg, cache))
	if err != nil {
		return nil, fmt.Errorf("store: open pebble in %s: %w", cfg.Dir, err)
	}
	return db, nil
}

// memTableStopWrites is how many memtables Pebble holds before it stalls writes.
const memTableStopWrites = 4

// pebbleOptions are tuned for a small machine (2 cores): a few large memtables so
// bursts of commits do not stall on flushes, up to 2 concurrent compactions, bloom
// filters for the point reads of heads and state keys.
func pebbleOptions(cfg PebbleConfig, cache *pebble.Cache) *pebble.Options {
	opts := &pebble.Options{
		Cache:                       cache,
		FS:                          newWALFS(vfs.Default), // pebble_wal.go
		MemTableSize:                uint64(cfg.MemTableBytes),
		MemTableStopWritesThreshold: memTableStopWrites,
		FormatMajorVersion:          pebble.FormatNewest,
		CompactionConcurrencyRange:  func() (int, int) { return 1, 2 },
		Logger:                      pebbleLogger{cfg.Logger},
		// A flush begins once Pebble has allocated the memtable that takes the
		// writes next: ask for huge pages on its arena (hugepages_linux.go).
		EventListener: &pebble.EventListener{
			FlushBegin: func(pebble.FlushInfo) { adviseHugeMappings(cfg.MemTableBytes) },
		},
	}
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	opts.WithFSDefaults() // Pebble's disk-health checks, which it adds only to a nil FS
	return opts
}

// Close flushes the memtable (so the next open replays no WAL) and closes the
// database. Calls after Close fail; Close waits for calls in progress.
func (p *Pebble) Close() error {
	p.closeMu.Lock()
	defer p.closeMu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	return errors.Join(p.db.Flush(), p.db.Close())
}

// enter starts a call: it fails if ctx is done or the store is closed. A nil error
// must be paired with exit.
func (p *Pebble) enter(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return errs.Wrap(errs.Overloaded, err, "store: call canceled")
	}
	p.closeMu.RLock()
	if p.closed {
		p.closeMu.RUnlock()
		return errClosed
	}
	return nil
}

func (p *Pebble) exit() { p.closeMu.RUnlock() }

// head is the record under headKey: the context and what Commit keeps beside it.
type head struct {
	Context
	// StateKeys and StateBytes count the state entries and their key+value bytes.
	StateKeys  int64 `json:"stateKeys"`
	StateBytes int64 `json:"stateBytes"`
	// FirstEvent is the seq of the oldest event held; history is empty while it is
	// greater than EventSeq.
	FirstEvent uint64 `json:"firstEvent"`
}

// readHead returns a context's head, or an errs.NotFound error, for callers that do
// not hold the context's lock: from the cache, or loaded under the lock.
func (p *Pebble) readHead(contextID string) (head, error) {
	if h, ok := p.heads.get(contextID); ok {
		return h, nil
	}
	defer p.locks.lock(contextLockName(contextID))()
	return p.loadHead(contextID)
}

// loadHead is readHead for a caller that holds the context's lock.
func (p *Pebble) loadHead(contextID string) (head, error) {
	if h, ok := p.heads.get(contextID); ok {
		return h, nil
	}
	h, err := p.decodeHead(contextID)
	if err == nil {
		p.heads.put(contextID, h)
	}
	return h, err
}

// decodeHead reads a head from Pebble: the JSON record, and over it the latest of
// the binary head record and the last tx record (overlayHead).
func (p *Pebble) decodeHead(contextID string) (head, error) {
	var h head
	v, ok, err := p.get(headKey(contextID))
	if err != nil {
		return h, err
	}
	if !ok {
		return h, errs.E(errs.NotFound, "context %s not found", contextID)
	}
	if err := json.Unmarshal(v, &h); err != nil {
		return h, errs.Wrap(errs.Internal, err, "store: decode context %s", contextID)
	}
	return h, p.overlayHead(&h)
}

// overlayHead lays over h, read from the JSON record, the fields that change after
// the context's creation: from the binary head record, which creation and member
// changes write, and then from the last tx record when that is newer. A commit
// writes only its tx record (version 3, carrying the head), so a tx of a greater
// seq than the head record's holds the head. At an equal seq the head record wins:
// it was written after the tx (a member change), or with it (before version 3).
func (p *Pebble) overlayHead(h *head) error {
	v, ok, err := p.get(hotKey(h.ID))
	if err != nil {
		return err
	}
	if ok {
		if err := decodeHot(v, h); err != nil {
			return errs.Wrap(errs.Internal, err, "store: decode context %s", h.ID)
		}
	}
	tx, th, found, err := p.lastTx(h.ID)
	if err != nil || !found || tx.Seq <= h.Seq {
		return err
	}
	if th == nil { // before version 3 every commit also wrote the head record
		return errs.E(errs.Internal, "store: context %s: tx %d is newer than its head and carries none", h.ID, tx.Seq)
	}
	h.Seq, h.RootHash = tx.Seq, tx.Hash
	h.EventSeq, h.StateKeys, h.StateBytes, h.FirstEvent = th.EventSeq, th.StateKeys, th.StateBytes, th.FirstEvent
	return nil
}

// lastTx returns the last tx record of a context and the head it carries, if any.
func (p *Pebble) lastTx(contextID string) (Tx, *txHead, bool, error) {
	prefix := key(kindTx, contextID)
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return Tx{}, nil, false, errs.Wrap(errs.Internal, err, "store: iterate txs")
	}
	if !it.Last() {
		return Tx{}, nil, false, closeIter(it)
	}
	tx, th, err := decodeTxRecord(it.Value())
	if err != nil {
		_ = closeIter(it)
		return Tx{}, nil, false, errs.Wrap(errs.Internal, err, "store: decode tx %d of context %s", seqOf(it.Key()), contextID)
	}
	return tx, th, true, closeIter(it)
}

// putHead writes a whole head: the JSON record and the binary one.
func putHead(b *pebble.Batch, h *head) error {
	_ = b.Set(hotKey(h.ID), encodeHot(h), nil)
	return putJSON(b, headKey(h.ID), h)
}

// tenantHead is readHead that also reports NotFound when the context belongs to
// another tenant.
func (p *Pebble) tenantHead(tenant, contextID string) (head, error) {
	return ofTenant(tenant, contextID)(p.readHead(contextID))
}

// lockedTenantHead is tenantHead for a caller that holds the context's lock.
func (p *Pebble) lockedTenantHead(tenant, contextID string) (head, error) {
	return ofTenant(tenant, contextID)(p.loadHead(contextID))
}

func ofTenant(tenant, contextID string) func(head, error) (head, error) {
	return func(h head, err error) (head, error) {
		if err == nil && h.Tenant != tenant {
			return head{}, errs.E(errs.NotFound, "context %s not found", contextID)
		}
		return h, err
	}
}

func putJSON(b *pebble.Batch, k []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return errs.Wrap(errs.Internal, err, "store: encode record")
	}
	return b.Set(k, data, nil)
}

// get returns a copy of the value under k.
func (p *Pebble) get(k []byte) ([]byte, bool, error) {
	v, closer, err := p.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, errs.Wrap(errs.Internal, err, "store: read")
	}
	defer closer.Close()
	return append([]byte{}, v...), true, nil
}

// has reports whether any key lies in [lower, upper).
func (p *Pebble) has(lower, upper []byte) (bool, error) {
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return false, errs.Wrap(errs.Internal, err, "store: iterate")
	}
	found := it.First()
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return false, errs.Wrap(errs.Internal, err, "store: iterate")
	}
	return found, nil
}

// commit applies b durably (fsync'd WAL) and closes it.
func commit(b *pebble.Batch) error {
	defer b.Close()
	if err := b.Commit(pebble.Sync); err != nil {
		return errs.Wrap(errs.Internal, err, "store: commit batch")
	}
	return nil
}

// pebbleLogger routes Pebble's messages to slog (its informational chatter at debug
// level). Fatalf panics: Pebble calls it only
// for invariant violations after which it must not go on.
type pebbleLogger struct{ l *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.l.Debug("pebble: " + fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.l.Error("pebble: " + fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := "pebble: " + fmt.Sprintf(format, args...)
	l.l.Error(msg)
	panic(msg)
}
