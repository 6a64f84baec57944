package rpc

import (
	"context"
	"encoding/json"
	"time"

	"github.com/circlegate/circlegate/execution"
)

type jobIDParams struct {
	JobID string `json:"jobId"`
}

// JobInfo is the result of job.get: a job's status and, once it finished, its result
// (what mutate or play returned) or its error (as a JSON-RPC error object).
type JobInfo struct {
	JobID      string            `json:"jobId"`
	Kind       execution.JobKind `json:"kind"`
	ContextID  string            `json:"contextId,omitempty"`
	Status     string            `json:"status"`
	Result     json.RawMessage   `json:"result,omitempty"`
	Error      *Error            `json:"error,omitempty"`
	AcceptedAt time.Time         `json:"acceptedAt"`
	FinishedAt *time.Time        `json:"finishedAt,omitempty"`
	Attempts   int               `json:"attempts,omitempty"`
}

// registerJobs adds job.get.
func registerJobs(s *Server, svc *execution.Service) {
	Register(s, "job.get", Authenticated, func(ctx context.Context, c *Call, p jobIDParams) (JobInfo, error) {
		r, err := svc.Job(ctx, tenantOf(c), caller(c), p.JobID)
		if err != nil {
			return JobInfo{}, err
		}
		info := JobInfo{JobID: r.ID, Kind: r.Kind, ContextID: r.ContextID, Status: r.Status, Result: r.Result,
			AcceptedAt: r.AcceptedAt, Attempts: r.Attempts}
		if r.Err != nil {
			info.Error = ToWire(r.Err)
		}
		if !r.FinishedAt.IsZero() {
			info.FinishedAt = &r.FinishedAt
		}
		return info, nil
	})
}
