package launcher

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/circlegate/circlegate/internal/testutil"
	"github.com/circlegate/circlegate/rpc"
)

type jobInfo struct {
	JobID      string          `json:"jobId"`
	Kind       string          `json:"kind"`
	ContextID  string          `json:"contextId"`
	Status     string          `json:"status"`
	Result     json.RawMessage `json:"result"`
	Error      *rpc.Error      `json:"error"`
	AcceptedAt time.Time       `json:"acceptedAt"`
	FinishedAt *time.Time      `json:"finishedAt"`
}

func TestJobGet(t *testing.T) { testJobGet(t, startEnv(t)) }

// testJobGet: job.get returns a finished mutation's record, with the result mutate
// returned, to the key that submitted it and to the owner, and to nobody else.
func testJobGet(t *testing.T, e *env) {
	owner, _ := e.login(e.A.Pub, e.A)
	member, guest := testutil.NewKey(t), testutil.NewKey(t)
	mc, _ := e.login(e.A.Pub, member)
	gc, _ := e.login(e.A.Pub, guest)
	appID := install(t, owner, "counter")
	c := createContext(t, owner, map[string]any{"appId": appID, "members": []string{member.Pub}})
	var tx txResult
	if err := mc.Call(ctxT(t), "mutate", map[string]any{"contextId": c.ContextID, "method": "increment", "args": map[string]int{"by": 5}}, &tx); err != nil {
		t.Fatal(err)
	}
	for _, who := range []struct {
		name string
		call func(method string, params, result any) error
	}{
		{"the member that submitted it", func(m string, p, r any) error { return mc.Call(ctxT(t), m, p, r) }},
		{"the owner", func(m string, p, r any) error { return owner.Call(ctxT(t), m, p, r) }},
	} {
		var info jobInfo
		if err := who.call("job.get", map[string]string{"jobId": tx.JobID}, &info); err != nil {
			t.Fatalf("%s: job.get: %v", who.name, err)
		}
		var res txResult
		_ = json.Unmarshal(info.Result, &res)
		if info.JobID != tx.JobID || info.Status != "done" || info.Kind != "mutate" || info.ContextID != c.ContextID ||
			res.Seq != tx.Seq || res.RootHash != tx.RootHash || string(res.Output) != `{"value":5}` ||
			info.FinishedAt == nil || info.AcceptedAt.IsZero() || info.Error != nil {
			t.Errorf("%s: job.get = %+v (result %s), want the committed mutation", who.name, info, info.Result)
		}
	}
	bc, _ := e.login(e.B.Pub, e.B)
	for _, tc := range []struct {
		name string
		err  error
		code int
	}{
		{"a guest of the tenant", gc.Call(ctxT(t), "job.get", map[string]string{"jobId": tx.JobID}, nil), rpc.CodeNotFound},
		{"another tenant's owner", bc.Call(ctxT(t), "job.get", map[string]string{"jobId": tx.JobID}, nil), rpc.CodeNotFound},
		{"an unknown job", mc.Call(ctxT(t), "job.get", map[string]string{"jobId": "no-such-job"}, nil), rpc.CodeNotFound},
		{"an empty id", mc.Call(ctxT(t), "job.get", map[string]string{"jobId": ""}, nil), rpc.CodeInvalidParams},
		{"an idempotency key in the jobs' own namespace", mc.Call(ctxT(t), "mutate", map[string]any{"contextId": c.ContextID,
			"method": "increment", "idempotencyKey": "\x00job:" + tx.JobID}, nil), rpc.CodeInvalidParams},
	} {
		if rpcCode(tc.err) != tc.code {
			t.Errorf("%s: %v, want code %d", tc.name, tc.err, tc.code)
		}
	}
}
