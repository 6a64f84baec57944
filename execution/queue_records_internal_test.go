package execution

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"
)

func bookJob(n int, at time.Time) *Job {
	return &Job{ID: "j" + strconv.Itoa(n), Tenant: "t", ContextID: "c", Time: at}
}

// TestRecordBookKeepsTheNewest: past max records the oldest go first, across chunk
// boundaries and the dropping of whole chunks, and every kept record is the right
// job's.
func TestRecordBookKeepsTheNewest(t *testing.T) {
	b := newRecordBook(time.Hour, 100)
	now := time.Now()
	for n := range 250 {
		b.add(bookJob(n, now))
		if n == 10 {
			b.finish(bookJob(n, now), Outcome{Result: json.RawMessage(`7`)})
		}
	}
	for n := range 250 {
		r, ok := b.get("j" + strconv.Itoa(n))
		switch {
		case n < 150 && ok:
			t.Fatalf("record %d of 250 kept, max is 100", n)
		case n >= 150 && (!ok || r.ID != "j"+strconv.Itoa(n) || r.Status != JobQueued):
			t.Fatalf("record %d: %+v, %v", n, r, ok)
		}
	}
	if len(b.at) != 100 || len(b.chunks) > 1 {
		t.Fatalf("index %d, %d chunks; want 100 and at most 1", len(b.at), len(b.chunks))
	}
	b.finish(bookJob(200, now), Outcome{Result: json.RawMessage(`{"v":1}`)})
	if r, _ := b.get("j200"); r.Status != JobDone || string(r.Result) != `{"v":1}` || r.FinishedAt.IsZero() {
		t.Fatalf("finished record: %+v", r)
	}
}

// TestRecordBookExpires: records older than the ttl go, and so do their chunks.
func TestRecordBookExpires(t *testing.T) {
	b := newRecordBook(time.Hour, 100000)
	now := time.Now()
	b.add(bookJob(-1, now.Add(-2*time.Hour)))
	b.add(bookJob(0, now))
	if _, ok := b.get("j-1"); ok {
		t.Fatal("a record two hours old is kept with a ttl of one hour")
	}
	for n := range 3000 {
		b.add(bookJob(n, now))
	}
	if r, ok := b.get("j2999"); !ok || len(b.chunks) != 3 {
		t.Fatalf("%d chunks for 3002 records; the last: %+v, %v", len(b.chunks), r, ok)
	}
	if r, ok := b.get("j0"); !ok || r.ID != "j0" {
		t.Fatalf("first record: %+v, %v", r, ok)
	}
	b.expire(now.Add(2 * time.Hour))
	if len(b.chunks) != 0 || len(b.at) != 0 {
		t.Fatalf("empty book holds %d chunks and %d ids", len(b.chunks), len(b.at))
	}
	b.add(bookJob(1, time.Now()))
	if r, ok := b.get("j1"); !ok || r.Status != JobQueued {
		t.Fatalf("record after the book emptied: %+v, %v", r, ok)
	}
}
