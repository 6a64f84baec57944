package store

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"time"
)

// The tx log and the event history are the bulk of what a context writes, so they use
// a compact binary encoding: uvarint lengths and integers, a leading version byte.
// Times are stored as Unix seconds and nanoseconds and decode in UTC.
const codecVersion = 1

var errCorrupt = errors.New("store: corrupt record")

func encodeTx(tx *Tx) []byte {
	b := make([]byte, 0, txSizeHint(tx))
	b = append(b, codecVersion)
	b = binary.AppendUvarint(b, tx.Seq)
	for _, s := range [...]string{tx.ID, tx.PrevHash, tx.Hash, tx.Method, tx.ArgsDigest, tx.Caller} {
		b = appendString(b, s)
	}
	b = appendTime(b, tx.Time)
	b = binary.AppendUvarint(b, uint64(len(tx.Writes)))
	for _, w := range tx.Writes {
		b = appendBytes(b, w.Key)
		if w.Delete {
			b = append(b, 1)
			continue
		}
		b = append(b, 0)
		b = appendBytes(b, w.Value)
	}
	b = binary.AppendUvarint(b, uint64(len(tx.Events)))
	for i := range tx.Events {
		b = appendEvent(b, &tx.Events[i])
	}
	return b
}

func txSizeHint(tx *Tx) int {
	n := 64 + len(tx.ID) + len(tx.PrevHash) + len(tx.Hash) + len(tx.Method) +
		len(tx.ArgsDigest) + len(tx.Caller)
	for _, w := range tx.Writes {
		n += 12 + len(w.Key) + len(w.Value)
	}
	for _, e := range tx.Events {
		n += 48 + len(e.ContextID) + len(e.TxID) + len(e.Kind) + len(e.Data)
	}
	return n
}

// encodeEvent encodes one event of a context's history, in both backends: its
// fields as the tx log has them, then its RootHash, which the tx log leaves out.
func encodeEvent(e *Event) []byte {
	b := make([]byte, 0, 64+len(e.ContextID)+len(e.TxID)+len(e.Kind)+len(e.Data)+len(e.RootHash))
	b = appendEvent(append(b, codecVersion), e)
	return appendString(b, e.RootHash)
}

func appendEvent(b []byte, e *Event) []byte {
	b = appendString(b, e.ContextID)
	b = binary.AppendUvarint(b, e.Seq)
	b = appendString(b, e.TxID)
	b = binary.AppendUvarint(b, e.TxSeq)
	b = appendString(b, e.Kind)
	b = appendBytes(b, e.Data)
	return appendTime(b, e.Time)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendTime(b []byte, t time.Time) []byte {
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// decoder reads what the append functions wrote. The first error sticks; every
// length is checked against the bytes left, so corrupt input never panics.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errCorrupt
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

// bytes returns a copy of the next length-prefixed bytes; nil when empty.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	if n == 0 {
		return nil
	}
	v := append([]byte(nil), d.b[:n]...)
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) time() time.Time {
	sec := d.varint()
	nsec := d.uvarint()
	if nsec >= uint64(time.Second) {
		d.fail()
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

// count reads a slice length, refusing one that the bytes left cannot hold (each
// element takes at least min bytes).
func (d *decoder) count(min int) int {
	n := d.uvarint()
	if n > uint64(len(d.b)/min) {
		d.fail()
		return 0
	}
	return int(n)
}

func decodeTx(b []byte) (Tx, error) {
	d := &decoder{b: b}
	if d.byte() != codecVersion {
		return Tx{}, errCorrupt
	}
	var tx Tx
	tx.Seq = d.uvarint()
	for _, s := range [...]*string{&tx.ID, &tx.PrevHash, &tx.Hash, &tx.Method, &tx.ArgsDigest, &tx.Caller} {
		*s = d.string()
	}
	tx.Time = d.time()
	tx.Writes = decodeWrites(d)
	if n := d.count(8); n > 0 {
		tx.Events = make([]Event, n)
		for i := range tx.Events {
			tx.Events[i] = decodeEventFields(d)
		}
	}
	return tx, d.done()
}

func decodeWrites(d *decoder) []Write {
	n := d.count(2)
	if n == 0 {
		return nil
	}
	ws := make([]Write, n)
	for i := range ws {
		ws[i].Key = d.bytes()
		switch d.byte() {
		case 0:
			ws[i].Value = d.bytes()
		case 1:
			ws[i].Delete = true
		default:
			d.fail()
		}
	}
	return ws
}

// decodeEvent decodes what encodeEvent encoded.
func decodeEvent(b []byte) (Event, error) {
	d := &decoder{b: b}
	if d.byte() != codecVersion {
		return Event{}, errCorrupt
	}
	e := decodeEventFields(d)
	e.RootHash = d.string()
	return e, d.done()
}

func decodeEventFields(d *decoder) Event {
	var e Event
	e.ContextID = d.string()
	e.Seq = d.uvarint()
	e.TxID = d.string()
	e.TxSeq = d.uvarint()
	e.Kind = d.string()
	e.Data = d.bytes()
	e.Time = d.time()
	return e
}

// done reports the sticky error, or errCorrupt if bytes are left over.
func (d *decoder) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = errCorrupt
	}
	return d.err
}

// encodeHot encodes what a commit changes in a head: seq, rootHash, eventSeq, the
// state counters and the oldest event. A rootHash of 64 hex digits is stored as its
// 32 bytes. The rest of the head changes only with UpdateMembers (JSON, headKey).
func encodeHot(h *head) []byte {
	b := make([]byte, 0, 64)
	b = append(b, codecVersion)
	b = binary.AppendUvarint(b, h.Seq)
	if raw, err := hex.DecodeString(h.RootHash); err == nil && len(raw) == 32 && hex.EncodeToString(raw) == h.RootHash {
		b = append(append(b, 1), raw...)
	} else {
		b = appendString(append(b, 0), h.RootHash)
	}
	b = binary.AppendUvarint(b, h.EventSeq)
	b = binary.AppendVarint(b, h.StateKeys)
	b = binary.AppendVarint(b, h.StateBytes)
	return binary.AppendUvarint(b, h.FirstEvent)
}

// decodeHot sets the fields encodeHot wrote.
func decodeHot(b []byte, h *head) error {
	d := &decoder{b: b}
	if d.byte() != codecVersion {
		return errCorrupt
	}
	seq := d.uvarint()
	var root string
	switch d.byte() {
	case 0:
		root = d.string()
	case 1:
		if len(d.b) < 32 {
			d.fail()
			break
		}
		root = hex.EncodeToString(d.b[:32])
		d.b = d.b[32:]
	default:
		d.fail()
	}
	eventSeq := d.uvarint()
	keys, size := d.varint(), d.varint()
	first := d.uvarint()
	if err := d.done(); err != nil {
		return err
	}
	h.Seq, h.RootHash, h.EventSeq, h.StateKeys, h.StateBytes, h.FirstEvent = seq, root, eventSeq, keys, size, first
	return nil
}
