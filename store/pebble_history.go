package store

import (
	"context"
	"errors"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/circlegate/circlegate/errs"
)

// A context's history is the contiguous run of events from head.FirstEvent to
// head.EventSeq. The events of a tx live only in its tx record (version 3 marks the
// StateMutation event's RootHash, pebble_codec.go); an event record ('e') holds an
// event that belongs to no tx, the one UpdateMembers appends. History is read by
// merging the two (eventCursor), so a commit writes no event record, and trimming
// history deletes nothing from the tx log: it advances FirstEvent.
//
// Data dirs written before this kept every event in an event record as well; those
// records still read (the merge takes either copy of an event) and go as history
// moves past them.
//
// Trimming:
//   - Count: a batch that appends events moves FirstEvent so that history never
//     holds more than MaxEvents.
//   - Age (measured from Event.Time): when a batch's events cross a multiple of
//     expireEvery seqs, it also moves FirstEvent past the expired events at the old
//     end of history, up to maxExpirePerCommit of them, and deletes the event
//     records left behind FirstEvent. Events skips expired events on read: it
//     reports as oldest the first event that has not expired, and never returns an
//     older one.
const (
	expireEvery        = 64
	maxExpirePerCommit = 256
)

// errEventSeq reports a tx whose events are not numbered EventSeq+1, EventSeq+2, ...
var errEventSeq = errs.E(errs.Internal, "store: event seqs do not follow the context's eventSeq")

// appendEvents checks evs follow h.EventSeq, trims history and advances h. With
// record it writes an event record for each event (UpdateMembers' events, which no
// tx record holds); a tx's events are in its tx record.
func (p *Pebble) appendEvents(b *pebble.Batch, h *head, evs []Event, record bool) error {
	if len(evs) == 0 {
		return nil
	}
	for i := range evs {
		if evs[i].Seq != h.EventSeq+1+uint64(i) {
			return errEventSeq
		}
	}
	last := h.EventSeq + uint64(len(evs))
	keep := h.FirstEvent
	if n := uint64(p.hist.MaxEvents); last >= n && last-n+1 > keep {
		keep = last - n + 1
	}
	check := h.EventSeq/expireEvery != last/expireEvery // now and then, not every batch
	if check && keep <= h.EventSeq {
		var err error
		if keep, err = p.skipExpired(h, keep, time.Now().Add(-p.hist.MaxAge)); err != nil {
			return err
		}
	}
	if record {
		for i := range evs {
			if evs[i].Seq >= keep {
				_ = b.Set(seqKey(kindEvent, h.ID, evs[i].Seq), encodeEvent(&evs[i]), nil)
			}
		}
	}
	if (check || record) && keep > 1 {
		if err := p.deleteEventRecords(b, h.ID, keep); err != nil {
			return err
		}
	}
	h.FirstEvent = max(h.FirstEvent, keep)
	h.EventSeq = last
	return nil
}

// maxPointDeletes is the most event records a batch deletes one by one; more go in
// one range deletion.
const maxPointDeletes = 64

// deleteEventRecords deletes a context's event records below seq keep. There are
// few (member changes, and what a data dir written before tx events left the event
// records kept), so they are point deletions: every range deletion in the memtable
// makes each read of it rebuild the memtable's fragmented range deletions.
func (p *Pebble) deleteEventRecords(b *pebble.Batch, contextID string, keep uint64) error {
	it, err := p.eventIter(contextID, 0, keep)
	if err != nil {
		return err
	}
	var seqs []uint64
	for ok := it.First(); ok && len(seqs) <= maxPointDeletes; ok = it.Next() {
		seqs = append(seqs, seqOf(it.Key()))
	}
	if err := closeIter(it); err != nil {
		return err
	}
	if len(seqs) > maxPointDeletes {
		_ = b.DeleteRange(seqKey(kindEvent, contextID, seqs[0]), seqKey(kindEvent, contextID, keep), nil)
		return nil
	}
	for _, seq := range seqs {
		_ = b.Delete(seqKey(kindEvent, contextID, seq), nil)
	}
	return nil
}

// skipExpired returns the seq of the first event of h's history from seq from on
// whose time is not before cutoff (h.EventSeq+1 if none), looking at no more than
// maxExpirePerCommit events.
func (p *Pebble) skipExpired(h *head, from uint64, cutoff time.Time) (uint64, error) {
	cur, err := p.openEvents(h, from)
	if err != nil {
		return from, err
	}
	seq := from
	for range maxExpirePerCommit {
		ev, ok, err := cur.next()
		if err != nil || !ok || !ev.Time.Before(cutoff) {
			return seq, errors.Join(err, cur.close())
		}
		seq = ev.Seq + 1
	}
	return seq, cur.close()
}

func (p *Pebble) eventIter(contextID string, from, to uint64) (*pebble.Iterator, error) {
	it, err := p.db.NewIter(&pebble.IterOptions{
		LowerBound: seqKey(kindEvent, contextID, from),
		UpperBound: seqKey(kindEvent, contextID, to),
	})
	if err != nil {
		return nil, errs.Wrap(errs.Internal, err, "store: iterate events")
	}
	return it, nil
}

// eventCursor reads a context's events in seq order, from a seq up to the head's
// EventSeq, out of its tx records and its event records.
type eventCursor struct {
	contextID string
	txs, recs *pebble.Iterator
	txOK      bool
	recOK     bool
	pending   []Event // the current tx's events not yet passed
	seq, end  uint64  // the next event to return, the last one
}

// openEvents opens a cursor on h's events from seq from (at least 1). It finds the
// first tx to read with a search over the tx log: a version 3 record holds the
// context's eventSeq after its tx.
func (p *Pebble) openEvents(h *head, from uint64) (*eventCursor, error) {
	c := &eventCursor{contextID: h.ID, seq: max(from, 1), end: h.EventSeq}
	var err error
	if c.txs, err = p.db.NewIter(&pebble.IterOptions{
		LowerBound: seqKey(kindTx, h.ID, 0),
		UpperBound: seqKey(kindTx, h.ID, h.Seq+1),
	}); err != nil {
		return nil, errs.Wrap(errs.Internal, err, "store: iterate txs")
	}
	if c.recs, err = p.eventIter(h.ID, c.seq, h.EventSeq+1); err != nil {
		c.txs.Close()
		return nil, err
	}
	if err := c.seek(c.seq, h.Seq); err != nil {
		return nil, errors.Join(err, c.close())
	}
	return c, nil
}

// seek moves c to event seq from (at least 1) of a context whose last tx is last.
func (c *eventCursor) seek(from, last uint64) error {
	c.seq, c.pending = max(from, 1), nil
	c.recOK = c.recs.SeekGE(seqKey(kindEvent, c.contextID, c.seq))
	first, err := c.firstTx(last)
	if err != nil {
		return err
	}
	c.txOK = c.txs.SeekGE(seqKey(kindTx, c.contextID, first))
	return nil
}

// firstTx returns a tx seq no greater than that of the first tx (of seq <= last)
// holding an event of seq c.seq or more, and no smaller than that of any tx whose
// events all come before c.seq.
//
// It probes first where the event would be if every tx had as many events as the
// average (exact for a counter: one per tx), then gallops away from there in
// doubling steps until the answer is bracketed, then bisects. The probes of the
// usual case are neighbouring records, so in one block: a plain bisection touched
// blocks all over the log, and a commit's age check (every 64 events) spent about
// 120 µs reading them.
func (c *eventCursor) firstTx(last uint64) (uint64, error) {
	lo, hi := uint64(0), last+1
	m := min(uint64(float64(c.seq-1)*float64(last+1)/float64(max(c.end, 1))), last)
	up, down := uint64(1), uint64(1) // the next galloping steps
	for lo < hi {
		seq, after, found, err := c.probe(m, hi)
		if err != nil {
			return 0, err
		}
		if found && after < c.seq {
			lo = seq + 1 // every tx up to seq ends before c.seq
			m, up = lo+up-1, up*2
		} else {
			hi = m // a tx from m on reaches c.seq, or none between m and hi has events
			m, down = m-min(m, down), down*2
		}
		if m < lo || m >= hi {
			m = lo + (hi-lo)/2
		}
	}
	return lo, nil
}

// probe finds the first tx of seq in [from, to) whose record tells the context's
// eventSeq after it: every version 3 record, and an older one with events.
func (c *eventCursor) probe(from, to uint64) (seq, after uint64, found bool, err error) {
	for ok := c.txs.SeekGE(seqKey(kindTx, c.contextID, from)); ok; ok = c.txs.Next() {
		if seq = seqOf(c.txs.Key()); seq >= to {
			break
		}
		after, found, err := eventSeqAfter(c.txs.Value())
		if err != nil {
			return 0, 0, false, errs.Wrap(errs.Internal, err, "store: decode tx %d of %s", seq, c.contextID)
		}
		if found {
			return seq, after, true, nil
		}
	}
	return 0, 0, false, c.txs.Error()
}

// next returns the next event, or false past the last one. An event found in
// neither the tx log nor the event records is an error of kind Internal.
func (c *eventCursor) next() (Event, bool, error) {
	if c.seq > c.end {
		return Event{}, false, nil
	}
	for c.recOK && seqOf(c.recs.Key()) < c.seq {
		c.recOK = c.recs.Next()
	}
	if c.recOK && seqOf(c.recs.Key()) == c.seq {
		ev, err := decodeEvent(c.recs.Value())
		if err != nil {
			return Event{}, false, errs.Wrap(errs.Internal, err, "store: decode event %d of %s", c.seq, c.contextID)
		}
		c.recOK = c.recs.Next()
		c.seq++
		return ev, true, nil
	}
	for {
		for len(c.pending) > 0 && c.pending[0].Seq < c.seq {
			c.pending = c.pending[1:]
		}
		if len(c.pending) > 0 || !c.txOK {
			break
		}
		tx, err := decodeTx(c.txs.Value())
		if err != nil {
			return Event{}, false, errs.Wrap(errs.Internal, err, "store: decode tx %d of %s", seqOf(c.txs.Key()), c.contextID)
		}
		c.pending = tx.Events
		c.txOK = c.txs.Next()
	}
	if len(c.pending) == 0 || c.pending[0].Seq != c.seq {
		if err := errors.Join(c.txs.Error(), c.recs.Error()); err != nil {
			return Event{}, false, errs.Wrap(errs.Internal, err, "store: read history")
		}
		return Event{}, false, errs.E(errs.Internal, "store: event %d of context %s is in neither its tx log nor its event records", c.seq, c.contextID)
	}
	ev := c.pending[0]
	c.pending = c.pending[1:]
	c.seq++
	return ev, true, nil
}

func (c *eventCursor) close() error {
	return errors.Join(closeIter(c.txs), closeIter(c.recs))
}

func closeIter(it *pebble.Iterator) error {
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return errs.Wrap(errs.Internal, err, "store: iterate")
	}
	return nil
}

// openHistory opens a cursor on a context's history from its oldest event held (nil
// when history is empty). It reads the head and opens the cursor's iterators under
// the context's lock, so both see the same commits: a commit that ends meanwhile
// may delete event records behind a FirstEvent a head read without the lock would
// not show yet, and the cursor would find those events missing.
func (p *Pebble) openHistory(contextID string) (head, *eventCursor, error) {
	defer p.locks.lock(contextLockName(contextID))()
	h, err := p.loadHead(contextID)
	if err != nil || h.FirstEvent > h.EventSeq {
		return h, nil, err
	}
	cur, err := p.openEvents(&h, h.FirstEvent)
	return h, cur, err
}

// Events returns up to limit events with seq >= from, starting no earlier than the
// oldest unexpired event held, and that event's seq (0 if history is empty).
func (p *Pebble) Events(ctx context.Context, contextID string, from uint64, limit int) ([]Event, uint64, error) {
	if limit <= 0 {
		return nil, 0, errs.Param("limit", "must be positive")
	}
	if err := p.enter(ctx); err != nil {
		return nil, 0, err
	}
	defer p.exit()
	h, cur, err := p.openHistory(contextID)
	if err != nil || cur == nil {
		return nil, 0, err
	}
	cutoff := time.Now().Add(-p.hist.MaxAge)
	var evs []Event
	for {
		ev, ok, err := cur.next()
		if err != nil || !ok {
			return nil, 0, errors.Join(err, cur.close())
		}
		if !ev.Time.Before(cutoff) {
			if ev.Seq >= from {
				evs = append(evs, ev)
			}
			break
		}
	}
	oldest := cur.seq - 1
	if from > cur.seq {
		if err := cur.seek(from, h.Seq); err != nil {
			return nil, 0, errors.Join(err, cur.close())
		}
	}
	for len(evs) < limit {
		ev, ok, err := cur.next()
		if err != nil {
			return nil, 0, errors.Join(err, cur.close())
		}
		if !ok {
			break
		}
		evs = append(evs, ev)
	}
	return evs, oldest, cur.close()
}
