package execution

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/circlegate/circlegate/errs"
)

// TestDecodeRecords: a reply's records decode in one pass to what was encoded (the
// result, the error's kind, message and param, the times to the millisecond); a reply
// with one record that does not decode still delivers the others, with the error.
func TestDecodeRecords(t *testing.T) {
	at := time.Date(2026, 11, 22, 10, 0, 0, 123e6, time.UTC)
	done := JobRecord{ID: "a", Kind: JobMutate, Tenant: "t", Caller: "k", ContextID: "c", Status: JobDone,
		Result: json.RawMessage(`{"seq":1}`), AcceptedAt: at, FinishedAt: at.Add(time.Second), Attempts: 2}
	failed := JobRecord{ID: "b", Kind: JobPlay, Tenant: "t", Caller: "k", Status: JobFailed, AcceptedAt: at,
		Err: errs.Param("args", "must be an object")}
	reply := "[" + string(encodeRecord(&done)) + "," + string(encodeRecord(&failed)) + "]"
	recs, err := decodeRecords([]byte(reply))
	if err != nil || len(recs) != 2 {
		t.Fatalf("decodeRecords = %d records, %v", len(recs), err)
	}
	if r := recs[0]; r.ID != "a" || string(r.Result) != `{"seq":1}` || !r.AcceptedAt.Equal(at) || !r.FinishedAt.Equal(at.Add(time.Second)) ||
		r.Attempts != 2 || r.ContextID != "c" || r.Status != JobDone || r.Err != nil {
		t.Errorf("first record %+v, want %+v", r, done)
	}
	var e *errs.Error
	if r := recs[1]; r.ID != "b" || r.Status != JobFailed || !errors.As(r.Err, &e) || e.Kind != errs.InvalidParams || e.Param != "args" || e.Message != "invalid param args: must be an object" {
		t.Errorf("second record %+v (error %v), want %+v", r, r.Err, failed)
	}

	bad := "[" + string(encodeRecord(&done)) + `,{"id":5},` + string(encodeRecord(&failed)) + "]"
	recs, err = decodeRecords([]byte(bad))
	if err == nil || len(recs) != 2 || recs[0].ID != "a" || recs[1].ID != "b" {
		t.Fatalf("a reply with one bad record: %d records %v, err %v; want a and b, and the error", len(recs), recs, err)
	}
	if _, err := decodeRecords([]byte(`[{"id":"a"`)); err == nil {
		t.Error("a truncated reply decoded")
	}
}

// FuzzDecodeRecords: any bytes on a reply channel decode to records or an error,
// never a panic, and what decodes encodes and decodes again to the same ids.
func FuzzDecodeRecords(f *testing.F) {
	r := JobRecord{ID: "a", Kind: JobMutate, Status: JobDone, Result: json.RawMessage(`{}`), AcceptedAt: time.UnixMilli(1)}
	f.Add([]byte("[" + string(encodeRecord(&r)) + "]"))
	f.Add([]byte(`[{"id":"x","error":{"kind":"nope"}}, 3]`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, _ := decodeRecords(b)
		parts := make([]string, 0, len(recs))
		for i := range recs {
			if !json.Valid(recs[i].Result) && len(recs[i].Result) > 0 {
				return // a record whose result is not JSON is only ever made by hand
			}
			parts = append(parts, string(encodeRecord(&recs[i])))
		}
		again, err := decodeRecords([]byte("[" + strings.Join(parts, ",") + "]"))
		if err != nil || len(again) != len(recs) {
			t.Fatalf("re-encoded records: %d, %v; want %d", len(again), err, len(recs))
		}
		for i := range again {
			if again[i].ID != recs[i].ID {
				t.Fatalf("record %d id %q, was %q", i, again[i].ID, recs[i].ID)
			}
		}
	})
}
