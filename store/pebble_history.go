package store

import (
	"context"
	"errors"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/circlegate/circlegate/errs"
)

// History trimming. A context's history is the contiguous run of events from
// head.FirstEvent to head.EventSeq; trimming only ever advances FirstEvent.
//
//   - Count: a batch that appends events also range-deletes those beyond MaxEvents,
//     so history never holds more than MaxEvents.
//   - Age (measured from Event.Time): when a batch's events cross a multiple of
//     expireEvery seqs, it also deletes the expired events at the old end of history,
//     up to maxExpirePerCommit of them (one point read when none has expired). So
//     expired events linger on disk a while (never beyond MaxEvents), and Events skips
//     them on read: it reports as oldest the first event that has not expired, and
//     never returns an older one.
const (
	expireEvery        = 64
	maxExpirePerCommit = 256
)

// errEventSeq reports a tx whose events are not numbered EventSeq+1, EventSeq+2, ...
var errEventSeq = errs.E(errs.Internal, "store: event seqs do not follow the context's eventSeq")

// appendEvents adds evs to b after checking their seqs follow h.EventSeq, trims
// history and advances h.
func (p *Pebble) appendEvents(b *pebble.Batch, h *head, evs []Event) error {
	if len(evs) == 0 {
		return nil
	}
	for i := range evs {
		if evs[i].Seq != h.EventSeq+1+uint64(i) {
			return errEventSeq
		}
	}
	last := h.EventSeq + uint64(len(evs))
	keep, err := p.keepFrom(h, last)
	if err != nil {
		return err
	}
	for i := range evs {
		if evs[i].Seq >= keep {
			_ = b.Set(seqKey(kindEvent, h.ID, evs[i].Seq), encodeEvent(&evs[i]), nil)
		}
	}
	if keep > h.FirstEvent {
		deleteEvents(b, h.ID, h.FirstEvent, min(keep, h.EventSeq+1))
		h.FirstEvent = keep
	}
	h.EventSeq = last
	return nil
}

// maxPointDeletes is the most events a batch deletes one by one; more go in one
// range deletion.
const maxPointDeletes = 64

// deleteEvents deletes the stored events [from, to) of a context. A few (the usual
// case: a commit's events push as many old ones out) are point deletions: every
// range deletion in the memtable makes each read of it rebuild the memtable's
// fragmented range deletions, so one per commit made every point read cost tens of
// microseconds once a context's history was full.
func deleteEvents(b *pebble.Batch, contextID string, from, to uint64) {
	if from >= to {
		return
	}
	if to-from > maxPointDeletes {
		_ = b.DeleteRange(seqKey(kindEvent, contextID, from), seqKey(kindEvent, contextID, to), nil)
		return
	}
	for seq := from; seq < to; seq++ {
		_ = b.Delete(seqKey(kindEvent, contextID, seq), nil)
	}
}

// keepFrom returns the oldest seq history keeps once it ends at last.
func (p *Pebble) keepFrom(h *head, last uint64) (uint64, error) {
	keep := h.FirstEvent
	if n := uint64(p.hist.MaxEvents); last >= n && last-n+1 > keep {
		keep = last - n + 1
	}
	if keep > h.EventSeq || h.EventSeq/expireEvery == last/expireEvery {
		return keep, nil // every stored event goes anyway, or no age check this time
	}
	return p.skipExpired(h.ID, keep, h.EventSeq, time.Now().Add(-p.hist.MaxAge))
}

// skipExpired returns the seq of the first stored event in [from, to] whose time is
// not before cutoff (to+1 if none), looking at no more than maxExpirePerCommit.
func (p *Pebble) skipExpired(contextID string, from, to uint64, cutoff time.Time) (uint64, error) {
	if expired, err := p.eventExpired(contextID, from, cutoff); err != nil || !expired {
		return from, err // the common case: one point read, no iterator
	}
	it, err := p.eventIter(contextID, from, to+1)
	if err != nil {
		return from, err
	}
	seq := from
	for ok, n := it.First(), 0; ok && n < maxExpirePerCommit; ok, n = it.Next(), n+1 {
		ev, err := decodeEvent(it.Value())
		if err != nil || !ev.Time.Before(cutoff) {
			break
		}
		seq = seqOf(it.Key()) + 1
	}
	return seq, closeIter(it)
}

// eventExpired reports whether the stored event seq is older than cutoff.
func (p *Pebble) eventExpired(contextID string, seq uint64, cutoff time.Time) (bool, error) {
	v, ok, err := p.get(seqKey(kindEvent, contextID, seq))
	if err != nil || !ok {
		return false, err
	}
	ev, err := decodeEvent(v)
	if err != nil {
		return false, errs.Wrap(errs.Internal, err, "store: decode event")
	}
	return ev.Time.Before(cutoff), nil
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

func closeIter(it *pebble.Iterator) error {
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return errs.Wrap(errs.Internal, err, "store: iterate")
	}
	return nil
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
	h, err := p.readHead(contextID)
	if err != nil || h.FirstEvent > h.EventSeq {
		return nil, 0, err
	}
	it, err := p.eventIter(contextID, h.FirstEvent, h.EventSeq+1)
	if err != nil {
		return nil, 0, err
	}
	evs, oldest, err := readEvents(it, contextID, from, limit, time.Now().Add(-p.hist.MaxAge))
	return evs, oldest, errors.Join(err, closeIter(it))
}

// readEvents skips the expired events at the start of it, then collects up to limit
// events with seq >= from.
func readEvents(it *pebble.Iterator, contextID string, from uint64, limit int, cutoff time.Time) ([]Event, uint64, error) {
	var oldest uint64
	ok := it.First()
	for ; ok && oldest == 0; ok = it.Next() {
		ev, err := decodeEvent(it.Value())
		if err != nil {
			return nil, 0, errs.Wrap(errs.Internal, err, "store: decode event")
		}
		if !ev.Time.Before(cutoff) {
			oldest = ev.Seq
			break
		}
	}
	if oldest == 0 {
		return nil, 0, nil
	}
	if from > oldest {
		ok = it.SeekGE(seqKey(kindEvent, contextID, from))
	}
	var evs []Event
	for ; ok && len(evs) < limit; ok = it.Next() {
		ev, err := decodeEvent(it.Value())
		if err != nil {
			return nil, 0, errs.Wrap(errs.Internal, err, "store: decode event")
		}
		evs = append(evs, ev)
	}
	return evs, oldest, nil
}
