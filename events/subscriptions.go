package events

import (
	"context"
	"sync"

	"github.com/circlegate/circlegate/errs"
)

// Subscriptions is one connection's feeds, one per context, whatever the transport.
type Subscriptions struct {
	bus     Bus
	history History
	tenant  string
	max     int
	out     func(*Message) bool

	mu     sync.Mutex
	feeds  map[string]*Feed
	closed bool
}

// NewSubscriptions returns an empty set for a connection of tenant that passes every
// message to out (which must not block, and returns false once the connection is
// gone). max bounds the contexts subscribed at once.
func NewSubscriptions(bus Bus, history History, tenant string, max int, out func(*Message) bool) *Subscriptions {
	return &Subscriptions{bus: bus, history: history, tenant: tenant, max: max, out: out, feeds: make(map[string]*Feed)}
}

// Authorize checks that the connection's key may read a context and returns the
// context's last event seq; an error refuses the subscription.
type Authorize func(ctx context.Context, contextID string) (head uint64, err error)

// SubscribeResult is what Subscribe did, per context.
type SubscribeResult struct {
	Subscribed []string
	// Recovered tells, per subscribed context, whether the resume point (or now) is
	// covered: false means history no longer reaches back and the client must refetch.
	Recovered map[string]bool
	// Refused holds the contexts not subscribed, with the reason.
	Refused map[string]error
}

// Subscribe opens a feed per context id that authorize accepts, resuming after
// since[id] when present. Subscribing again to a subscribed context keeps its feed,
// unless a resume point is given, which restarts it from there.
func (s *Subscriptions) Subscribe(ctx context.Context, ids []string, since map[string]uint64, authorize Authorize) SubscribeResult {
	res := SubscribeResult{Subscribed: []string{}, Recovered: map[string]bool{}, Refused: map[string]error{}}
	for _, id := range ids {
		if _, dup := res.Recovered[id]; dup {
			continue
		}
		if _, dup := res.Refused[id]; dup {
			continue
		}
		rec, err := s.subscribe(ctx, id, since, authorize)
		if err != nil {
			res.Refused[id] = err
			continue
		}
		res.Subscribed = append(res.Subscribed, id)
		res.Recovered[id] = rec
	}
	return res
}

func (s *Subscriptions) subscribe(ctx context.Context, id string, since map[string]uint64, authorize Authorize) (bool, error) {
	var from *uint64
	if v, ok := since[id]; ok {
		from = &v
	}
	s.mu.Lock()
	old, have := s.feeds[id]
	switch {
	case s.closed:
		s.mu.Unlock()
		return false, errs.E(errs.Unauthenticated, "connection closed")
	case have && from == nil:
		s.mu.Unlock()
		return true, nil
	case !have && len(s.feeds) >= s.max:
		s.mu.Unlock()
		return false, errs.E(errs.RateLimited, "subscription limit of this connection reached (%d)", s.max)
	}
	s.mu.Unlock()
	// authorize runs after the bus subscription, as the feed's head: it both refuses
	// and tells where live delivery starts.
	var f *Feed
	f, recovered, err := Open(ctx, FeedConfig{
		Bus: s.bus, History: s.history, Tenant: s.tenant, Context: id,
		HeadFunc: func(ctx context.Context) (uint64, error) { return authorize(ctx, id) },
		Since:    from,
		Out:      s.out,
		Gone:     func() { s.forget(id, f) },
		Recheck:  func(ctx context.Context) error { _, err := authorize(ctx, id); return err },
	})
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		f.Close()
		return false, errs.E(errs.Unauthenticated, "connection closed")
	}
	old, have = s.feeds[id]
	s.feeds[id] = f
	s.mu.Unlock()
	if have {
		old.Close()
	}
	return recovered, nil
}

// forget drops f if it is still the feed of id (it ended by itself).
func (s *Subscriptions) forget(id string, f *Feed) {
	s.mu.Lock()
	if s.feeds[id] == f {
		delete(s.feeds, id)
	}
	s.mu.Unlock()
}

// Unsubscribe ends the feeds of ids and returns the ids that were subscribed.
func (s *Subscriptions) Unsubscribe(ids []string) []string {
	done := []string{}
	var ended []*Feed
	s.mu.Lock()
	for _, id := range ids {
		if f, ok := s.feeds[id]; ok {
			delete(s.feeds, id)
			ended = append(ended, f)
			done = append(done, id)
		}
	}
	s.mu.Unlock()
	for _, f := range ended {
		f.Close()
	}
	return done
}

// Len returns the number of contexts subscribed.
func (s *Subscriptions) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.feeds)
}

// Close ends every feed; later Subscribes are refused.
func (s *Subscriptions) Close() {
	s.mu.Lock()
	s.closed = true
	feeds := s.feeds
	s.feeds = map[string]*Feed{}
	s.mu.Unlock()
	for _, f := range feeds {
		f.Close()
	}
}
