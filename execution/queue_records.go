package execution

import (
	"sync"
	"time"
)

// recordBook keeps the job records of the memory queue: at most max of them, each
// for ttl after its job was accepted. Records expire in acceptance order, which is
// the order they were added.
type recordBook struct {
	ttl time.Duration
	max int

	mu    sync.Mutex
	byID  map[string]*JobRecord
	order []string // ids in acceptance order, oldest first
}

func newRecordBook(ttl time.Duration, max int) *recordBook {
	return &recordBook{ttl: ttl, max: max, byID: make(map[string]*JobRecord)}
}

func (b *recordBook) add(r JobRecord) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expire(time.Now())
	if len(b.order) >= b.max {
		b.drop(1)
	}
	b.byID[r.ID] = &r
	b.order = append(b.order, r.ID)
}

func (b *recordBook) finish(j *Job, o Outcome) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if r := b.byID[j.ID]; r != nil {
		*r = r.finished(o, time.Now().UTC())
	}
}

func (b *recordBook) get(id string) (JobRecord, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expire(time.Now())
	r := b.byID[id]
	if r == nil {
		return JobRecord{}, false
	}
	return *r, true
}

// expire drops the records accepted more than ttl before now.
func (b *recordBook) expire(now time.Time) {
	n := 0
	for n < len(b.order) {
		r := b.byID[b.order[n]]
		if r != nil && now.Sub(r.AcceptedAt) < b.ttl {
			break
		}
		n++
	}
	b.drop(n)
}

func (b *recordBook) drop(n int) {
	for _, id := range b.order[:n] {
		delete(b.byID, id)
	}
	b.order = b.order[n:]
	if cap(b.order) > 2*len(b.order)+1024 {
		b.order = append([]string(nil), b.order...)
	}
}
