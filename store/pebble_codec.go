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
//
// Version 2 (written now) also stores ids, keys and hashes that are lowercase hex
// (context and tx ids, rootHashes, args digests, callers' keys) as their bytes,
// and leaves out of a tx's events what they share with the tx (its context id once
// for all, its id, seq and time): a counter's tx record shrinks from about 425 to
// about 225 bytes, its event from about 160 to about 95, and every byte is written
// to the WAL, the memtable and then each level of the LSM. Version 1 records are
// still read.
//
// Version 3, which the Pebble store writes, is a version 2 tx record that begins
// with the fields of the context's head after the tx that the tx does not hold
// (txHead): the head is then the last tx's, and a commit writes no head record of
// its own (docs/RATIONALE.md). The Redis store keeps its heads in a hash and
// writes version 2.
//
// A version 3 record also marks each event whose RootHash is the tx's Hash (a
// StateMutation event) with the flag evTxHash, so the record holds everything of its
// events and the Pebble store reads a context's history from its tx log
// (pebble_history.go). Version 2 records never carry the flag.
const (
	codecVersion  = 1
	codecVersion2 = 2
	codecVersion3 = 3
)

var errCorrupt = errors.New("store: corrupt record")

// encodeTx encodes tx as a version 2 record.
func encodeTx(tx *Tx) []byte {
	return appendTxBody(append(make([]byte, 0, txSizeHint(tx)), codecVersion2), tx, false)
}

// txHead is what a version 3 tx record holds of its context's head after the tx,
// beside the tx's seq and hash (the head's seq and rootHash).
type txHead struct {
	EventSeq              uint64
	StateKeys, StateBytes int64
	FirstEvent            uint64
}

func txHeadOf(h *head) txHead {
	return txHead{EventSeq: h.EventSeq, StateKeys: h.StateKeys, StateBytes: h.StateBytes, FirstEvent: h.FirstEvent}
}

// encodeTxHead encodes tx as a version 3 record carrying th.
func encodeTxHead(tx *Tx, th txHead) []byte {
	b := make([]byte, 0, txSizeHint(tx)+4*binary.MaxVarintLen64)
	b = append(b, codecVersion3)
	b = binary.AppendUvarint(b, th.EventSeq)
	b = binary.AppendVarint(b, th.StateKeys)
	b = binary.AppendVarint(b, th.StateBytes)
	b = binary.AppendUvarint(b, th.FirstEvent)
	return appendTxBody(b, tx, true)
}

// eventSeqAfter returns the context's eventSeq after the tx of record v, when the
// record tells it: a version 3 record's first field (read without decoding the
// rest), the last event's seq of an older record with events.
func eventSeqAfter(v []byte) (uint64, bool, error) {
	if len(v) > 0 && v[0] == codecVersion3 {
		n, k := binary.Uvarint(v[1:])
		if k <= 0 {
			return 0, false, errCorrupt
		}
		return n, true, nil
	}
	tx, err := decodeTx(v)
	if err != nil || len(tx.Events) == 0 {
		return 0, false, err
	}
	return tx.Events[len(tx.Events)-1].Seq, true, nil
}

// appendTxBody appends what follows the version byte in a version 2 record, and
// what follows the head in a version 3 record (rootHash: mark the events whose
// RootHash is the tx's Hash).
func appendTxBody(b []byte, tx *Tx, rootHash bool) []byte {
	b = binary.AppendUvarint(b, tx.Seq)
	b = appendHexString(b, tx.ID)
	b = appendHexString(b, tx.PrevHash)
	b = appendHexString(b, tx.Hash)
	b = appendString(b, tx.Method)
	b = appendHexString(b, tx.ArgsDigest)
	b = appendHexString(b, tx.Caller)
	b = appendTime(b, tx.Time)
	b = appendWrites(b, tx.Writes)
	b = binary.AppendUvarint(b, uint64(len(tx.Events)))
	if len(tx.Events) > 0 {
		b = appendHexString(b, tx.Events[0].ContextID)
	}
	for i := range tx.Events {
		b = appendTxEvent(b, tx, &tx.Events[i], rootHash)
	}
	return b
}

func appendWrites(b []byte, ws []Write) []byte {
	b = binary.AppendUvarint(b, uint64(len(ws)))
	for _, w := range ws {
		b = appendBytes(b, w.Key)
		if w.Delete {
			b = append(b, 1)
			continue
		}
		b = append(b, 0)
		b = appendBytes(b, w.Value)
	}
	return b
}

// The flags of an event in a version 2 tx record: which fields it shares with the
// tx (or, for the context id, with the tx's first event) and so leaves out.
const (
	evSameContext = 1 << iota
	evSameTxID
	evSameTxSeq
	evSameTime
	evTxHash // version 3 only: the event's RootHash is the tx's Hash
	evFlags  = evSameContext | evSameTxID | evSameTxSeq | evSameTime
)

// appendTxEvent appends an event of tx (whose first event's context id the record
// holds) without the fields it shares with them. With rootHash it marks an event
// whose RootHash is the tx's (non-empty) Hash; any other RootHash is not recorded.
func appendTxEvent(b []byte, tx *Tx, e *Event, rootHash bool) []byte {
	var flags byte
	if rootHash && e.RootHash != "" && e.RootHash == tx.Hash {
		flags |= evTxHash
	}
	if e.ContextID == tx.Events[0].ContextID {
		flags |= evSameContext
	}
	if e.TxID == tx.ID {
		flags |= evSameTxID
	}
	if e.TxSeq == tx.Seq {
		flags |= evSameTxSeq
	}
	if e.Time.Equal(tx.Time) {
		flags |= evSameTime
	}
	b = append(b, flags)
	if flags&evSameContext == 0 {
		b = appendHexString(b, e.ContextID)
	}
	b = binary.AppendUvarint(b, e.Seq)
	if flags&evSameTxID == 0 {
		b = appendHexString(b, e.TxID)
	}
	if flags&evSameTxSeq == 0 {
		b = binary.AppendUvarint(b, e.TxSeq)
	}
	b = appendString(b, e.Kind)
	b = appendBytes(b, e.Data)
	if flags&evSameTime == 0 {
		b = appendTime(b, e.Time)
	}
	return b
}

// txSizeHint is the size of tx's record when its ids and hashes are hex (they take
// half their length); with other ids the record grows once.
func txSizeHint(tx *Tx) int {
	n := 48 + len(tx.Method) + (len(tx.ID)+len(tx.PrevHash)+len(tx.Hash)+len(tx.ArgsDigest)+len(tx.Caller))/2
	for _, w := range tx.Writes {
		n += 12 + len(w.Key) + len(w.Value)
	}
	if len(tx.Events) > 0 {
		n += 2 + len(tx.Events[0].ContextID)/2
	}
	for _, e := range tx.Events {
		n += 16 + len(e.Kind) + len(e.Data)
	}
	return n
}

// encodeEvent encodes one event of a context's history, in both backends: its
// fields as a version 1 tx record has them, then its RootHash, which the tx log
// leaves out; version 2 stores the hex ones as bytes.
func encodeEvent(e *Event) []byte {
	b := make([]byte, 0, 40+(len(e.ContextID)+len(e.TxID)+len(e.RootHash))/2+len(e.Kind)+len(e.Data))
	b = append(b, codecVersion2)
	b = appendHexString(b, e.ContextID)
	b = binary.AppendUvarint(b, e.Seq)
	b = appendHexString(b, e.TxID)
	b = binary.AppendUvarint(b, e.TxSeq)
	b = appendString(b, e.Kind)
	b = appendBytes(b, e.Data)
	b = appendTime(b, e.Time)
	return appendHexString(b, e.RootHash)
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

// appendHexString appends s as its bytes when it is lowercase hex of even length
// (tag 1, then the length-prefixed bytes), else as it is (tag 0, then appendString).
// It decodes and checks in one pass, and takes back what it appended on the first
// byte that is not lowercase hex.
func appendHexString(b []byte, s string) []byte {
	if len(s) == 0 || len(s)%2 != 0 {
		return appendString(append(b, 0), s)
	}
	mark := len(b)
	b = append(b, 1)
	b = binary.AppendUvarint(b, uint64(len(s)/2))
	for i := 0; i < len(s); i += 2 {
		hi, lo := lowerHex[s[i]], lowerHex[s[i+1]]
		if hi|lo == 0xff {
			return appendString(append(b[:mark], 0), s)
		}
		b = append(b, hi<<4|lo)
	}
	return b
}

// lowerHex maps '0'-'9' and 'a'-'f' to their values and every other byte to 0xff.
var lowerHex = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i, c := range "0123456789abcdef" {
		t[c] = byte(i)
	}
	return t
}()

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

// hexString reads what appendHexString wrote.
func (d *decoder) hexString() string {
	switch d.byte() {
	case 0:
		return d.string()
	case 1:
		n := d.uvarint()
		if n == 0 || n > uint64(len(d.b)) {
			d.fail()
			return ""
		}
		s := hex.EncodeToString(d.b[:n])
		d.b = d.b[n:]
		return s
	}
	d.fail()
	return ""
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
	tx, _, err := decodeTxRecord(b)
	return tx, err
}

// decodeTxRecord decodes a tx record of any version, and the head it carries when it
// is version 3 (nil otherwise).
func decodeTxRecord(b []byte) (Tx, *txHead, error) {
	d := &decoder{b: b}
	var tx Tx
	var th *txHead
	switch d.byte() {
	case codecVersion:
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
	case codecVersion3:
		th = &txHead{EventSeq: d.uvarint(), StateKeys: d.varint(), StateBytes: d.varint(), FirstEvent: d.uvarint()}
		fallthrough
	case codecVersion2:
		tx.Seq = d.uvarint()
		tx.ID, tx.PrevHash, tx.Hash = d.hexString(), d.hexString(), d.hexString()
		tx.Method = d.string()
		tx.ArgsDigest, tx.Caller = d.hexString(), d.hexString()
		tx.Time = d.time()
		tx.Writes = decodeWrites(d)
		if n := d.count(4); n > 0 {
			contextID := d.hexString()
			tx.Events = make([]Event, n)
			allowed := byte(evFlags)
			if th != nil {
				allowed |= evTxHash
			}
			for i := range tx.Events {
				tx.Events[i] = decodeTxEvent(d, &tx, contextID, allowed)
			}
		}
	default:
		return Tx{}, nil, errCorrupt
	}
	if err := d.done(); err != nil {
		return Tx{}, nil, err
	}
	return tx, th, nil
}

// decodeTxEvent reads what appendTxEvent wrote; allowed are the flags the record's
// version has.
func decodeTxEvent(d *decoder, tx *Tx, contextID string, allowed byte) Event {
	flags := d.byte()
	if flags&^allowed != 0 || (flags&evTxHash != 0 && tx.Hash == "") {
		d.fail()
		return Event{}
	}
	e := Event{ContextID: contextID, TxID: tx.ID, TxSeq: tx.Seq, Time: tx.Time}
	if flags&evTxHash != 0 {
		e.RootHash = tx.Hash
	}
	if flags&evSameContext == 0 {
		e.ContextID = d.hexString()
	}
	e.Seq = d.uvarint()
	if flags&evSameTxID == 0 {
		e.TxID = d.hexString()
	}
	if flags&evSameTxSeq == 0 {
		e.TxSeq = d.uvarint()
	}
	e.Kind = d.string()
	e.Data = d.bytes()
	if flags&evSameTime == 0 {
		e.Time = d.time()
	}
	return e
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
	var e Event
	switch d.byte() {
	case codecVersion:
		e = decodeEventFields(d)
		e.RootHash = d.string()
	case codecVersion2:
		e.ContextID = d.hexString()
		e.Seq = d.uvarint()
		e.TxID = d.hexString()
		e.TxSeq = d.uvarint()
		e.Kind = d.string()
		e.Data = d.bytes()
		e.Time = d.time()
		e.RootHash = d.hexString()
	default:
		return Event{}, errCorrupt
	}
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
// 32 bytes. Creation and member changes write it (with the JSON record, headKey);
// a commit's tx record carries the same fields (encodeTxHead).
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
