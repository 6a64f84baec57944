package store

import (
	"bytes"
	"fmt"

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

// OverwriteTx replaces the stored record of one tx, keeping the head it carries
// (tests only: to simulate a corrupted or tampered log).
func OverwriteTx(p *Pebble, contextID string, tx Tx) {
	k := seqKey(kindTx, contextID, tx.Seq)
	v, ok, err := p.get(k)
	if err != nil || !ok {
		panic(fmt.Sprintf("tx %d of %s: %v", tx.Seq, contextID, err))
	}
	rec := encodeTx(&tx)
	if _, th, err := decodeTxRecord(v); err == nil && th != nil {
		rec = encodeTxHead(&tx, *th)
	}
	if err := p.db.Set(k, rec, pebble.Sync); err != nil {
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

// HotSeq returns the seq of a context's binary head record, if it has one (tests
// only).
func HotSeq(p *Pebble, contextID string) (uint64, bool) {
	v, ok, err := p.get(hotKey(contextID))
	if err != nil || !ok {
		return 0, false
	}
	var h head
	if err := decodeHot(v, &h); err != nil {
		panic(err)
	}
	return h.Seq, true
}

// WriteOldCommitHead makes a context's last commit look as the store wrote it before
// tx records carried the head: the tx as a version 2 record and the head in the
// binary head record. With head false it writes only the tx, as no version did
// (tests only).
func WriteOldCommitHead(p *Pebble, contextID string, withHead bool) {
	h, err := p.decodeHead(contextID)
	if err != nil {
		panic(err)
	}
	tx, _, found, err := p.lastTx(contextID)
	if err != nil || !found {
		panic(fmt.Sprintf("last tx of %s: %v", contextID, err))
	}
	b := p.db.NewBatch()
	_ = b.Set(seqKey(kindTx, contextID, tx.Seq), encodeTx(&tx), nil)
	if withHead {
		_ = b.Set(hotKey(contextID), encodeHot(&h), nil)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		panic(err)
	}
}

// WriteLegacyHistory makes a context's log and history look as the store wrote them
// before tx records carried the head and their events' root hashes: every tx as a
// version 2 record, every event of history in an event record, and the head in the
// binary head record (tests only).
func WriteLegacyHistory(p *Pebble, contextID string) {
	h, err := p.decodeHead(contextID)
	if err != nil {
		panic(err)
	}
	prefix := key(kindTx, contextID)
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		panic(err)
	}
	b := p.db.NewBatch()
	for ok := it.First(); ok; ok = it.Next() {
		tx, err := decodeTx(it.Value())
		if err != nil {
			panic(err)
		}
		_ = b.Set(append([]byte(nil), it.Key()...), encodeTx(&tx), nil)
		for i := range tx.Events {
			if tx.Events[i].Seq >= h.FirstEvent {
				_ = b.Set(seqKey(kindEvent, contextID, tx.Events[i].Seq), encodeEvent(&tx.Events[i]), nil)
			}
		}
	}
	if err := it.Close(); err != nil {
		panic(err)
	}
	_ = b.Set(hotKey(contextID), encodeHot(&h), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		panic(err)
	}
}

// DeleteEventRecord deletes one event record of a context (tests only: to simulate
// a damaged history).
func DeleteEventRecord(p *Pebble, contextID string, seq uint64) {
	if err := p.db.Delete(seqKey(kindEvent, contextID, seq), pebble.Sync); err != nil {
		panic(err)
	}
}
