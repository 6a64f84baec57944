package execution

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/circlegate/circlegate/errs"
)

func fleetJob() *Job {
	at := time.Date(2026, 11, 23, 11, 18, 45, 845548596, time.UTC)
	pk := "0268a035d788229b9807acad249a2784aa66637f55691f7dc5ea7618fe4cd3f3b5"
	return &Job{ID: "71512fce83655a5eb6853103342e0326", Kind: JobMutate, Tenant: pk, ContextID: "07940d44d3b76a3ada67ec913db59dd2",
		Method: "increment", Caller: pk, CallerOwner: true, Time: at, Deadline: at.Add(10 * time.Second), Node: "c32f14b3326115ac"}
}

const fleetResult = `{"jobId":"d6a23126fce24066933c6ab524c10141","txId":"d6a23126fce24066933c6ab524c10141","seq":30,` +
	`"rootHash":"b94c8daff7f95a7de267d234da76b7e7438e5ad55a89bbeff01e60b9014a4034","output":{"value":30},"events":[]}`

// TestJobJSONMatchesEncodingJSON: encodeJob writes what json.Marshal writes, for jobs
// it encodes itself and for those it hands to json.Marshal.
func TestJobJSONMatchesEncodingJSON(t *testing.T) {
	jobs := map[string]func(*Job){
		"a counter's increment":  func(*Job) {},
		"args":                   func(j *Job) { j.Args = json.RawMessage(`{"by":2,"note":"x y"}`) },
		"args with spaces":       func(j *Job) { j.Args = json.RawMessage(`{ "by" : 2 }`) },
		"args with html":         func(j *Job) { j.Args = json.RawMessage(`{"s":"<b>&"}`) },
		"args that are not JSON": func(j *Job) { j.Args = json.RawMessage(`{"by":`) },
		"a play script":          func(j *Job) { j.Kind, j.Script, j.ContextID = JobPlay, []byte("\x00asm\x01"), "" },
		"an idempotency key":     func(j *Job) { j.IdempotencyKey = "order-1" },
		"strings to escape":      func(j *Job) { j.IdempotencyKey, j.Method = "é \"q\" \\ <&>\u2028", "\x01\xff" },
		"no owner, no node":      func(j *Job) { j.CallerOwner, j.Node = false, "" },
		"zero times":             func(j *Job) { j.Time, j.Deadline = time.Time{}, time.Time{} },
		"a time zone":            func(j *Job) { j.Time = j.Time.In(time.FixedZone("x", 5400)) },
		"a year past 9999":       func(j *Job) { j.Deadline = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
	}
	for name, change := range jobs {
		j := fleetJob()
		change(j)
		want, wantErr := json.Marshal(j)
		got, err := encodeJob(j)
		if string(got) != string(want) || (err == nil) != (wantErr == nil) {
			t.Errorf("%s: encodeJob = %s, %v; json.Marshal = %s, %v", name, got, err, want, wantErr)
		}
	}
}

// TestRecordJSONMatchesEncodingJSON: encodeRecord writes what json.Marshal writes of
// the record's recordJSON.
func TestRecordJSONMatchesEncodingJSON(t *testing.T) {
	recs := map[string]func(*JobRecord){
		"queued": func(*JobRecord) {},
		"done": func(r *JobRecord) {
			*r = r.finished(Outcome{Result: json.RawMessage(fleetResult)}, r.AcceptedAt.Add(time.Millisecond))
		},
		"a result to escape": func(r *JobRecord) { *r = r.finished(Outcome{Result: json.RawMessage(`{"a": "<"}`)}, r.AcceptedAt) },
		"failed": func(r *JobRecord) {
			*r = r.finished(Outcome{Err: errs.Param("by", "must be a number, not \"x\" <sic>")}, r.AcceptedAt)
		},
		"an internal error": func(r *JobRecord) { *r = r.finished(Outcome{Err: errs.E(errs.Internal, "disk")}, r.AcceptedAt) },
		"a plain error":     func(r *JobRecord) { *r = r.finished(Outcome{Err: errJobExpired}, r.AcceptedAt) },
		"attempts":          func(r *JobRecord) { r.Attempts = 3 },
		"no context":        func(r *JobRecord) { r.ContextID = "" },
		"finished at 0 ms":  func(r *JobRecord) { r.FinishedAt = time.UnixMilli(0) },
	}
	for name, change := range recs {
		r := newRecord(fleetJob())
		change(&r)
		want, err := json.Marshal(r.toJSON())
		if err != nil {
			t.Fatal(err)
		}
		if got := encodeRecord(&r); string(got) != string(want) {
			t.Errorf("%s: encodeRecord = %s\njson.Marshal = %s", name, got, want)
		}
	}
}

// FuzzEncodeJob: any job's encoding is json.Marshal's, and decodes as json.Unmarshal
// decodes it.
func FuzzEncodeJob(f *testing.F) {
	f.Add("71512fce", "mutate", "t", "c", "increment", `{"by":1}`, "k", "key", "node", int64(1795432725845548596), int64(10), 0, true)
	f.Add("a\"b", "<m>", "t\xff", "", "\u2028", `[1, 2]`, "", "", "", int64(-62135596800000000), int64(0), 86400, false)
	f.Fuzz(func(t *testing.T, id, kind, tenant, ctx, method, args, caller, key, node string, ns, deadline int64, offset int, owner bool) {
		j := &Job{ID: id, Kind: JobKind(kind), Tenant: tenant, ContextID: ctx, Method: method, Caller: caller,
			CallerOwner: owner, IdempotencyKey: key, Node: node,
			Time: time.Unix(0, ns).In(time.FixedZone("z", offset%200000)), Deadline: time.Unix(deadline, ns)}
		if args != "" {
			j.Args = json.RawMessage(args)
		}
		want, wantErr := json.Marshal(j)
		got, err := encodeJob(j)
		if string(got) != string(want) || (err == nil) != (wantErr == nil) {
			t.Fatalf("encodeJob = %s, %v; json.Marshal = %s, %v", got, err, want, wantErr)
		}
		if err != nil {
			return
		}
		var std Job
		_ = json.Unmarshal(want, &std)
		if dec, err := decodeJob(want); err != nil || !reflect.DeepEqual(dec, std) {
			t.Fatalf("decodeJob = %+v, %v; json.Unmarshal = %+v", dec, err, std)
		}
	})
}

// FuzzEncodeRecord: any record's encoding is json.Marshal's of its recordJSON, and
// decodes as json.Unmarshal decodes it.
func FuzzEncodeRecord(f *testing.F) {
	f.Add("id", "mutate", "t", "c", "ctx", "done", `{"a":1}`, "invalid params", "msg", "p", int64(1), int64(2), 3, true)
	f.Add("i\u2028", "m<", "t\xff", "", "", "", ``, "", "", "", int64(-62135596800000), int64(0), 0, false)
	f.Fuzz(func(t *testing.T, id, kind, tenant, caller, ctx, status, result, ekind, emsg, eparam string, accepted, finished int64, attempts int, failed bool) {
		r := JobRecord{ID: id, Kind: JobKind(kind), Tenant: tenant, Caller: caller, ContextID: ctx, Status: status,
			AcceptedAt: time.Unix(0, accepted), Attempts: attempts}
		if finished != 0 {
			r.FinishedAt = time.Unix(0, finished)
		}
		if result != "" {
			if !json.Valid([]byte(result)) {
				return // a result is a handler's JSON
			}
			r.Result = json.RawMessage(result)
		}
		if failed {
			k, _ := errs.ParseKind(ekind)
			r.Err = &errs.Error{Kind: k, Message: emsg, Param: eparam}
		}
		want, err := json.Marshal(r.toJSON())
		if err != nil {
			t.Fatal(err)
		}
		if got := encodeRecord(&r); string(got) != string(want) {
			t.Fatalf("encodeRecord = %s\njson.Marshal = %s", got, want)
		}
		var std recordJSON
		_ = json.Unmarshal(want, &std)
		if dec, err := decodeRecord(want); err != nil || !reflect.DeepEqual(dec, std.record()) {
			t.Fatalf("decodeRecord = %+v, %v; json.Unmarshal = %+v", dec, err, std.record())
		}
	})
}

// FuzzDecodeJob: decodeJob accepts what json.Unmarshal accepts, and decodes it to the
// same job.
func FuzzDecodeJob(f *testing.F) {
	b, _ := encodeJob(fleetJob())
	f.Add(b)
	j := fleetJob()
	j.Args, j.IdempotencyKey = json.RawMessage(`{"by":[1,{"a":"}"}]}`), "k"
	b, _ = encodeJob(j)
	f.Add(b)
	f.Add([]byte(`{"id":"a","ID":"b","callerOwner":false,"time":"2026-01-01T00:00:00+01:30","args":{"x":"\""}}`))
	f.Add([]byte(`{"id":"a","script":"AAEC","node":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var want Job
		wantErr := json.Unmarshal(b, &want)
		got, err := decodeJob(b)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("decodeJob error %v, json.Unmarshal error %v", err, wantErr)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("decodeJob = %+v\njson.Unmarshal = %+v", got, want)
		}
	})
}

// referenceRecords decodes a reply with encoding/json alone, as the queue did before
// its decoder was written by hand.
func referenceRecords(b []byte) ([]JobRecord, error) {
	var js []recordJSON
	if err := json.Unmarshal(b, &js); err != nil {
		return nil, err
	}
	out := make([]JobRecord, len(js))
	for i := range js {
		out[i] = js[i].record()
	}
	return out, nil
}

// FuzzDecodeRecordsMatchesEncodingJSON: a reply that encoding/json decodes whole
// decodes to the same records; one it refuses is refused too (and then decoded
// record by record, as FuzzDecodeRecords checks); a single record decodes as
// encoding/json decodes it.
func FuzzDecodeRecordsMatchesEncodingJSON(f *testing.F) {
	r := newRecord(fleetJob())
	done := r.finished(Outcome{Result: json.RawMessage(fleetResult)}, r.AcceptedAt)
	failed := r.finished(Outcome{Err: errs.Param("by", "must be a number")}, r.AcceptedAt)
	f.Add([]byte("[" + string(encodeRecord(&done)) + "," + string(encodeRecord(&failed)) + "]"))
	f.Add([]byte(`[{"id":"a","error":{"kind":"x"},"error":{"message":"m"},"attempts":1e2}]`))
	f.Add([]byte(`[{"id":"a","acceptedAt":-0,"finishedAt":01,"result":[]} ]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		want, wantErr := referenceRecords(b)
		got, err := decodeRecords(b)
		if wantErr == nil && (err != nil || !reflect.DeepEqual(got, want)) {
			t.Fatalf("decodeRecords = %+v, %v\nencoding/json = %+v", got, err, want)
		}
		if wantErr != nil && err == nil {
			t.Fatalf("decodeRecords accepted what encoding/json refuses (%v): %+v", wantErr, got)
		}
		var one recordJSON
		oneErr := json.Unmarshal(b, &one)
		rec, err := decodeRecord(b)
		if (err == nil) != (oneErr == nil) || (err == nil && !reflect.DeepEqual(rec, one.record())) {
			t.Fatalf("decodeRecord = %+v, %v; encoding/json = %+v, %v", rec, err, one.record(), oneErr)
		}
	})
}

func BenchmarkJobJSON(b *testing.B) {
	j := fleetJob()
	raw, _ := encodeJob(j)
	b.Run("encode", func(b *testing.B) {
		for b.Loop() {
			_, _ = encodeJob(j)
		}
	})
	b.Run("decode", func(b *testing.B) {
		for b.Loop() {
			_, _ = decodeJob(raw)
		}
	})
}

func BenchmarkRecordJSON(b *testing.B) {
	r := newRecord(fleetJob())
	r = r.finished(Outcome{Result: json.RawMessage(fleetResult)}, r.AcceptedAt)
	one := encodeRecord(&r)
	reply := []byte("[")
	for i := range 20 {
		if i > 0 {
			reply = append(reply, ',')
		}
		reply = append(reply, one...)
	}
	reply = append(reply, ']')
	b.Run("encode", func(b *testing.B) {
		for b.Loop() {
			_ = encodeRecord(&r)
		}
	})
	b.Run("decode-reply-of-20", func(b *testing.B) {
		for b.Loop() {
			_, _ = decodeRecords(reply)
		}
	})
}
