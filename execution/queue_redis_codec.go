package execution

import (
	"cmp"
	"encoding/json"
	"errors"
	"time"

	"github.com/circlegate/circlegate/errs"
)

// recordJSON is a job record as the fleet queue stores it and replies with it.
type recordJSON struct {
	ID         string          `json:"id"`
	Kind       JobKind         `json:"kind"`
	Tenant     string          `json:"tenant"`
	Caller     string          `json:"caller"`
	ContextID  string          `json:"contextId,omitempty"`
	Status     string          `json:"status"`
	Result     json.RawMessage `json:"result,omitempty"`
	Err        *errorJSON      `json:"error,omitempty"`
	AcceptedAt int64           `json:"acceptedAt"` // Unix ms
	FinishedAt int64           `json:"finishedAt,omitempty"`
	Attempts   int             `json:"attempts,omitempty"`
}

// errorJSON is an error crossing the fleet: its kind, client-safe message and param.
// An error without a kind travels as an internal error with no text of its own.
type errorJSON struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
	Param   string `json:"param,omitempty"`
}

func encodeRecord(r *JobRecord) []byte {
	j := recordJSON{
		ID: r.ID, Kind: r.Kind, Tenant: r.Tenant, Caller: r.Caller, ContextID: r.ContextID, Status: r.Status,
		Result: r.Result, AcceptedAt: r.AcceptedAt.UnixMilli(), Attempts: r.Attempts,
	}
	if !r.FinishedAt.IsZero() {
		j.FinishedAt = r.FinishedAt.UnixMilli()
	}
	if r.Err != nil {
		j.Err = &errorJSON{Kind: errs.Internal.String(), Message: "internal error"}
		var e *errs.Error
		if errors.As(r.Err, &e) && e.Kind != errs.Internal {
			j.Err = &errorJSON{Kind: e.Kind.String(), Message: e.Message, Param: e.Param}
		}
	}
	b, err := json.Marshal(j)
	if err != nil { // Result is JSON a handler produced; anything else is a bug
		panic("execution: encode job record: " + err.Error())
	}
	return b
}

func decodeRecord(b []byte) (JobRecord, error) {
	var j recordJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return JobRecord{}, err
	}
	return j.record(), nil
}

// decodeRecords decodes a reply: a JSON array of records, in one pass. On an error
// it decodes each record on its own, so that one bad record costs only itself.
func decodeRecords(b []byte) ([]JobRecord, error) {
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
			first = cmp.Or(first, err)
			continue
		}
		out = append(out, r)
	}
	return out, first
}

func (j *recordJSON) record() JobRecord {
	r := JobRecord{
		ID: j.ID, Kind: j.Kind, Tenant: j.Tenant, Caller: j.Caller, ContextID: j.ContextID, Status: j.Status,
		Result: j.Result, AcceptedAt: time.UnixMilli(j.AcceptedAt).UTC(), Attempts: j.Attempts,
	}
	if j.FinishedAt != 0 {
		r.FinishedAt = time.UnixMilli(j.FinishedAt).UTC()
	}
	if j.Err != nil {
		k, _ := errs.ParseKind(j.Err.Kind)
		r.Err = &errs.Error{Kind: k, Message: j.Err.Message, Param: j.Err.Param}
	}
	return r
}
