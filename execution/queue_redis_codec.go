package execution

import (
	"encoding/json"
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

// toJSON returns r as a record is stored and replied.
func (r *JobRecord) toJSON() recordJSON {
	j := recordJSON{
		ID: r.ID, Kind: r.Kind, Tenant: r.Tenant, Caller: r.Caller, ContextID: r.ContextID, Status: r.Status,
		Result: r.Result, AcceptedAt: r.AcceptedAt.UnixMilli(), Attempts: r.Attempts, Err: errorOf(r.Err),
	}
	if !r.FinishedAt.IsZero() {
		j.FinishedAt = r.FinishedAt.UnixMilli()
	}
	return j
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
