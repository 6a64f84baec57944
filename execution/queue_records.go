package execution

import (
	"sync"
	"time"
)

// recordChunk is how many job records a recordBook allocates at a time.
const recordChunk = 1024

// recordBook keeps the job records of the memory queue: at most max of them, each
// for ttl after its job was accepted. Records expire in acceptance order, which is
// the order they were added, so they live by value in a queue of fixed-size chunks
// (no object per job for the collector to trace, nothing copied as the book grows,
// and a chunk goes back once its records have all expired), and the index maps a job
// id to its record's number.
type recordBook struct {
	ttl time.Duration
	max int

	mu     sync.Mutex
	at     map[string]uint64 // job id -> number of its record
	chunks [][]JobRecord     // the record numbered s is chunks[(s-base)/recordChunk][(s-base)%recordChunk]
	base   uint64            // number of the first record of chunks[0]
	first  uint64            // number of the oldest record
	next   uint64            // number of the next record
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
	if b.next-b.base == uint64(len(b.chunks))*recordChunk {
		b.chunks = append(b.chunks, make([]JobRecord, recordChunk))
	}
	*b.record(b.next) = newRecord(j)
	b.at[j.ID] = b.next
	b.next++
}

func (b *recordBook) record(s uint64) *JobRecord {
	i := s - b.base
	return &b.chunks[i/recordChunk][i%recordChunk]
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
	return b.record(s)
}

// expire drops the records accepted more than ttl before now.
func (b *recordBook) expire(now time.Time) {
	for b.first < b.next && now.Sub(b.record(b.first).AcceptedAt) >= b.ttl {
		b.dropOldest()
	}
}

// dropOldest forgets the oldest record, and its chunk once that was its last.
func (b *recordBook) dropOldest() {
	r := b.record(b.first)
	delete(b.at, r.ID)
	*r = JobRecord{}
	b.first++
	switch {
	case b.first == b.next: // empty: give everything back (a map does not shrink)
		b.chunks, b.base, b.at = nil, b.first, make(map[string]uint64)
	case b.first-b.base == recordChunk:
		b.chunks[0] = nil
		b.chunks = b.chunks[1:]
		b.base += recordChunk
	}
}
