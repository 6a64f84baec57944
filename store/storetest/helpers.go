package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/store"
)

// newStore opens a store and, before it is closed, checks the hash chain of every
// context of the suite's tenants.
func newStore(t *testing.T, open Opener, h store.HistoryConfig) store.Store {
	t.Helper()
	s := open(t, h)
	t.Cleanup(func() {
		for _, tenant := range []string{tenantA, tenantB} {
			cs, err := s.ListContexts(context.Background(), tenant)
			if err != nil {
				t.Errorf("ListContexts(%s): %v", tenant, err)
			}
			for _, c := range cs {
				verifyChain(t, s, c)
			}
		}
	})
	return s
}

// installApp installs blob in tenant and returns the app.
func installApp(t *testing.T, s store.Store, tenant, blob string) store.App {
	t.Helper()
	app, _, err := s.PutApp(t.Context(), store.App{
		ID:          appID(blob),
		Tenant:      tenant,
		Name:        "app-" + blob,
		InstalledAt: time.Now().UTC(),
		InstalledBy: "installer",
	}, []byte(blob))
	if err != nil {
		t.Fatalf("PutApp: %v", err)
	}
	return app
}

func appID(blob string) string {
	sum := sha256.Sum256([]byte(blob))
	return hex.EncodeToString(sum[:])
}

// createContext creates a context of app with a random id, a genesis tx with writes
// and a "ContextCreated" event, and returns it.
func createContext(t *testing.T, s store.Store, tenant, app string, writes ...store.Write) store.Context {
	t.Helper()
	id := newID()
	g := GenesisTx(id, time.Now(), writes, "ContextCreated")
	c := NewContext(tenant, app, id, g)
	if err := s.CreateContext(t.Context(), c, g); err != nil {
		t.Fatalf("CreateContext: %v", err)
	}
	return c
}

// commitNext commits the tx after head (at the current time) and returns the new head.
func commitNext(t *testing.T, s store.Store, head store.Context, writes []store.Write, kinds ...string) store.Context {
	t.Helper()
	tx := NextTx(head, time.Now(), writes, kinds...)
	err := s.Commit(t.Context(), store.Commit{Tenant: head.Tenant, ContextID: head.ID, ExpectedSeq: head.Seq, Tx: tx})
	if err != nil {
		t.Fatalf("Commit seq %d: %v", tx.Seq, err)
	}
	return Advance(head, tx)
}

// allTxs reads a context's whole tx log in pages.
func allTxs(t *testing.T, s store.Store, contextID string) []store.Tx {
	t.Helper()
	var txs []store.Tx
	for {
		page, err := s.TxLog(context.Background(), contextID, uint64(len(txs)), 64)
		if err != nil {
			t.Fatalf("TxLog: %v", err)
		}
		if len(page) == 0 {
			return txs
		}
		txs = append(txs, page...)
	}
}

// verifyChain checks a context's log holds seqs 0..Seq, chains from GenesisPrevHash
// and ends at its RootHash.
func verifyChain(t *testing.T, s store.Store, c store.Context) {
	t.Helper()
	txs := allTxs(t, s, c.ID)
	if uint64(len(txs)) != c.Seq+1 {
		t.Errorf("context %s: log holds %d txs, seq is %d", c.ID, len(txs), c.Seq)
		return
	}
	for i := range txs {
		if txs[i].Seq != uint64(i) {
			t.Errorf("context %s: tx %d has seq %d", c.ID, i, txs[i].Seq)
		}
	}
	if i := store.VerifyChain(store.GenesisPrevHash, txs); i >= 0 {
		t.Errorf("context %s: chain broken at tx %d", c.ID, i)
	}
	if last := txs[len(txs)-1].Hash; last != c.RootHash {
		t.Errorf("context %s: last hash %s, rootHash %s", c.ID, last, c.RootHash)
	}
}

// wantKind fails unless err carries kind k.
func wantKind(t *testing.T, what string, err error, k errs.Kind) {
	t.Helper()
	if err == nil || !errs.Is(err, k) {
		t.Errorf("%s: error %v, want kind %s", what, err, k)
	}
}

func wantStale(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, store.ErrStale) {
		t.Errorf("%s: error %v, want ErrStale", what, err)
	}
}

func mustGetContext(t *testing.T, s store.Store, tenant, id string) store.Context {
	t.Helper()
	c, err := s.GetContext(t.Context(), tenant, id)
	if err != nil {
		t.Fatalf("GetContext(%s): %v", id, err)
	}
	return c
}

// sameContext fails unless got equals want (times compared with Equal, members as
// sets are not enough: order is kept).
func sameContext(t *testing.T, what string, got, want store.Context) {
	t.Helper()
	if !reflect.DeepEqual(normContext(got), normContext(want)) {
		t.Errorf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

func normContext(c store.Context) store.Context {
	c.CreatedAt = c.CreatedAt.UTC()
	if len(c.Members) == 0 {
		c.Members = nil
	}
	return c
}

// sameTxs fails unless got and want hold the same txs, field by field.
func sameTxs(t *testing.T, what string, got, want []store.Tx) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d txs, want %d", what, len(got), len(want))
		return
	}
	for i := range got {
		if g, w := normTx(got[i]), normTx(want[i]); !reflect.DeepEqual(g, w) {
			t.Errorf("%s: tx %d:\n got  %+v\n want %+v", what, i, g, w)
		}
	}
}

func normTx(tx store.Tx) store.Tx {
	tx.Time = tx.Time.UTC()
	ws := make([]store.Write, len(tx.Writes))
	for i, w := range tx.Writes {
		ws[i] = store.Write{Key: normBytes(w.Key), Value: normBytes(w.Value), Delete: w.Delete}
	}
	tx.Writes = ws
	tx.Events = normEvents(tx.Events)
	for i := range tx.Events {
		// The tx log need not keep an event's RootHash: it is the tx's own Hash.
		tx.Events[i].RootHash = ""
	}
	return tx
}

func normEvents(evs []store.Event) []store.Event {
	out := make([]store.Event, len(evs))
	for i, e := range evs {
		e.Time, e.Data = e.Time.UTC(), normBytes(e.Data)
		out[i] = e
	}
	return out
}

func normBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// SameEvents fails t unless got and want hold the same events, field by field
// (times compared in UTC).
func SameEvents(t *testing.T, what string, got, want []store.Event) {
	t.Helper()
	if g, w := normEvents(got), normEvents(want); !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got  %+v\n want %+v", what, g, w)
	}
}

// EventSeqs returns the seqs of evs.
func EventSeqs(evs []store.Event) []uint64 {
	seqs := make([]uint64, len(evs))
	for i, e := range evs {
		seqs[i] = e.Seq
	}
	return seqs
}

// seqRange returns lo, lo+1, ..., hi.
func seqRange(lo, hi uint64) []uint64 {
	seqs := []uint64{}
	for s := lo; s <= hi; s++ {
		seqs = append(seqs, s)
	}
	return seqs
}

// kvKeys returns the keys of kvs as strings.
func kvKeys(kvs []store.KV) []string {
	keys := make([]string, len(kvs))
	for i, kv := range kvs {
		keys[i] = string(kv.Key)
	}
	return keys
}

// sortedKeys returns the keys sorted by bytes.
func sortedKeys(keys []string) []string {
	out := slices.Clone(keys)
	slices.SortFunc(out, func(a, b string) int { return bytes.Compare([]byte(a), []byte(b)) })
	return out
}

// snapshot is everything the suite can read about a context.
type snapshot struct {
	head   store.Context
	state  []store.KV
	txs    []store.Tx
	events []store.Event
	oldest uint64
	keys   int64
	bytes  int64
}

func takeSnapshot(t *testing.T, s store.Store, tenant, id string) snapshot {
	t.Helper()
	var sn snapshot
	var err error
	sn.head = mustGetContext(t, s, tenant, id)
	if sn.state, err = s.Scan(t.Context(), id, nil, nil, 10000); err != nil {
		t.Fatalf("Scan: %v", err)
	}
	sn.txs = allTxs(t, s, id)
	if sn.events, sn.oldest, err = s.Events(t.Context(), id, 0, 10000); err != nil {
		t.Fatalf("Events: %v", err)
	}
	if sn.keys, sn.bytes, err = s.StateSize(t.Context(), id); err != nil {
		t.Fatalf("StateSize: %v", err)
	}
	return sn
}

func sameSnapshot(t *testing.T, what string, got, want snapshot) {
	t.Helper()
	sameContext(t, what+": head", got.head, want.head)
	if !reflect.DeepEqual(normKVs(got.state), normKVs(want.state)) {
		t.Errorf("%s: state %q, want %q", what, got.state, want.state)
	}
	sameTxs(t, what+": log", got.txs, want.txs)
	SameEvents(t, what+": events", got.events, want.events)
	if got.oldest != want.oldest || got.keys != want.keys || got.bytes != want.bytes {
		t.Errorf("%s: oldest, keys, bytes = %d, %d, %d, want %d, %d, %d", what,
			got.oldest, got.keys, got.bytes, want.oldest, want.keys, want.bytes)
	}
}

func normKVs(kvs []store.KV) []store.KV {
	out := make([]store.KV, len(kvs))
	for i, kv := range kvs {
		out[i] = store.KV{Key: normBytes(kv.Key), Value: normBytes(kv.Value)}
	}
	return out
}
