package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
)

// GenesisPrevHash is the PrevHash of every context's genesis tx.
const GenesisPrevHash = "0000000000000000000000000000000000000000000000000000000000000000"

// TxHash computes the hash that chains tx to its predecessor: sha256 over a canonical,
// length-prefixed encoding of every field but Hash, in a fixed order. Any change to any
// field, write or event changes it. Both backends, the executor and `circlegate verify`
// use this one function.
func TxHash(tx *Tx) string {
	h := sha256.New()
	putString(h, "circlegate/tx/v1")
	putUint(h, tx.Seq)
	putString(h, tx.ID)
	putString(h, tx.PrevHash)
	putString(h, tx.Method)
	putString(h, tx.ArgsDigest)
	putString(h, tx.Caller)
	putUint(h, uint64(tx.Time.UnixNano()))
	putUint(h, uint64(len(tx.Writes)))
	for _, w := range tx.Writes {
		putBytes(h, w.Key)
		if w.Delete {
			putUint(h, 1)
		} else {
			putUint(h, 0)
			putBytes(h, w.Value)
		}
	}
	putUint(h, uint64(len(tx.Events)))
	for _, e := range tx.Events {
		putUint(h, e.Seq)
		putString(h, e.Kind)
		putBytes(h, e.Data)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func putUint(h hash.Hash, v uint64) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	h.Write(b[:])
}

func putBytes(h hash.Hash, b []byte) {
	putUint(h, uint64(len(b)))
	h.Write(b)
}

func putString(h hash.Hash, s string) {
	putUint(h, uint64(len(s)))
	h.Write([]byte(s))
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
