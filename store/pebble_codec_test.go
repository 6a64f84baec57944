package store

import (
	"reflect"
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
	tx := codecSample()
	b := encodeTx(&tx)
	for n := range len(b) {
		if _, err := decodeTx(b[:n]); err == nil {
			t.Errorf("decodeTx of %d of %d bytes succeeded", n, len(b))
		}
	}
	if _, err := decodeTx(append(b, 0)); err == nil {
		t.Errorf("decodeTx with a trailing byte succeeded")
	}
}

// FuzzDecodeTx: no input makes the decoders panic, and what decodes re-encodes to the
// same bytes.
func FuzzDecodeTx(f *testing.F) {
	tx := codecSample()
	f.Add(encodeTx(&tx))
	f.Add(encodeEvent(&tx.Events[0]))
	f.Add([]byte{codecVersion, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		if tx, err := decodeTx(b); err == nil {
			if again, err := decodeTx(encodeTx(&tx)); err != nil || !reflect.DeepEqual(again, tx) {
				t.Errorf("re-decode = %+v, %v; want %+v", again, err, tx)
			}
		}
		if ev, err := decodeEvent(b); err == nil {
			if again, err := decodeEvent(encodeEvent(&ev)); err != nil || !reflect.DeepEqual(again, ev) {
				t.Errorf("event re-decode = %+v, %v", again, err)
			}
		}
	})
}
