// Package storetest is the conformance suite every store.Store backend passes. It
// tests only the behaviour that store.go's doc comments promise, through the Store
// interface, so a backend that passes it can replace another.
//
// A backend's test calls Run with a function that opens a fresh, empty store:
//
//	func TestPebble(t *testing.T) {
//		storetest.Run(t, func(t *testing.T, h store.HistoryConfig) store.Store {
//			s, err := store.OpenPebble(store.PebbleConfig{Dir: t.TempDir(), History: h})
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// The tx builders (GenesisTx, NextTx, NewContext, Advance) and CreateContexts are
// exported for other packages' tests that need valid hash-chained txs.
package storetest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/circlegate/circlegate/store"
)

// Opener opens a fresh, empty store whose event history is bounded by h (zero fields
// mean the defaults), and closes it in t.Cleanup.
type Opener func(t *testing.T, h store.HistoryConfig) store.Store

// The tenants the suite uses.
const (
	tenantA = "02a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"
	tenantB = "03b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2"
)

// Run runs the conformance suite against the stores open returns.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"PutAppIdempotent", testPutAppIdempotent},
		{"AppTenantIsolation", testAppTenantIsolation},
		{"ListAppsOrder", testListAppsOrder},
		{"DeleteAppInUse", testDeleteAppInUse},
		{"CreateContext", testCreateContext},
		{"CreateContextErrors", testCreateContextErrors},
		{"ContextTenantIsolation", testContextTenantIsolation},
		{"ListContexts", testListContexts},
		{"UpdateMembers", testUpdateMembers},
		{"GetScan", testGetScan},
		{"ScanBinaryKeys", testScanBinaryKeys},
		{"StateSize", testStateSize},
		{"Snapshots", testSnapshots},
		{"Commit", testCommit},
		{"CommitStale", testCommitStale},
		{"CommitMany", testCommitMany},
		{"CommitStaleEvents", testCommitStaleEvents},
		{"CommitDeletedContext", testCommitDeletedContext},
		{"CommitIdempotencyKeyTaken", testCommitIdempotencyKeyTaken},
		{"DeleteContext", testDeleteContext},
		{"RecreatedContext", testRecreatedContext},
		{"Events", testEvents},
		{"HistoryMaxEvents", testHistoryMaxEvents},
		{"HistoryMaxAge", testHistoryMaxAge},
		{"ParallelContexts", testParallelContexts},
		{"RacingCommits", testRacingCommits},
		{"ReadsSeeCommits", testReadsSeeCommits},
		{"Records", testRecords},
		{"RecordsIsolation", testRecordsIsolation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open) })
	}
}

// Set returns a write that sets k to v.
func Set(k, v string) store.Write { return store.Write{Key: []byte(k), Value: []byte(v)} }

// Del returns a write that deletes k.
func Del(k string) store.Write { return store.Write{Key: []byte(k), Delete: true} }

// GenesisTx returns the genesis tx of a context (seq 0, PrevHash GenesisPrevHash) at
// time at, with writes and one event per kind (seqs 1, 2, ...), Hash filled in.
func GenesisTx(contextID string, at time.Time, writes []store.Write, kinds ...string) store.Tx {
	return buildTx(store.Context{ID: contextID, RootHash: store.GenesisPrevHash}, 0, at, writes, kinds)
}

// NextTx returns the tx that follows head: seq head.Seq+1, PrevHash head.RootHash,
// one event per kind numbered from head.EventSeq+1, Hash filled in.
func NextTx(head store.Context, at time.Time, writes []store.Write, kinds ...string) store.Tx {
	return buildTx(head, head.Seq+1, at, writes, kinds)
}

func buildTx(head store.Context, seq uint64, at time.Time, writes []store.Write, kinds []string) store.Tx {
	digest := sha256.Sum256([]byte(fmt.Sprintf("args %d", seq)))
	tx := store.Tx{
		Seq:        seq,
		ID:         fmt.Sprintf("%s-tx-%d", head.ID, seq),
		PrevHash:   head.RootHash,
		Method:     "apply",
		ArgsDigest: hex.EncodeToString(digest[:]),
		Caller:     "caller-" + head.ID,
		Time:       at,
		Writes:     writes,
	}
	for i, kind := range kinds {
		tx.Events = append(tx.Events, store.Event{
			ContextID: head.ID,
			Seq:       head.EventSeq + 1 + uint64(i),
			TxID:      tx.ID,
			TxSeq:     seq,
			Kind:      kind,
			Data:      []byte(fmt.Sprintf(`{"i":%d}`, i)),
			Time:      at,
		})
	}
	tx.Hash = store.TxHash(&tx)
	if len(tx.Events) > 0 {
		// As the worker does for its StateMutation event: the root hash rides on the
		// tx's first event, outside the hash, and history must keep it.
		tx.Events[0].RootHash = tx.Hash
	}
	return tx
}

// NewContext returns the context whose genesis tx is genesis: Seq, RootHash and
// EventSeq match it; Owner is "owner", who is also the only member.
func NewContext(tenant, appID, contextID string, genesis store.Tx) store.Context {
	return Advance(store.Context{
		ID:        contextID,
		Tenant:    tenant,
		AppID:     appID,
		Owner:     "owner",
		Members:   []string{"owner"},
		CreatedAt: genesis.Time,
	}, genesis)
}

// CreateContexts stores an app of tenant in s and creates a fresh context of it
// under each of ids, returning their heads.
func CreateContexts(tb testing.TB, s store.Store, tenant string, ids ...string) []store.Context {
	tb.Helper()
	app, _, err := s.PutApp(tb.Context(), store.App{Tenant: tenant}, []byte("app"))
	if err != nil {
		tb.Fatal(err)
	}
	heads := make([]store.Context, len(ids))
	for i, id := range ids {
		g := GenesisTx(id, time.Now(), nil)
		heads[i] = NewContext(tenant, app.ID, id, g)
		if err := s.CreateContext(tb.Context(), heads[i], g); err != nil {
			tb.Fatal(err)
		}
	}
	return heads
}

// Advance returns head after tx: its Seq, RootHash and EventSeq.
func Advance(head store.Context, tx store.Tx) store.Context {
	head.Seq, head.RootHash = tx.Seq, tx.Hash
	if n := len(tx.Events); n > 0 {
		head.EventSeq = tx.Events[n-1].Seq
	}
	return head
}

// newID returns a random 128-bit hex id, like the ids of real contexts.
func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}
