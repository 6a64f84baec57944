package store_test

import (
	"testing"
	"time"

	"github.com/circlegate/circlegate/store"
)

func sampleTx() store.Tx {
	return store.Tx{
		Seq:        3,
		ID:         "tx-3",
		PrevHash:   "aa",
		Method:     "inc",
		ArgsDigest: "bb",
		Caller:     "02cc",
		Time:       time.Unix(1700000000, 123456789),
		Writes: []store.Write{
			{Key: []byte("k1"), Value: []byte("v1")},
			{Key: []byte("k2"), Delete: true},
		},
		Events: []store.Event{{Seq: 7, Kind: "StateMutation", Data: []byte(`{"x":1}`)}},
	}
}

func TestTxHashDeterministic(t *testing.T) {
	a, b := sampleTx(), sampleTx()
	if store.TxHash(&a) != store.TxHash(&b) {
		t.Fatalf("equal txs hash differently")
	}
	a.Hash = "ignored"
	if store.TxHash(&a) != store.TxHash(&b) {
		t.Errorf("TxHash covers Hash")
	}
	if h := store.TxHash(&b); len(h) != 64 {
		t.Errorf("TxHash = %q, want 64 hex digits", h)
	}
}

// TestTxHashCoversEveryField: changing any hashed field changes the hash. An event's
// ContextID, TxID, TxSeq and Time are not hashed: they repeat the context's id and the
// tx's ID, Seq and Time.
func TestTxHashCoversEveryField(t *testing.T) {
	base := sampleTx()
	want := store.TxHash(&base)
	tests := map[string]func(tx *store.Tx){
		"seq":               func(tx *store.Tx) { tx.Seq++ },
		"id":                func(tx *store.Tx) { tx.ID += "x" },
		"prevHash":          func(tx *store.Tx) { tx.PrevHash = "ab" },
		"method":            func(tx *store.Tx) { tx.Method = "dec" },
		"argsDigest":        func(tx *store.Tx) { tx.ArgsDigest = "bc" },
		"caller":            func(tx *store.Tx) { tx.Caller = "02cd" },
		"time":              func(tx *store.Tx) { tx.Time = tx.Time.Add(time.Nanosecond) },
		"write key":         func(tx *store.Tx) { tx.Writes[0].Key = []byte("k9") },
		"write value":       func(tx *store.Tx) { tx.Writes[0].Value = []byte("v9") },
		"write to delete":   func(tx *store.Tx) { tx.Writes[0].Delete = true },
		"delete to write":   func(tx *store.Tx) { tx.Writes[1].Delete = false },
		"write added":       func(tx *store.Tx) { tx.Writes = append(tx.Writes, store.Write{Key: []byte("k3")}) },
		"write removed":     func(tx *store.Tx) { tx.Writes = tx.Writes[:1] },
		"writes reordered":  func(tx *store.Tx) { tx.Writes[0], tx.Writes[1] = tx.Writes[1], tx.Writes[0] },
		"key/value split":   func(tx *store.Tx) { tx.Writes[0] = store.Write{Key: []byte("k1v"), Value: []byte("1")} },
		"event seq":         func(tx *store.Tx) { tx.Events[0].Seq++ },
		"event kind":        func(tx *store.Tx) { tx.Events[0].Kind = "Other" },
		"event data":        func(tx *store.Tx) { tx.Events[0].Data = []byte(`{"x":2}`) },
		"event added":       func(tx *store.Tx) { tx.Events = append(tx.Events, store.Event{Seq: 8}) },
		"event removed":     func(tx *store.Tx) { tx.Events = nil },
		"id/method shifted": func(tx *store.Tx) { tx.ID, tx.Method = "tx-3i", "nc" },
	}
	seen := map[string]string{want: "base"}
	for name, mutate := range tests {
		tx := sampleTx()
		mutate(&tx)
		h := store.TxHash(&tx)
		if other, ok := seen[h]; ok {
			t.Errorf("%s: same hash as %s", name, other)
		}
		seen[h] = name
	}
}

// chain returns n txs chained from GenesisPrevHash.
func chain(n int) []store.Tx {
	prev := store.GenesisPrevHash
	txs := make([]store.Tx, n)
	for i := range txs {
		tx := sampleTx()
		tx.Seq, tx.PrevHash = uint64(i), prev
		tx.Hash = store.TxHash(&tx)
		txs[i], prev = tx, tx.Hash
	}
	return txs
}

func TestVerifyChain(t *testing.T) {
	if i := store.VerifyChain(store.GenesisPrevHash, chain(5)); i != -1 {
		t.Fatalf("a valid chain fails at %d", i)
	}
	if i := store.VerifyChain(store.GenesisPrevHash, nil); i != -1 {
		t.Errorf("an empty chain fails at %d", i)
	}
	full := chain(5)
	if i := store.VerifyChain(full[1].Hash, full[2:]); i != -1 {
		t.Errorf("a chain verified from a middle hash fails at %d", i)
	}
	tests := []struct {
		name   string
		mutate func(txs []store.Tx)
		want   int
	}{
		{"changed write", func(txs []store.Tx) { txs[2].Writes[0].Value = []byte("forged") }, 2},
		{"changed event", func(txs []store.Tx) { txs[4].Events[0].Data = nil }, 4},
		{"rehashed tx breaks the next link", func(txs []store.Tx) {
			txs[1].Writes[0].Value = []byte("forged")
			txs[1].Hash = store.TxHash(&txs[1])
		}, 2},
		{"broken prev link", func(txs []store.Tx) {
			txs[3].PrevHash = txs[1].Hash
			txs[3].Hash = store.TxHash(&txs[3])
		}, 3},
		{"reordered", func(txs []store.Tx) { txs[1], txs[2] = txs[2], txs[1] }, 1},
		{"tx dropped", func(txs []store.Tx) { copy(txs[2:], txs[3:]) }, 2},
		{"wrong genesis prev", func(txs []store.Tx) {
			txs[0].PrevHash = "ff"
			txs[0].Hash = store.TxHash(&txs[0])
		}, 0},
	}
	for _, tc := range tests {
		txs := chain(5)
		tc.mutate(txs)
		if got := store.VerifyChain(store.GenesisPrevHash, txs); got != tc.want {
			t.Errorf("%s: VerifyChain = %d, want %d", tc.name, got, tc.want)
		}
	}
}

// TestTxHashGolden pins the hash of a known tx: the chain of every stored context
// depends on TxHash never changing.
func TestTxHashGolden(t *testing.T) {
	tx := sampleTx()
	const want = "2ba739f754b2dced745e1508282c8473143d309d3cefc23a42e50cf6708c52b8"
	if got := store.TxHash(&tx); got != want {
		t.Fatalf("TxHash = %s, want %s", got, want)
	}
}

func BenchmarkTxHash(b *testing.B) {
	tx := sampleTx()
	b.ReportAllocs()
	for b.Loop() {
		store.TxHash(&tx)
	}
}
