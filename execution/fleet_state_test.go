package execution_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/circlegate/circlegate/execution"
	"github.com/circlegate/circlegate/internal/redistest"
)

// TestFleetStateReads: a fleet worker (and a query) reads a small state whole with
// its head and a large one key by key; the kv app sees the same state either way. The
// state grows past the limit (16 KiB) midway, and after every change get and list (a
// scan), as queries and as mutations through the workers, agree with a model.
func TestFleetStateReads(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	reg := prometheus.NewRegistry()
	svc, st := startFleetService(t, srv, reg)
	ctx := context.Background()
	id := fleetContexts(t, svc, "kv", 1)[0]
	call := func(method string, args any) json.RawMessage {
		t.Helper()
		a, _ := json.Marshal(args)
		res, err := svc.Mutate(ctx, "t", fleetOwner, id, method, a, "")
		if err != nil {
			t.Fatalf("%s %s: %v", method, a, err)
		}
		var r struct{ Output json.RawMessage }
		if err := json.Unmarshal(res, &r); err != nil {
			t.Fatal(err)
		}
		return r.Output
	}
	query := func(method string, args any) json.RawMessage {
		t.Helper()
		a, _ := json.Marshal(args)
		out, err := svc.Query(ctx, "t", fleetOwner, id, method, a)
		if err != nil {
			t.Fatalf("query %s %s: %v", method, a, err)
		}
		return out
	}
	model := map[string]string{}
	check := func(step string) {
		t.Helper()
		for _, m := range []string{"list", "get"} {
			args := map[string]string{"prefix": "k1", "key": "k05"}
			if q, mu := query(m, args), call(m, args); string(q) != string(mu) {
				t.Fatalf("%s: query %s = %.80s, the same through the queue = %.80s", step, m, q, mu)
			}
		}
		var list struct {
			Items []struct {
				Key   string
				Value json.RawMessage
			}
		}
		if err := json.Unmarshal(call("list", map[string]string{"prefix": "k1"}), &list); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, it := range list.Items {
			got = append(got, it.Key+"="+string(it.Value[:min(len(it.Value), 8)]))
		}
		var want []string
		for _, k := range slices.Sorted(maps.Keys(model)) {
			if strings.HasPrefix(k, "k1") {
				want = append(want, k+"="+model[k][:min(len(model[k]), 8)])
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: list k1 = %v, want %v", step, got, want)
		}
		var g struct {
			Value json.RawMessage
			Found bool
		}
		if err := json.Unmarshal(call("get", map[string]string{"key": "k05"}), &g); err != nil {
			t.Fatal(err)
		}
		if v, ok := model["k05"]; g.Found != ok || (ok && string(g.Value) != v) {
			t.Fatalf("%s: get k05 = %v %.12s, want %v %.12s", step, g.Found, g.Value, ok, v)
		}
	}
	for i := range 40 {
		k := fmt.Sprintf("k%02d", i)
		v := fmt.Sprintf(`"%02d%s"`, i, strings.Repeat("x", 600))
		call("set", map[string]any{"key": k, "value": json.RawMessage(v)})
		model[k] = v
		if i%7 == 6 {
			del := fmt.Sprintf("k%02d", i-3)
			call("delete", map[string]string{"key": del})
			delete(model, del)
		}
		check("after " + k)
	}
	call("delete", map[string]string{"key": "k05"})
	delete(model, "k05")
	check("after deleting k05")
	keys, bytes, err := st.StateSize(ctx, id)
	if err != nil || bytes <= 16<<10 {
		t.Fatalf("state size %d, %v: the test meant to grow the state past the 16 KiB a round reads whole", bytes, err)
	}
	// The head's counts, which every commit script keeps, match the state itself.
	kvs, err := st.Scan(ctx, id, nil, nil, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, kv := range kvs {
		n += int64(len(kv.Key) + len(kv.Value))
	}
	if keys != int64(len(kvs)) || bytes != n {
		t.Fatalf("StateSize = %d keys, %d bytes; the state holds %d, %d", keys, bytes, len(kvs), n)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	read := map[string]float64{}
	for _, f := range families {
		if f.GetName() == "circlegate_execution_snapshot_contexts_total" {
			for _, m := range f.GetMetric() {
				read[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	if read["whole"] < 20 || read["by_key"] < 20 || read["failed"] != 0 {
		t.Errorf("contexts read with their head: %v; want both whole and by key, each at least 20 times, none failed", read)
	}
}

// TestFleetContendedRounds: two workers of a fleet (two services on one Redis, each
// with its own queue node) take batches from one stream and commit to the same few
// contexts, so their commits keep losing races to each other. Every increment
// still applies exactly once: each answer is a distinct value, and each counter
// ends at the number of increments acknowledged on it. The retries must have run
// (the stale-retry counter moved), or the test proves nothing.
func TestFleetContendedRounds(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	regs := []*prometheus.Registry{prometheus.NewRegistry(), prometheus.NewRegistry()}
	svc, _ := startFleetService(t, srv, regs[0])
	_, _ = startFleetService(t, srv, regs[1])
	ctx := context.Background()
	ids := fleetContexts(t, svc, "counter", 2)
	const callers, each = 64, 20
	var mu sync.Mutex
	seen := map[string]map[int64]bool{ids[0]: {}, ids[1]: {}}
	var wg sync.WaitGroup
	for g := range callers {
		wg.Go(func() {
			id := ids[g%len(ids)]
			for range each {
				res, err := svc.Mutate(ctx, "t", fleetOwner, id, "increment", nil, "")
				if err != nil {
					t.Error(err)
					return
				}
				var r struct{ Output struct{ Value int64 } }
				if err := json.Unmarshal(res, &r); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[id][r.Output.Value] {
					t.Errorf("context %s answered %d twice", id, r.Output.Value)
				}
				seen[id][r.Output.Value] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, id := range ids {
		out, err := svc.Query(ctx, "t", fleetOwner, id, "get", nil)
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf(`{"value":%d}`, len(seen[id]))
		if string(out) != want || len(seen[id]) != callers/len(ids)*each {
			t.Errorf("context %s: get = %s after %d distinct answers, want %s and %d", id, out, len(seen[id]), want, callers/len(ids)*each)
		}
	}
	var retries float64
	for _, reg := range regs {
		n, _ := metricValue(t, reg, "circlegate_execution_stale_retries_total")
		retries += n
	}
	if retries == 0 {
		t.Error("no commit lost a race: the test did not exercise the retry rounds")
	}
	t.Logf("%.0f stale retries over %d increments", retries, callers*each)
}

// TestFleetJobDeliveredTwiceInABatch: two deliveries of one job in one batch (as when
// a job is reclaimed while its first worker still runs it) commit once. The second
// runs in the next round, finds the job's key recorded when it commits
// (store.ErrTaken), and then answers the first delivery's recorded result instead
// of running again.
func TestFleetJobDeliveredTwiceInABatch(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	svc, _ := startFleetService(t, srv, nil)
	ctx := context.Background()
	id := fleetContexts(t, svc, "counter", 1)[0]
	now := time.Now()
	delivery := func() *execution.Job {
		return &execution.Job{ID: "job-twice", Kind: execution.JobMutate, Tenant: "t", ContextID: id, Method: "increment",
			Caller: fleetOwner.PubKey, CallerOwner: true, Time: now, Deadline: now.Add(10 * time.Second), Attempt: 1, AtLeastOnce: true}
	}
	out := svc.Handle(ctx, []*execution.Job{delivery(), delivery()})
	for i, o := range out {
		if o.Err != nil {
			t.Fatalf("delivery %d: %v", i, o.Err)
		}
	}
	if string(out[0].Result) != string(out[1].Result) {
		t.Errorf("the deliveries answered %s and %s, want the same recorded result", out[0].Result, out[1].Result)
	}
	if got, err := svc.Query(ctx, "t", fleetOwner, id, "get", nil); err != nil || string(got) != `{"value":1}` {
		t.Errorf("get = %s, %v; want {\"value\":1}: the job applied once", got, err)
	}
}
