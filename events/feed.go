package events

import (
	"context"
	"sync"

	"github.com/circlegate/circlegate/store"
)

// History reads a context's committed events (store.Store is one).
type History interface {
	Events(ctx context.Context, contextID string, from uint64, limit int) (events []store.Event, oldest uint64, err error)
}

// historyPage is how many events a feed reads from history at once.
const historyPage = 256

// maxHeld bounds the live messages a feed holds while it reads history; past it, it
// drops them and reads them from history afterwards (they are durable there).
const maxHeld = 1024

// FeedConfig is what a feed needs to start.
type FeedConfig struct {
	Bus     Bus
	History History
	Tenant  string
	Context string
	// Head is the context's last event seq, read after nothing: Open reads it itself
	// when HeadFunc is set (after subscribing, so no event falls between).
	HeadFunc func(ctx context.Context) (uint64, error)
	// Since, when set, resumes after that event seq: what history still holds after
	// it is replayed first.
	Since *uint64
	// Out receives the feed's messages in seq order with no gap and no duplicate. It
	// must not block; it returns false when the subscriber is gone, which ends the feed.
	Out func(*Message) bool
	// Gone is called once if the feed ends by itself (Out returned false, the context
	// was deleted, or Recheck refused). It may be nil.
	Gone func()
	// Recheck, if set, runs after each MembersChanged event is passed on; an error
	// ends the feed (the subscriber may no longer read the context).
	Recheck func(ctx context.Context) error
}

// Feed is one subscriber's ordered view of one context.
//
// What a live delivery touches comes first, in one cache line: fanned out to 10,000
// subscribers, each delivery finds its feed out of cache.
type Feed struct {
	mu       sync.Mutex
	last     uint64 // seq of the last message passed to Out
	live     bool   // false while reading history: messages are held
	ended    bool
	dropped  bool                // held overflowed: read history again before going live
	outFunc  func(*Message) bool // cfg.Out
	held     []*Message          // live messages that came while reading history
	lost     uint64              // events history no longer had when a gap was filled
	replayed uint64

	cfg     FeedConfig
	ctx     context.Context
	stop    context.CancelFunc
	cancel  func() // the bus subscription
	endOnce sync.Once
}

// Open subscribes to a context and returns its feed, already live or catching up
// from history in the background, and whether a resume from cfg.Since was possible:
// false when history no longer reaches back to Since+1 (or Since is past the head),
// in which case the feed starts from the head and the client must refetch state.
func Open(ctx context.Context, cfg FeedConfig) (*Feed, bool, error) {
	fctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	f := &Feed{cfg: cfg, outFunc: cfg.Out, ctx: fctx, stop: stop}
	f.cancel = cfg.Bus.Subscribe(cfg.Tenant, cfg.Context, f) // from here on, messages are held
	head, err := cfg.HeadFunc(ctx)
	if err != nil {
		f.Close()
		return nil, false, err
	}
	recovered, last := true, head
	if s := cfg.Since; s != nil && *s < head {
		_, oldest, err := cfg.History.Events(ctx, cfg.Context, *s+1, 1)
		if err != nil {
			f.Close()
			return nil, false, err
		}
		if oldest != 0 && oldest <= *s+1 {
			last = *s
		} else {
			recovered = false
		}
	} else if s != nil && *s > head {
		recovered = false
	}
	f.mu.Lock()
	f.last = last
	f.mu.Unlock()
	go f.catchUp()
	return f, recovered, nil
}

// Deliver implements Sink: it is called on the bus's dispatch goroutine.
func (f *Feed) Deliver(m *Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.ended || m.Seq() <= f.last:
	case !f.live:
		f.hold(m)
	case m.Seq() == f.last+1:
		f.out(m)
	default: // a gap: fill it from history, holding what comes meanwhile
		f.live = false
		f.hold(m)
		go f.catchUp()
	}
}

func (f *Feed) hold(m *Message) {
	if len(f.held) >= maxHeld {
		f.dropped = true
		return
	}
	f.held = append(f.held, m)
}

// out passes m on; f.mu is held.
func (f *Feed) out(m *Message) {
	if !f.outFunc(m) {
		f.endLocked()
		return
	}
	f.last = m.Seq()
	switch m.Event.Kind {
	case KindContextDeleted:
		f.endLocked()
	case KindMembersChanged:
		if f.cfg.Recheck != nil {
			go func() {
				if err := f.cfg.Recheck(f.ctx); err != nil && f.ctx.Err() == nil {
					f.end()
				}
			}()
		}
	}
}

// The lifecycle events a feed acts on: ContextDeleted ends every feed of its context;
// MembersChanged makes each feed check that its subscriber may still read it.
const (
	KindContextDeleted = "ContextDeleted"
	KindMembersChanged = "MembersChanged"
)

// catchUp reads history after f.last until it meets the held live messages, then
// goes live.
func (f *Feed) catchUp() {
	for {
		f.mu.Lock()
		from, ended := f.last+1, f.ended
		if len(f.held) > 0 && !f.dropped && f.held[0].Seq() <= from {
			f.drainHeld()
			if !f.ended && (len(f.held) == 0) {
				f.live = true
				f.mu.Unlock()
				return
			}
			from = f.last + 1
		}
		f.dropped = false
		f.mu.Unlock()
		if ended {
			return
		}
		evs, oldest, err := f.cfg.History.Events(f.ctx, f.cfg.Context, from, historyPage)
		if err != nil {
			if f.ctx.Err() == nil {
				f.end() // the context is gone or the store failed: the subscriber resubscribes
			}
			return
		}
		f.mu.Lock()
		if len(evs) > 0 && evs[0].Seq > f.last+1 && oldest > f.last+1 {
			f.lost += evs[0].Seq - f.last - 1 // trimmed before this subscriber read it
			f.last = evs[0].Seq - 1
		}
		for _, ev := range evs {
			if f.ended {
				break
			}
			if ev.Seq == f.last+1 {
				f.replayed++
				f.out(NewMessage(f.cfg.Tenant, ev))
			}
		}
		caughtUp := len(evs) < historyPage
		if caughtUp && !f.dropped {
			f.drainHeld()
			if len(f.held) == 0 || f.ended {
				f.live = true
				f.mu.Unlock()
				return
			}
			if len(evs) == 0 {
				// History has nothing between f.last and the held messages: it was
				// trimmed. Skip the gap rather than wait for what cannot come.
				f.lost += f.held[0].Seq() - f.last - 1
				f.last = f.held[0].Seq() - 1
				f.drainHeld()
				f.live = true
				f.mu.Unlock()
				return
			}
			// The held messages start past events history did not return in this
			// page: read again.
		}
		f.mu.Unlock()
	}
}

// drainHeld passes on the held messages that continue f.last, drops the older ones,
// and keeps those past a gap; f.mu is held.
func (f *Feed) drainHeld() {
	i := 0
	for ; i < len(f.held) && !f.ended; i++ {
		m := f.held[i]
		if m.Seq() <= f.last {
			continue
		}
		if m.Seq() != f.last+1 {
			break
		}
		f.out(m)
	}
	f.held = append(f.held[:0], f.held[i:]...)
	if len(f.held) == 0 {
		f.held = nil
	}
}

func (f *Feed) endLocked() {
	f.ended = true
	f.held = nil
	go f.end()
}

func (f *Feed) end() {
	f.endOnce.Do(func() {
		f.mu.Lock()
		f.ended = true
		f.mu.Unlock()
		f.cancel()
		f.stop()
		if f.cfg.Gone != nil {
			f.cfg.Gone()
		}
	})
}

// Close ends the feed without calling Gone. It is idempotent.
func (f *Feed) Close() {
	f.endOnce.Do(func() {
		f.mu.Lock()
		f.ended = true
		f.held = nil
		f.mu.Unlock()
		f.cancel()
		f.stop()
	})
}

// Last returns the seq of the last message passed on.
func (f *Feed) Last() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}
