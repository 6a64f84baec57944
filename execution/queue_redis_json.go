package execution

import (
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/internal/jsonx"
)

// Hand-written JSON for the fleet's jobs and records. A mutation's job is encoded at
// the gateway and decoded at a worker, and its record encoded twice and decoded once,
// and encoding/json's reflection made these about 14 µs of a mutation's CPU. The
// format is unchanged: the encoders write exactly what json.Marshal writes (they call
// it for any string it would escape, and for the whole value when something else is
// unusual), and the decoders read what the encoders write and hand any other input to
// encoding/json, so they accept the same inputs and decode them to the same values.
// The tests in queue_redis_json_test.go compare both directions with encoding/json.

// encodeJob returns json.Marshal(j), byte for byte.
func encodeJob(j *Job) ([]byte, error) {
	n := 256 + len(j.ID) + len(j.Tenant) + len(j.ContextID) + len(j.Method) + len(j.Args) + len(j.Caller) + len(j.IdempotencyKey) + len(j.Node)
	if b, ok := appendJob(make([]byte, 0, n), j); ok {
		return b, nil
	}
	return json.Marshal(j)
}

// appendJob appends j as json.Marshal writes it, or reports false, with b's contents
// then unspecified, when j has something only json.Marshal writes exactly (a script,
// args that are not plain JSON, a time Time.MarshalJSON refuses: a year outside 0 to
// 9999, a zone offset of 24 hours or more).
func appendJob(b []byte, j *Job) ([]byte, bool) {
	if len(j.Script) > 0 || (len(j.Args) > 0 && (!plainJSON(j.Args) || !json.Valid(j.Args))) {
		return b, false
	}
	b = appendField(b, `{"id":`, j.ID)
	b = appendField(b, `,"kind":`, string(j.Kind))
	b = appendField(b, `,"tenant":`, j.Tenant)
	b = appendFieldIf(b, `,"contextId":`, j.ContextID)
	b = appendField(b, `,"method":`, j.Method)
	if len(j.Args) > 0 {
		b = append(b, `,"args":`...)
		b = append(b, j.Args...)
	}
	b = appendField(b, `,"caller":`, j.Caller)
	if j.CallerOwner {
		b = append(b, `,"callerOwner":true`...)
	}
	b = appendFieldIf(b, `,"idempotencyKey":`, j.IdempotencyKey)
	var ok bool
	b = append(b, `,"time":`...)
	if b, ok = appendTime(b, j.Time); !ok {
		return b, false
	}
	b = append(b, `,"deadline":`...)
	if b, ok = appendTime(b, j.Deadline); !ok {
		return b, false
	}
	b = appendFieldIf(b, `,"node":`, j.Node)
	return append(b, '}'), true
}

// appendField appends key (the bytes before a value: a comma or brace, the quoted
// name, the colon) and s as json.Marshal writes it.
func appendField(b []byte, key, s string) []byte { return appendString(append(b, key...), s) }

// appendFieldIf appends key and s unless s is empty (omitempty).
func appendFieldIf(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	return appendField(b, key, s)
}

// appendString appends s as json.Marshal writes it.
func appendString(b []byte, s string) []byte {
	if out, ok := jsonx.AppendPlainString(b, s); ok {
		return out
	}
	q, _ := json.Marshal(s) // never fails for a string
	return append(b, q...)
}

// appendTime appends t as json.Marshal writes it (Time.MarshalJSON), or returns b
// unchanged and false where that fails.
func appendTime(b []byte, t time.Time) ([]byte, bool) {
	out, err := t.AppendText(append(b, '"'))
	if err != nil {
		return b, false
	}
	return append(out, '"'), true
}

// encodeRecord returns the stored and replied form of r: json.Marshal of its
// recordJSON, byte for byte. r.Result must be JSON (a handler's result).
func encodeRecord(r *JobRecord) []byte {
	b := make([]byte, 0, 192+len(r.ID)+len(r.Tenant)+len(r.Caller)+len(r.ContextID)+len(r.Result))
	if out, ok := appendRecord(b, r); ok {
		return out
	}
	out, err := json.Marshal(r.toJSON())
	if err != nil { // Result is JSON a handler produced; anything else is a bug
		panic("execution: encode job record: " + err.Error())
	}
	return out
}

// appendRecord appends r as json.Marshal writes its recordJSON, or reports false when
// its result is not plain, valid JSON (plainJSON) and only json.Marshal writes it
// exactly.
func appendRecord(b []byte, r *JobRecord) ([]byte, bool) {
	if len(r.Result) > 0 && (!plainJSON(r.Result) || !json.Valid(r.Result)) {
		return b, false
	}
	b = appendField(b, `{"id":`, r.ID)
	b = appendField(b, `,"kind":`, string(r.Kind))
	b = appendField(b, `,"tenant":`, r.Tenant)
	b = appendField(b, `,"caller":`, r.Caller)
	b = appendFieldIf(b, `,"contextId":`, r.ContextID)
	b = appendField(b, `,"status":`, r.Status)
	if len(r.Result) > 0 {
		b = append(b, `,"result":`...)
		b = append(b, r.Result...)
	}
	if e := errorOf(r.Err); e != nil {
		b = appendField(b, `,"error":{"kind":`, e.Kind)
		b = appendField(b, `,"message":`, e.Message)
		b = appendFieldIf(b, `,"param":`, e.Param)
		b = append(b, '}')
	}
	b = append(b, `,"acceptedAt":`...)
	b = strconv.AppendInt(b, r.AcceptedAt.UnixMilli(), 10)
	if !r.FinishedAt.IsZero() {
		if ms := r.FinishedAt.UnixMilli(); ms != 0 {
			b = append(b, `,"finishedAt":`...)
			b = strconv.AppendInt(b, ms, 10)
		}
	}
	if r.Attempts != 0 {
		b = append(b, `,"attempts":`...)
		b = strconv.AppendInt(b, int64(r.Attempts), 10)
	}
	return append(b, '}'), true
}

// decodeJob decodes a job as json.Unmarshal does.
func decodeJob(raw []byte) (Job, error) {
	var j Job
	if d := (decoder{b: raw}); d.job(&j) {
		return j, nil
	}
	j = Job{}
	err := json.Unmarshal(raw, &j)
	return j, err
}

// decodeRecord decodes a stored record.
func decodeRecord(b []byte) (JobRecord, error) {
	var j recordJSON
	if d := (decoder{b: b}); d.record(&j) && d.end() {
		return j.record(), nil
	}
	j = recordJSON{}
	if err := json.Unmarshal(b, &j); err != nil {
		return JobRecord{}, err
	}
	return j.record(), nil
}

// decodeRecords decodes a reply, a JSON array of records, in one pass. On an error
// it decodes each record on its own, so that one bad record costs only itself.
func decodeRecords(b []byte) ([]JobRecord, error) {
	if out, ok := decodeRecordsFast(b); ok {
		return out, nil
	}
	var js []recordJSON
	if err := json.Unmarshal(b, &js); err == nil {
		out := make([]JobRecord, len(js))
		for i := range js {
			out[i] = js[i].record()
		}
		return out, nil
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(b, &raws); err != nil {
		return nil, err
	}
	var out []JobRecord
	var first error
	for _, raw := range raws {
		r, err := decodeRecord(raw)
		if err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		out = append(out, r)
	}
	return out, first
}

func decodeRecordsFast(b []byte) ([]JobRecord, bool) {
	d := decoder{b: b}
	if !d.lit('[') {
		return nil, false
	}
	out := make([]JobRecord, 0, 32)
	if d.lit(']') {
		return out, d.end()
	}
	for {
		var j recordJSON
		if !d.record(&j) {
			return nil, false
		}
		out = append(out, j.record())
		if d.lit(']') {
			return out, d.end()
		}
		if !d.lit(',') {
			return nil, false
		}
	}
}

// decoder reads the JSON the encoders above write: no whitespace, keys in their
// order or not, strings of printable ASCII without escapes, integers without
// exponents, raw values that json.Valid accepts. Each method reports false, leaving
// the rest to encoding/json, on anything else (including what encoding/json would
// also accept, such as escapes, other spellings of a key, or null).
type decoder struct {
	b []byte
	i int
}

func (d *decoder) end() bool { return d.i == len(d.b) }

func (d *decoder) lit(c byte) bool {
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// str reads a string of printable ASCII other than '"' and '\\'.
func (d *decoder) str() (string, bool) {
	if !d.lit('"') {
		return "", false
	}
	start := d.i
	for ; d.i < len(d.b); d.i++ {
		switch c := d.b[d.i]; {
		case c == '"':
			s := string(d.b[start:d.i])
			d.i++
			return s, true
		case c < 0x20 || c >= 0x7f || c == '\\':
			return "", false
		}
	}
	return "", false
}

// integer reads an integer as JSON writes one (no leading zeros, no fraction).
func (d *decoder) integer() (int64, bool) {
	start := d.i
	d.lit('-')
	digits := d.i
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		d.i++
	}
	if d.i == digits || (d.b[digits] == '0' && d.i-digits > 1) {
		return 0, false
	}
	if d.i < len(d.b) && (d.b[d.i] == '.' || d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		return 0, false
	}
	n, err := strconv.ParseInt(string(d.b[start:d.i]), 10, 64)
	return n, err == nil
}

// raw reads an object or array and returns a copy of it.
func (d *decoder) raw() ([]byte, bool) {
	start := d.i
	depth := 0
	for ; d.i < len(d.b); d.i++ {
		switch d.b[d.i] {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		case '"':
			for d.i++; d.i < len(d.b) && d.b[d.i] != '"'; d.i++ {
				if d.b[d.i] == '\\' {
					d.i++
				}
			}
		}
		if depth <= 0 {
			break
		}
	}
	if depth != 0 || d.i >= len(d.b) || (d.b[start] != '{' && d.b[start] != '[') {
		return nil, false
	}
	d.i++
	v := d.b[start:d.i]
	if !json.Valid(v) {
		return nil, false
	}
	return append([]byte(nil), v...), true
}

// time reads a time as Time.UnmarshalJSON does.
func (d *decoder) time() (time.Time, bool) {
	start := d.i
	if _, ok := d.str(); !ok {
		return time.Time{}, false
	}
	var t time.Time
	return t, t.UnmarshalJSON(d.b[start:d.i]) == nil
}

// fields reads an object, calling field for each key with the decoder at its value;
// field reports whether it read the value.
func (d *decoder) fields(field func(key string) bool) bool {
	if !d.lit('{') {
		return false
	}
	if d.lit('}') {
		return true
	}
	for {
		k, ok := d.str()
		if !ok || !d.lit(':') || !field(k) {
			return false
		}
		if d.lit('}') {
			return true
		}
		if !d.lit(',') {
			return false
		}
	}
}

func (d *decoder) job(j *Job) bool {
	ok := d.fields(func(k string) bool {
		var ok bool
		switch k {
		case "id":
			j.ID, ok = d.str()
		case "kind":
			j.Kind, ok = d.kind()
		case "tenant":
			j.Tenant, ok = d.str()
		case "contextId":
			j.ContextID, ok = d.str()
		case "method":
			j.Method, ok = d.str()
		case "args":
			j.Args, ok = d.raw()
		case "caller":
			j.Caller, ok = d.str()
		case "callerOwner":
			j.CallerOwner, ok = d.boolean()
		case "idempotencyKey":
			j.IdempotencyKey, ok = d.str()
		case "time":
			j.Time, ok = d.time()
		case "deadline":
			j.Deadline, ok = d.time()
		case "node":
			j.Node, ok = d.str()
		}
		return ok
	})
	return ok && d.end()
}

func (d *decoder) kind() (JobKind, bool) {
	s, ok := d.str()
	return JobKind(s), ok
}

func (d *decoder) boolean() (bool, bool) {
	for _, w := range [...]string{"true", "false"} {
		if len(d.b)-d.i >= len(w) && string(d.b[d.i:d.i+len(w)]) == w {
			d.i += len(w)
			return w == "true", true
		}
	}
	return false, false
}

func (d *decoder) record(j *recordJSON) bool {
	return d.fields(func(k string) bool {
		var ok bool
		var n int64
		switch k {
		case "id":
			j.ID, ok = d.str()
		case "kind":
			j.Kind, ok = d.kind()
		case "tenant":
			j.Tenant, ok = d.str()
		case "caller":
			j.Caller, ok = d.str()
		case "contextId":
			j.ContextID, ok = d.str()
		case "status":
			j.Status, ok = d.str()
		case "result":
			j.Result, ok = d.raw()
		case "error":
			if j.Err == nil {
				j.Err = &errorJSON{}
			}
			e := j.Err
			ok = d.fields(func(k string) bool {
				var ok bool
				switch k {
				case "kind":
					e.Kind, ok = d.str()
				case "message":
					e.Message, ok = d.str()
				case "param":
					e.Param, ok = d.str()
				}
				return ok
			})
		case "acceptedAt":
			n, ok = d.integer()
			j.AcceptedAt = n
		case "finishedAt":
			n, ok = d.integer()
			j.FinishedAt = n
		case "attempts":
			n, ok = d.integer()
			j.Attempts = int(n)
			ok = ok && int64(j.Attempts) == n
		}
		return ok
	})
}

// errorOf returns what a record says of err: its kind, client-safe message and param;
// an error without a kind is an internal error with no text of its own.
func errorOf(err error) *errorJSON {
	if err == nil {
		return nil
	}
	var e *errs.Error
	if errors.As(err, &e) && e.Kind != errs.Internal {
		return &errorJSON{Kind: e.Kind.String(), Message: e.Message, Param: e.Param}
	}
	return &errorJSON{Kind: errs.Internal.String(), Message: "internal error"}
}
