package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// GenesisPrevHash is the PrevHash of every context's genesis tx.
const GenesisPrevHash = "0000000000000000000000000000000000000000000000000000000000000000"

// TxHash computes the hash that chains tx to its predecessor: sha256 over a canonical,
// length-prefixed encoding of every field but Hash, in a fixed order. Any change to any
// field, write or event changes it. Both backends, the executor and `circlegate verify`
// use this one function.
func TxHash(tx *Tx) string {
	var stack [512]byte
	b := appendTxCanonical(stack[:0], tx)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// appendTxCanonical appends what TxHash hashes: big-endian u64 integers, and strings
// and byte strings as their u64 length then their bytes.
func appendTxCanonical(b []byte, tx *Tx) []byte {
	b = appendHashString(b, "circlegate/tx/v1")
	b = binary.BigEndian.AppendUint64(b, tx.Seq)
	b = appendHashString(b, tx.ID)
	b = appendHashString(b, tx.PrevHash)
	b = appendHashString(b, tx.Method)
	b = appendHashString(b, tx.ArgsDigest)
	b = appendHashString(b, tx.Caller)
	b = binary.BigEndian.AppendUint64(b, uint64(tx.Time.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, uint64(len(tx.Writes)))
	for _, w := range tx.Writes {
		b = appendHashBytes(b, w.Key)
		if w.Delete {
			b = binary.BigEndian.AppendUint64(b, 1)
		} else {
			b = binary.BigEndian.AppendUint64(b, 0)
			b = appendHashBytes(b, w.Value)
		}
	}
	b = binary.BigEndian.AppendUint64(b, uint64(len(tx.Events)))
	for _, e := range tx.Events {
		b = binary.BigEndian.AppendUint64(b, e.Seq)
		b = appendHashString(b, e.Kind)
		b = appendHashBytes(b, e.Data)
	}
	return b
}

func appendHashBytes(b, v []byte) []byte {
	return append(binary.BigEndian.AppendUint64(b, uint64(len(v))), v...)
}

func appendHashString(b []byte, s string) []byte {
	return append(binary.BigEndian.AppendUint64(b, uint64(len(s))), s...)
}

// VerifyChain checks that txs (consecutive, in order) chain from prev: each PrevHash is
// the previous Hash and each Hash is TxHash of the tx. It returns the index of the first
// broken tx, or -1.
func VerifyChain(prev string, txs []Tx) int {
	for i := range txs {
		if txs[i].PrevHash != prev || TxHash(&txs[i]) != txs[i].Hash {
			return i
		}
		prev = txs[i].Hash
	}
	return -1
}

// VerifyContext reads a context's tx log up to c's head and checks that it chains
// from the genesis tx to it: consecutive seqs from 0, every hash and link valid, the
// tx at the head's Seq hashing to its RootHash. Txs committed after c was read are
// not read, so a store that is being written to (a running fleet) verifies too.
func VerifyContext(ctx context.Context, st Store, c Context) error {
	prev, next := GenesisPrevHash, uint64(0)
	for next <= c.Seq {
		txs, err := st.TxLog(ctx, c.ID, next, int(min(512, c.Seq+1-next)))
		if err != nil {
			return err
		}
		if len(txs) == 0 {
			break
		}
		for i := range txs {
			if txs[i].Seq != next {
				return fmt.Errorf("context %s: tx seq %d where %d was expected", c.ID, txs[i].Seq, next)
			}
			if VerifyChain(prev, txs[i:i+1]) >= 0 {
				return fmt.Errorf("context %s: tx %d breaks the hash chain", c.ID, next)
			}
			prev, next = txs[i].Hash, next+1
		}
	}
	switch {
	case next == 0:
		return fmt.Errorf("context %s: no genesis tx", c.ID)
	case next-1 != c.Seq || prev != c.RootHash:
		return fmt.Errorf("context %s: log ends at seq %d hash %s, head says seq %d hash %s", c.ID, next-1, prev, c.Seq, c.RootHash)
	}
	return nil
}

// VerifyHistory reads a context's event history up to c's EventSeq and checks that it
// is whole: events of c's context with seqs following one another from the oldest
// held to c.EventSeq. Events appended after c was read are not read, and history that
// a running fleet trims meanwhile is skipped, so a store being written to verifies
// too. It returns the number of events read.
func VerifyHistory(ctx context.Context, st Store, c Context) (int, error) {
	var next uint64 // the seq the next event must have; 0 until the first page
	n := 0
	for next <= c.EventSeq {
		evs, oldest, err := st.Events(ctx, c.ID, next, 512)
		if err != nil {
			return n, fmt.Errorf("context %s: history: %w", c.ID, err)
		}
		if oldest == 0 {
			return n, nil // no history held (any more: it expired meanwhile)
		}
		next = max(next, oldest) // trimmed meanwhile, or the first page
		if len(evs) == 0 {
			break
		}
		for _, e := range evs {
			if e.Seq > c.EventSeq {
				return n, nil
			}
			if e.Seq != next || e.ContextID != c.ID {
				return n, fmt.Errorf("context %s: history has event %d of context %s where event %d was expected", c.ID, e.Seq, e.ContextID, next)
			}
			next++
			n++
		}
	}
	if next != c.EventSeq+1 {
		return n, fmt.Errorf("context %s: history ends at event %d, head says eventSeq %d", c.ID, next-1, c.EventSeq)
	}
	return n, nil
}
