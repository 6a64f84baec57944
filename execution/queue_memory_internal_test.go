package execution

import (
	"strconv"
	"testing"
	"time"
)

// TestMemoryQueueSpareLanesBounded: emptied lanes are kept for reuse, at most
// maxSpareLanes of them, and a reused lane starts empty under its new key.
func TestMemoryQueueSpareLanesBounded(t *testing.T) {
	q, err := NewMemoryQueue(MemoryQueueConfig{Capacity: 10 * maxSpareLanes, MaxBatch: 10 * maxSpareLanes})
	if err != nil {
		t.Fatal(err)
	}
	push := func(context string) {
		j := &Job{ID: context, Tenant: "t", ContextID: context, Time: time.Now()}
		if err := q.push(&pending{job: j, done: make(chan Outcome, 1), book: q.records}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 * maxSpareLanes {
		push("c" + strconv.Itoa(i))
	}
	lanes, batch, ok := q.take()
	if !ok || len(batch) != 2*maxSpareLanes {
		t.Fatalf("took %d jobs, %v", len(batch), ok)
	}
	q.finish(lanes, len(batch))
	if len(q.spare) != maxSpareLanes || len(q.lanes) != 0 {
		t.Fatalf("%d spare lanes and %d live after every lane emptied; want %d and 0", len(q.spare), len(q.lanes), maxSpareLanes)
	}
	push("new")
	l := q.lanes[laneKey{"t", "new"}]
	if l == nil || len(l.jobs) != 1 || l.running || !l.inReady || len(q.spare) != maxSpareLanes-1 {
		t.Fatalf("lane of a new context: %+v, %d spare", l, len(q.spare))
	}
}
