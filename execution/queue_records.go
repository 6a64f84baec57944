package execution

import (
	"sync"
	"time"
)

// recordBook keeps the job records of the memory queue: at most max of them, each
// for ttl after its job was accepted. Records expire in acceptance order, which is
// the order they were added, so they live in a ring by value (no object per job
// for the collector to trace) and the index maps a job id to its place in it.
type recordBook struct {
	ttl time.Duration
	max int

	mu    sync.Mutex
	at    map[string]uint64 // job id -> sequence number of its record
	ring  []JobRecord       // the record numbered s is ring[s%len(ring)]
	first uint64            // number of the oldest record
	next  uint64            // number of the next record
}

func newRecordBook(ttl time.Duration, max int) *recordBook {
	return &recordBook{ttl: ttl, max: max, at: make(map[string]uint64)}
}

// add records a job just accepted as queued.
func (b *recordBook) add(j *Job) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expire(time.Now())
	if int(b.next-b.first) >= b.max {
		b.dropOldest()
	}
	if int(b.next-b.first) == len(b.ring) {
		b.grow()
	}
	b.ring[b.next%uint64(len(b.ring))] = newRecord(j)
	b.at[j.ID] = b.next
	b.next++
}

// grow doubles the ring, up to max records; a record keeps its number, so the
// index stays right.
func (b *recordBook) grow() {
	n := min(max(2*len(b.ring), 64), b.max)
	ring := make([]JobRecord, n)
	for s := b.first; s < b.next; s++ {
		ring[s%uint64(n)] = b.ring[s%uint64(len(b.ring))]
	}
	b.ring = ring
}

func (b *recordBook) finish(j *Job, o Outcome) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if r := b.find(j.ID); r != nil {
		*r = r.finished(o, time.Now().UTC())
	}
}

func (b *recordBook) get(id string) (JobRecord, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expire(time.Now())
	if r := b.find(id); r != nil {
		return *r, true
	}
	return JobRecord{}, false
}

func (b *recordBook) find(id string) *JobRecord {
	s, ok := b.at[id]
	if !ok {
		return nil
	}
	return &b.ring[s%uint64(len(b.ring))]
}

// expire drops the records accepted more than ttl before now.
func (b *recordBook) expire(now time.Time) {
	for b.first < b.next && now.Sub(b.ring[b.first%uint64(len(b.ring))].AcceptedAt) >= b.ttl {
		b.dropOldest()
	}
	if b.first == b.next && len(b.ring) > 1024 { // idle again: give the memory back
		b.ring, b.at = nil, make(map[string]uint64)
	}
}

func (b *recordBook) dropOldest() {
	r := &b.ring[b.first%uint64(len(b.ring))]
	delete(b.at, r.ID)
	*r = JobRecord{}
	b.first++
}
