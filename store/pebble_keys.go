package store

import (
	"encoding/binary"
)

// Key layout of the Pebble backend. Every key starts with one byte naming the record
// kind. A string followed by more key bytes (a tenant, an app id, a context id) is
// length-prefixed (uvarint), so no such part is a prefix of another and no record of
// one tenant or context is reachable through another's prefix. The last part is raw,
// so listings come out in id order (and state in key order). Seqs are 8-byte
// big-endian, so iteration runs in seq order.
//
//	'a' |tenant| appID            -> App (JSON)
//	'b' |tenant| appID            -> app blob (wasm bytes)
//	'c' contextID                 -> head (JSON: Context, state counters, oldest event)
//	'h' contextID                 -> the head's seq, rootHash, eventSeq, state counters and
//	                                 oldest event (binary, pebble_codec.go), written at
//	                                 creation and by member changes; it overrides those
//	                                 fields of 'c', and the last 'x' (version 3, which
//	                                 carries them too) overrides it when its seq is greater
//	't' |tenant| contextID        -> empty: the tenant's contexts, in id order
//	'u' |tenant| |appID| contextID -> empty: the app's contexts, for DeleteApp's check
//	's' |contextID| key           -> state value
//	'x' |contextID| seq           -> Tx (binary, pebble_codec.go)
//	'e' |contextID| seq           -> Event (binary, pebble_codec.go) of a member change;
//	                                 a tx's events are in its 'x' record only (data
//	                                 dirs written before have them here too)
//	'i' |contextID| idemKey       -> Idempotency (JSON)
//	'r' |tenant| |kind| id        -> record value (PutRecord)
//
// |s| is uvarint(len(s)) followed by s.
const (
	kindApp     = 'a'
	kindBlob    = 'b'
	kindHead    = 'c'
	kindHot     = 'h'
	kindTenant  = 't'
	kindUsage   = 'u'
	kindState   = 's'
	kindTx      = 'x'
	kindEvent   = 'e'
	kindIdem    = 'i'
	kindRecord  = 'r'
	seqKeyBytes = 8
)

// key starts a key of kind k followed by the length-prefixed parts.
func key(k byte, parts ...string) []byte {
	n := 1
	for _, p := range parts {
		n += binary.MaxVarintLen64 + len(p)
	}
	b := make([]byte, 1, n+seqKeyBytes)
	b[0] = k
	for _, p := range parts {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	return b
}

// cat returns a new slice holding a then b (never aliasing a's spare capacity).
func cat(a []byte, b ...byte) []byte {
	return append(append(make([]byte, 0, len(a)+len(b)+seqKeyBytes), a...), b...)
}

func appKey(tenant, appID string) []byte  { return append(key(kindApp, tenant), appID...) }
func blobKey(tenant, appID string) []byte { return append(key(kindBlob, tenant), appID...) }
func headKey(contextID string) []byte     { return append([]byte{kindHead}, contextID...) }
func hotKey(contextID string) []byte      { return append([]byte{kindHot}, contextID...) }

func tenantKey(tenant, contextID string) []byte {
	return append(key(kindTenant, tenant), contextID...)
}

func usageKey(tenant, appID, contextID string) []byte {
	return append(key(kindUsage, tenant, appID), contextID...)
}

// stateKey is the key of a state entry: the context's state prefix then the raw key.
func stateKey(contextID string, k []byte) []byte {
	return append(key(kindState, contextID), k...)
}

// seqKey is the key of a tx or event record.
func seqKey(kind byte, contextID string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(key(kind, contextID), seq)
}

func recordKey(tenant, kind, id string) []byte {
	return append(key(kindRecord, tenant, kind), id...)
}

func idemKey(contextID, k string) []byte {
	return append(key(kindIdem, contextID), k...)
}

// prefixEnd returns the smallest key greater than every key with prefix p, or nil if
// there is none (p is empty or all 0xff).
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// seqOf decodes the seq at the end of a tx or event key.
func seqOf(k []byte) uint64 {
	return binary.BigEndian.Uint64(k[len(k)-seqKeyBytes:])
}
