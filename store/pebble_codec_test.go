package store

import (
	"encoding/binary"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func codecSample() Tx {
	return Tx{
		Seq: 9, ID: "tx", PrevHash: "p", Hash: "h", Method: "m", ArgsDigest: "a", Caller: "c",
		Time: time.Unix(1700000000, 999999999).UTC(),
		Writes: []Write{
			{Key: []byte("\x00k"), Value: []byte("\xffv")},
			{Key: []byte("gone"), Delete: true},
			{Key: []byte("empty")},
		},
		Events: []Event{
			{ContextID: "ctx", Seq: 3, TxID: "tx", TxSeq: 9, Kind: "K", Data: []byte("{}"),
				Time: time.Unix(-5, 1).UTC()},
			{Seq: 4},
		},
	}
}

func TestCodecRoundTrip(t *testing.T) {
	for _, tx := range []Tx{codecSample(), {}, {Time: time.Unix(0, 0).UTC()}} {
		got, err := decodeTx(encodeTx(&tx))
		if err != nil {
			t.Fatalf("decodeTx: %v", err)
		}
		if !reflect.DeepEqual(got, tx) {
			t.Errorf("round trip:\n got  %+v\n want %+v", got, tx)
		}
		if TxHash(&got) != TxHash(&tx) {
			t.Errorf("round trip changed the hash")
		}
	}
	ev := codecSample().Events[0]
	ev.RootHash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	got, err := decodeEvent(encodeEvent(&ev))
	if err != nil || !reflect.DeepEqual(got, ev) {
		t.Errorf("event round trip = %+v, %v", got, err)
	}
}

// TestCodecTxHead: a version 3 record decodes to the same tx as version 2 and to
// the head it carries; versions 1 and 2 carry none.
func TestCodecTxHead(t *testing.T) {
	for _, tx := range []Tx{codecSample(), hexSample(), {}} {
		for _, th := range []txHead{{}, {EventSeq: 1 << 40, StateKeys: -3, StateBytes: 1 << 50, FirstEvent: 7}} {
			got, gotHead, err := decodeTxRecord(encodeTxHead(&tx, th))
			if err != nil {
				t.Fatalf("decodeTxRecord: %v", err)
			}
			if !reflect.DeepEqual(got, tx) || gotHead == nil || *gotHead != th {
				t.Errorf("round trip = %+v, %+v; want %+v, %+v", got, gotHead, tx, th)
			}
			if plain, err := decodeTx(encodeTxHead(&tx, th)); err != nil || !reflect.DeepEqual(plain, tx) {
				t.Errorf("decodeTx of version 3 = %+v, %v", plain, err)
			}
		}
		for _, b := range [][]byte{encodeTx(&tx), encodeTxV1(&tx)} {
			if _, th, err := decodeTxRecord(b); err != nil || th != nil {
				t.Errorf("a version %d record carries head %+v (err %v)", b[0], th, err)
			}
		}
	}
}

// TestCodecEventSeqAfter: the eventSeq after a tx comes from a version 3 record's
// head, from an older record's last event, from nowhere for an older record without
// events, and a truncated version 3 record is corrupt.
func TestCodecEventSeqAfter(t *testing.T) {
	hx := hexSample() // events 6 and 7
	empty := hx
	empty.Events = nil
	for _, tc := range []struct {
		name  string
		rec   []byte
		want  uint64
		found bool
	}{
		{"version 3", encodeTxHead(&empty, txHead{EventSeq: 41}), 41, true},
		{"version 2 with events", encodeTx(&hx), 7, true},
		{"version 1 with events", encodeTxV1(&hx), 7, true},
		{"version 2 without events", encodeTx(&empty), 0, false},
	} {
		if got, found, err := eventSeqAfter(tc.rec); err != nil || got != tc.want || found != tc.found {
			t.Errorf("%s: %d, %v, %v; want %d, %v", tc.name, got, found, err, tc.want, tc.found)
		}
	}
	for _, rec := range [][]byte{{codecVersion3}, {codecVersion3, 0x80}, {codecVersion2, 1}} {
		if _, _, err := eventSeqAfter(rec); err == nil {
			t.Errorf("eventSeqAfter(%x) decoded", rec)
		}
	}
}

// hexSample is a tx as a worker commits it: hex ids, hashes and caller key, one
// StateMutation event sharing the tx's id, seq and time, and an app event that
// shares none of them.
func hexSample() Tx {
	id := "0123456789abcdef0123456789abcdef"
	h := id + id
	tx := Tx{Seq: 5, ID: id, PrevHash: h, Hash: "ff" + h[2:], Method: "increment", ArgsDigest: h, Caller: "02" + h,
		Time:   time.Unix(1700000000, 123456789).UTC(),
		Writes: []Write{{Key: []byte("count"), Value: []byte("12345")}}}
	tx.Events = []Event{
		{ContextID: id, Seq: 6, TxID: id, TxSeq: 5, Kind: "StateMutation", Time: tx.Time},
		{ContextID: "other", Seq: 7, TxID: "ABCD", TxSeq: 4, Kind: "K", Data: []byte(`{"a":1}`), Time: time.Unix(1, 0).UTC()},
	}
	return tx
}

// rootHashSample is hexSample with the tx's hash on its StateMutation event, as the
// worker commits it.
func rootHashSample() Tx {
	tx := hexSample()
	tx.Events[0].RootHash = tx.Hash
	return tx
}

func withoutRootHashes(tx Tx) Tx {
	tx.Events = slices.Clone(tx.Events)
	for i := range tx.Events {
		tx.Events[i].RootHash = ""
	}
	return tx
}

// TestCodecEventRootHash: a version 3 record keeps an event's RootHash when it is
// the tx's hash (so history can be read from the tx log), version 2 keeps none, and
// a record that claims the tx's hash for an event of a tx without one is corrupt.
func TestCodecEventRootHash(t *testing.T) {
	tx := rootHashSample()
	th := txHead{EventSeq: 7, FirstEvent: 1}
	if got, _, err := decodeTxRecord(encodeTxHead(&tx, th)); err != nil || !reflect.DeepEqual(got, tx) {
		t.Errorf("version 3 round trip = %+v, %v; want %+v", got, err, tx)
	}
	if got, err := decodeTx(encodeTx(&tx)); err != nil || got.Events[0].RootHash != "" {
		t.Errorf("version 2 round trip: rootHash %q, %v; want none", got.Events[0].RootHash, err)
	}
	other := tx
	other.Events = slices.Clone(tx.Events)
	other.Events[1].RootHash = strings.Repeat("ab", 32) // not the tx's: not recorded
	if got, _, err := decodeTxRecord(encodeTxHead(&other, th)); err != nil || got.Events[1].RootHash != "" {
		t.Errorf("a foreign rootHash came back as %q (%v)", got.Events[1].RootHash, err)
	}
	noHash := tx
	noHash.Hash, noHash.Events = "", tx.Events[:1]
	noHash.Events[0].RootHash = ""
	bare := noHash
	bare.Events = nil
	// The first event's flags follow the event count (1) and the context id.
	pos := len(encodeTxHead(&bare, th)) + len(appendHexString(nil, noHash.Events[0].ContextID))
	b := encodeTxHead(&noHash, th)
	if _, _, err := decodeTxRecord(b); err != nil || b[pos]&evTxHash != 0 {
		t.Fatalf("the record to corrupt does not decode (%v) or is flagged already", err)
	}
	b[pos] |= evTxHash
	if got, _, err := decodeTxRecord(b); err == nil {
		t.Errorf("an event marked with the hash of a tx without one decoded: %+v", got)
	}
	bare2 := tx
	bare2.Events = nil
	v2 := encodeTx(&tx)
	v2[len(encodeTx(&bare2))+len(appendHexString(nil, tx.Events[0].ContextID))] |= evTxHash
	if _, err := decodeTx(v2); err == nil {
		t.Error("a version 2 record with the rootHash flag decoded")
	}
}

// encodeTxV1 and encodeEventV1 write records as version 1 did.
func encodeTxV1(tx *Tx) []byte {
	b := binary.AppendUvarint([]byte{codecVersion}, tx.Seq)
	for _, s := range [...]string{tx.ID, tx.PrevHash, tx.Hash, tx.Method, tx.ArgsDigest, tx.Caller} {
		b = appendString(b, s)
	}
	b = appendWrites(appendTime(b, tx.Time), tx.Writes)
	b = binary.AppendUvarint(b, uint64(len(tx.Events)))
	for i := range tx.Events {
		b = appendEvent(b, &tx.Events[i])
	}
	return b
}

func encodeEventV1(e *Event) []byte {
	return appendString(appendEvent([]byte{codecVersion}, e), e.RootHash)
}

// TestCodecReadsVersion1: records written before version 2 decode as they did.
func TestCodecReadsVersion1(t *testing.T) {
	for _, tx := range []Tx{codecSample(), hexSample(), {Time: time.Unix(0, 0).UTC()}} {
		got, err := decodeTx(encodeTxV1(&tx))
		if err != nil || !reflect.DeepEqual(got, tx) {
			t.Errorf("decodeTx(v1) = %+v, %v; want %+v", got, err, tx)
		}
		for _, ev := range tx.Events {
			ev.RootHash = tx.Hash
			if got, err := decodeEvent(encodeEventV1(&ev)); err != nil || !reflect.DeepEqual(got, ev) {
				t.Errorf("decodeEvent(v1) = %+v, %v; want %+v", got, err, ev)
			}
		}
	}
}

// TestCodecCompact: version 2 round-trips a worker's tx and its events, and stores
// them in about half the bytes of version 1.
func TestCodecCompact(t *testing.T) {
	tx := hexSample()
	tx.Events = tx.Events[:1]
	got, err := decodeTx(encodeTx(&tx))
	if err != nil || !reflect.DeepEqual(got, tx) {
		t.Fatalf("round trip = %+v, %v; want %+v", got, err, tx)
	}
	if v1, v2 := len(encodeTxV1(&tx)), len(encodeTx(&tx)); v2 > v1/2+20 {
		t.Errorf("tx record: %d bytes, version 1 took %d", v2, v1)
	}
	ev := tx.Events[0]
	ev.RootHash = tx.Hash
	if v1, v2 := len(encodeEventV1(&ev)), len(encodeEvent(&ev)); v2 > v1*2/3 {
		t.Errorf("event record: %d bytes, version 1 took %d", v2, v1)
	}
}

// TestHexString: lowercase hex of even length is stored as bytes, anything else as
// it is, and both read back unchanged.
func TestHexString(t *testing.T) {
	for _, s := range []string{"", "00", "0a", "ff00", "0A", "abc", "xyz", "0x12", "g0", "é", "0g", "a/", "ff:0"} {
		b := appendHexString(nil, s)
		d := &decoder{b: b}
		if got := d.hexString(); got != s || d.done() != nil {
			t.Errorf("hexString(%q) = %q, %v", s, got, d.err)
		}
		if asBytes := b[0] == 1; asBytes != (s != "" && len(s)%2 == 0 && strings.Trim(s, "0123456789abcdef") == "") {
			t.Errorf("%q stored as bytes: %v", s, asBytes)
		}
	}
	if d := (&decoder{b: []byte{1, 0}}); d.hexString() != "" || d.err == nil {
		t.Errorf("an empty byte string (never written) decoded")
	}
	if d := (&decoder{b: []byte{2, 0}}); d.hexString() != "" || d.err == nil {
		t.Errorf("an unknown tag decoded")
	}
}

// TestHotRoundTrip: the binary head record keeps every field it holds, a rootHash
// of 64 hex digits in 32 bytes and any other rootHash as it is.
func TestHotRoundTrip(t *testing.T) {
	for _, root := range []string{
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef", // not how hex encodes
		"", "not hex",
	} {
		h := head{Context: Context{ID: "c", Seq: 7, RootHash: root, EventSeq: 9}, StateKeys: -1, StateBytes: 1 << 40, FirstEvent: 3}
		b := encodeHot(&h)
		var got head
		got.ID = "c"
		if err := decodeHot(b, &got); err != nil || !reflect.DeepEqual(got, h) {
			t.Errorf("round trip of rootHash %q = %+v, %v", root, got, err)
		}
		for n := range len(b) {
			if err := decodeHot(b[:n], &got); err == nil {
				t.Errorf("decodeHot of %d of %d bytes succeeded", n, len(b))
			}
		}
	}
	if h := (head{Context: Context{RootHash: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}}); len(encodeHot(&h)) > 40 {
		t.Errorf("a head with a hex rootHash takes %d bytes", len(encodeHot(&h)))
	}
}

// FuzzDecodeHot: no input makes decodeHot panic, and what decodes re-encodes to the
// same fields.
func FuzzDecodeHot(f *testing.F) {
	h := head{Context: Context{Seq: 7, RootHash: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", EventSeq: 9}, StateKeys: 2, StateBytes: 40, FirstEvent: 3}
	f.Add(encodeHot(&h))
	h.RootHash = "x"
	f.Add(encodeHot(&h))
	f.Fuzz(func(t *testing.T, b []byte) {
		var h head
		if err := decodeHot(b, &h); err != nil {
			return
		}
		var again head
		if err := decodeHot(encodeHot(&h), &again); err != nil || !reflect.DeepEqual(again, h) {
			t.Errorf("re-decode = %+v, %v; want %+v", again, err, h)
		}
	})
}

func TestCodecRejectsCorruption(t *testing.T) {
	hx := hexSample()
	for _, tx := range []Tx{codecSample(), hx} {
		th := txHead{EventSeq: 300, StateKeys: 2, StateBytes: 1 << 20, FirstEvent: 1}
		for _, b := range [][]byte{encodeTx(&tx), encodeTxV1(&tx), encodeTxHead(&tx, th)} {
			for n := range len(b) {
				if _, err := decodeTx(b[:n]); err == nil {
					t.Errorf("decodeTx of %d of %d bytes succeeded", n, len(b))
				}
			}
			if _, err := decodeTx(append(b, 0)); err == nil {
				t.Errorf("decodeTx with a trailing byte succeeded")
			}
		}
	}
	ev := hx.Events[0]
	ev.RootHash = hx.Hash
	b := encodeEvent(&ev)
	for n := range len(b) {
		if _, err := decodeEvent(b[:n]); err == nil {
			t.Errorf("decodeEvent of %d of %d bytes succeeded", n, len(b))
		}
	}
	one := hexSample()
	one.Events = one.Events[:1]
	none := one
	none.Events = nil
	b = encodeTx(&one)
	flags := len(encodeTx(&none)) + len(appendHexString(nil, one.Events[0].ContextID))
	if b[flags] != evFlags {
		t.Fatalf("byte %d is %#x, not the event's flags", flags, b[flags])
	}
	b[flags] |= 0x80
	if _, err := decodeTx(b); err == nil {
		t.Errorf("decodeTx with unknown event flags succeeded")
	}
}

// FuzzDecodeTx: no input makes the decoders panic, and what decodes re-encodes to the
// same bytes.
func FuzzDecodeTx(f *testing.F) {
	tx := codecSample()
	f.Add(encodeTx(&tx))
	f.Add(encodeEvent(&tx.Events[0]))
	f.Add([]byte{codecVersion, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	hx := hexSample()
	f.Add(encodeTx(&hx))
	f.Add(encodeTxV1(&hx))
	f.Add(encodeEvent(&hx.Events[0]))
	f.Add(encodeEventV1(&hx.Events[0]))
	f.Add(encodeTxHead(&hx, txHead{EventSeq: 9, StateKeys: 1, StateBytes: 10, FirstEvent: 1}))
	rh := rootHashSample()
	f.Add(encodeTxHead(&rh, txHead{EventSeq: 7, FirstEvent: 1}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if tx, th, err := decodeTxRecord(b); err == nil {
			plain := withoutRootHashes(tx) // version 2 does not keep them
			if again, err := decodeTx(encodeTx(&tx)); err != nil || !reflect.DeepEqual(again, plain) {
				t.Errorf("re-decode = %+v, %v; want %+v", again, err, plain)
			}
			if th != nil {
				if again, head, err := decodeTxRecord(encodeTxHead(&tx, *th)); err != nil || !reflect.DeepEqual(again, tx) || *head != *th {
					t.Errorf("version 3 re-decode = %+v, %+v, %v; want %+v, %+v", again, head, err, tx, *th)
				}
			}
		}
		if ev, err := decodeEvent(b); err == nil {
			if again, err := decodeEvent(encodeEvent(&ev)); err != nil || !reflect.DeepEqual(again, ev) {
				t.Errorf("event re-decode = %+v, %v", again, err)
			}
		}
	})
}
