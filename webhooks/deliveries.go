package webhooks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/store"
)

// Delivery is one entry of a tenant's delivery log: one webhook request that reached
// the tenant, whatever became of it.
type Delivery struct {
	ID         string    `json:"deliveryId"`
	ReceivedAt time.Time `json:"receivedAt"`
	Provider   Provider  `json:"provider"`
	Name       string    `json:"name,omitempty"`
	EventID    string    `json:"eventId,omitempty"`
	EventType  string    `json:"eventType,omitempty"`
	// Verified is true when a secret verified the signature.
	Verified bool `json:"verified"`
	// Duplicate is true when the event had been applied before.
	Duplicate bool   `json:"duplicate"`
	RouteID   string `json:"routeId,omitempty"`
	ContextID string `json:"contextId,omitempty"`
	Method    string `json:"method,omitempty"`
	// JobID and TxID are the mutation's (for a duplicate: the first delivery's).
	JobID string `json:"jobId,omitempty"`
	TxID  string `json:"txId,omitempty"`
	// Outcome is one of the Outcome* values; Status the HTTP status answered.
	Outcome string `json:"outcome"`
	Status  int    `json:"status"`
	// Error says why the delivery was refused or failed.
	Error string `json:"error,omitempty"`
}

// The bounds of webhook.deliveries.
const (
	defaultDeliveriesLimit = 50
	maxDeliveriesLimit     = 500
)

// timeIDLen is the length of a time-ordered id: 16 hex digits of unix nanoseconds and
// 8 random ones.
const timeIDLen = 24

// newTimeID returns an id that sorts (bytewise) in the order of its time.
func newTimeID(t time.Time) string {
	var b [timeIDLen]byte
	ns := strconv.AppendUint(nil, uint64(t.UnixNano()), 16)
	for i := range 16 - len(ns) {
		b[i] = '0'
	}
	copy(b[16-len(ns):], ns)
	var r [4]byte
	_, _ = rand.Read(r[:])
	hex.Encode(b[16:], r[:])
	return string(b[:])
}

func validTimeID(id string) bool {
	if len(id) != timeIDLen {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// Deliveries returns up to limit (default 50, at most 500) entries of the tenant's
// delivery log, newest first, older than the entry before when it is set; next is the
// id to pass as before for the following page ("" at the end).
func (s *Service) Deliveries(ctx context.Context, tenant string, limit int, before string) (list []Delivery, next string, err error) {
	switch {
	case limit == 0:
		limit = defaultDeliveriesLimit
	case limit < 0 || limit > maxDeliveriesLimit:
		return nil, "", errs.Param("limit", "must be 1 to %d", maxDeliveriesLimit)
	}
	if before != "" && !validTimeID(before) {
		return nil, "", errs.Param("before", "not a delivery id")
	}
	recs, err := s.store.ListRecords(ctx, tenant, kindDelivery, before, limit+1, true)
	if err != nil {
		return nil, "", err
	}
	more := len(recs) > limit
	if more {
		recs = recs[:limit]
	}
	list = make([]Delivery, 0, len(recs))
	for _, r := range recs {
		var d Delivery
		if err := json.Unmarshal(r.Value, &d); err != nil {
			s.log.Error("webhook delivery record unreadable", "tenant", tenant, "delivery_id", r.ID)
			continue
		}
		list = append(list, d)
	}
	if more {
		next = recs[len(recs)-1].ID
	}
	return list, next, nil
}

// deliveryLog writes the log entries and keeps each tenant's log near max entries.
type deliveryLog struct {
	s       *Service
	tenants sync.Map // tenant -> *tenantLog
}

// tenantLog is one tenant's pruning state in this process.
type tenantLog struct {
	writes  atomic.Int64 // since the last prune
	pruning sync.Mutex
	// Guarded by pruning:
	// full is set when the last full pass left the log at exactly max_deliveries
	// entries: a prune then deletes as many of the oldest as were written since.
	full bool
	// after is the last id this process deleted, where the scan for the oldest
	// entries starts instead of walking over the deleted ones again.
	after  string
	prunes int
}

// pruneEvery is how many writes a tenant's log takes between prunes: a tenth of the
// bound, so the log holds at most about 1.1 times max_deliveries.
func (l *deliveryLog) pruneEvery() int64 { return max(1, int64(l.s.cfg.MaxDeliveries/10)) }

// write stores d; a failure is logged (the delivery's outcome stands without it).
// The entry is not synced unless webhooks.sync_delivery_log is on: the delivery's
// mutation, if any, committed durably before, and the store's next synced write
// syncs the entry too.
func (l *deliveryLog) write(ctx context.Context, tenant string, d *Delivery) {
	b, err := json.Marshal(d)
	if err == nil {
		if lazy, ok := l.s.store.(store.LazyRecordPutter); ok && !l.s.cfg.SyncDeliveryLog {
			err = lazy.PutRecordLazy(ctx, tenant, kindDelivery, d.ID, b)
		} else {
			err = l.s.store.PutRecord(ctx, tenant, kindDelivery, d.ID, b)
		}
	}
	if err != nil {
		l.s.log.Error("webhook delivery log write failed", "tenant", tenant, "delivery_id", d.ID, "err", err)
		return
	}
	v, _ := l.tenants.LoadOrStore(tenant, new(tenantLog))
	tl := v.(*tenantLog)
	if tl.writes.Add(1) < l.pruneEvery() || !tl.pruning.TryLock() {
		return
	}
	defer tl.pruning.Unlock()
	written := int(tl.writes.Swap(0))
	if err := l.prune(ctx, tenant, tl, written); err != nil {
		tl.full = false // start over with a full pass
		l.s.log.Error("webhook delivery log prune failed", "tenant", tenant, "err", err)
	}
}

// pruneBatch is how many old entries one listing of a prune deletes, concurrently.
const pruneBatch = 128

// prune keeps a tenant's log at its newest max_deliveries entries. Once a full pass
// has trimmed the log to exactly that many, the next prunes delete as many of the
// oldest entries as this process wrote since, without listing the newest ones. Every
// tenth prune is a full pass again, which also trims what other gateways of a fleet
// wrote.
func (l *deliveryLog) prune(ctx context.Context, tenant string, tl *tenantLog, written int) error {
	defer func() { tl.prunes++ }()
	if !tl.full || tl.prunes%10 == 9 {
		return l.prunePass(ctx, tenant, tl)
	}
	for written > 0 {
		old, err := l.ids(ctx, tenant, tl.after, min(written, pruneBatch), false)
		if err != nil || len(old) == 0 {
			return err
		}
		if err := l.deleteOld(ctx, tenant, tl, old, ""); err != nil {
			return err
		}
		written -= len(old)
	}
	return nil
}

// prunePass deletes every entry older than the newest max_deliveries.
func (l *deliveryLog) prunePass(ctx context.Context, tenant string, tl *tenantLog) error {
	maxN := l.s.cfg.MaxDeliveries
	keep, err := l.ids(ctx, tenant, "", maxN, true)
	if err != nil || len(keep) < maxN {
		tl.full = false
		return err
	}
	cutoff := keep[len(keep)-1] // the oldest entry kept
	tl.after = ""               // from the start: other gateways' ids may be older
	for {
		old, err := l.ids(ctx, tenant, tl.after, pruneBatch, false)
		if err != nil {
			return err
		}
		if err := l.deleteOld(ctx, tenant, tl, old, cutoff); err != nil {
			return err
		}
		if len(old) < pruneBatch || old[len(old)-1] >= cutoff {
			tl.full = true
			return nil
		}
	}
}

// ids lists the ids of up to limit entries after the id after (descending from
// before it when reverse is set), without their values when the store can
// (store.RecordIDLister).
func (l *deliveryLog) ids(ctx context.Context, tenant, after string, limit int, reverse bool) ([]string, error) {
	if lister, ok := l.s.store.(store.RecordIDLister); ok {
		return lister.ListRecordIDs(ctx, tenant, kindDelivery, after, limit, reverse)
	}
	recs, err := l.s.store.ListRecords(ctx, tenant, kindDelivery, after, limit, reverse)
	ids := make([]string, len(recs))
	for i, r := range recs {
		ids[i] = r.ID
	}
	return ids, err
}

// deleteOld deletes the entries of ids (ascending) older than cutoff ("": all of
// them) and moves tl.after past them.
func (l *deliveryLog) deleteOld(ctx context.Context, tenant string, tl *tenantLog, ids []string, cutoff string) error {
	n := len(ids)
	if cutoff != "" {
		n, _ = slices.BinarySearch(ids, cutoff)
	}
	ids = ids[:n]
	if err := l.deleteAll(ctx, tenant, ids); err != nil {
		return err
	}
	if len(ids) > 0 {
		tl.after = ids[len(ids)-1]
	}
	return nil
}

// deleteAll deletes records: in one write when the store can (RecordsDeleter), else
// concurrently, so that their storage syncs are shared.
func (l *deliveryLog) deleteAll(ctx context.Context, tenant string, ids []string) error {
	if d, ok := l.s.store.(store.RecordsDeleter); ok {
		return d.DeleteRecords(ctx, tenant, kindDelivery, ids)
	}
	errc := make(chan error, len(ids))
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() {
			_, err := l.s.store.DeleteRecord(ctx, tenant, kindDelivery, id)
			errc <- err
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			return err
		}
	}
	return nil
}
