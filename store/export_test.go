package store

import (
	"bytes"

	"github.com/cockroachdb/pebble/v2"
)

// PebbleKeysContaining returns every key of the database that contains sub (tests
// only: it scans everything).
func PebbleKeysContaining(p *Pebble, sub string) []string {
	it, err := p.db.NewIter(&pebble.IterOptions{})
	if err != nil {
		panic(err)
	}
	defer it.Close()
	var keys []string
	for ok := it.First(); ok; ok = it.Next() {
		if bytes.Contains(it.Key(), []byte(sub)) {
			keys = append(keys, string(it.Key()))
		}
	}
	return keys
}

// StoredEventSeqs returns the seqs of the event records on disk for a context,
// expired or not.
func StoredEventSeqs(p *Pebble, contextID string) []uint64 {
	prefix := key(kindEvent, contextID)
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		panic(err)
	}
	defer it.Close()
	var seqs []uint64
	for ok := it.First(); ok; ok = it.Next() {
		seqs = append(seqs, seqOf(it.Key()))
	}
	return seqs
}

// OverwriteTx replaces the stored record of one tx (tests only: to simulate a
// corrupted or tampered log).
func OverwriteTx(p *Pebble, contextID string, tx Tx) {
	if err := p.db.Set(seqKey(kindTx, contextID, tx.Seq), encodeTx(&tx), pebble.Sync); err != nil {
		panic(err)
	}
}

// WriteLegacyHead rewrites a context's head as the store wrote it before the binary
// head record: the whole head as JSON, and no binary record (tests only).
func WriteLegacyHead(p *Pebble, contextID string) {
	h, err := p.decodeHead(contextID)
	if err != nil {
		panic(err)
	}
	b := p.db.NewBatch()
	_ = b.Delete(hotKey(contextID), nil)
	if err := putJSON(b, headKey(contextID), &h); err != nil {
		panic(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		panic(err)
	}
}
