package events_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circlegate/circlegate/events"
	"github.com/circlegate/circlegate/events/eventstest"
	"github.com/circlegate/circlegate/internal/testutil"
	"github.com/circlegate/circlegate/store"
	"github.com/circlegate/circlegate/store/storetest"
)

const tenant = "02a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"

// chain is one real context in a pebble store whose commits are published on a
// memory bus, as the execution service does.
type chain struct {
	t     *testing.T
	store store.Store
	bus   *events.Memory
	mu    sync.Mutex
	head  store.Context
}

func newChain(t *testing.T, h store.HistoryConfig) *chain {
	s, err := store.OpenPebble(store.PebbleConfig{Dir: t.TempDir(), History: h})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	bus := events.NewMemory()
	t.Cleanup(func() { bus.Close() })
	app, _, err := s.PutApp(t.Context(), store.App{Tenant: tenant}, []byte("app"))
	if err != nil {
		t.Fatal(err)
	}
	gen := storetest.GenesisTx("ctx1", time.Now().UTC(), nil, "ContextCreated")
	c := storetest.NewContext(tenant, app.ID, "ctx1", gen)
	if err := s.CreateContext(t.Context(), c, gen); err != nil {
		t.Fatal(err)
	}
	return &chain{t: t, store: s, bus: bus, head: c}
}

// commit commits one tx with one event; it publishes the event unless quiet.
func (c *chain) commit(quiet bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	tx := storetest.NextTx(c.head, time.Now().UTC(), []store.Write{storetest.Set("k", "v")}, "Tick")
	err := c.store.Commit(context.Background(), store.Commit{Tenant: tenant, ContextID: "ctx1", ExpectedSeq: c.head.Seq, Tx: tx})
	if err != nil {
		c.t.Error(err)
		return
	}
	c.head = storetest.Advance(c.head, tx)
	if !quiet {
		c.bus.Publish(context.Background(), tenant, tx.Events)
	}
}

func (c *chain) eventSeq() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.head.EventSeq
}

func (c *chain) headFunc(ctx context.Context) (uint64, error) {
	h, err := c.store.GetContext(ctx, tenant, "ctx1")
	return h.EventSeq, err
}

// open opens a feed that records what it passes on.
func (c *chain) open(since *uint64) (*events.Feed, *eventstest.Recorder, bool) {
	var r eventstest.Recorder
	f, recovered, err := events.Open(c.t.Context(), events.FeedConfig{
		Bus: c.bus, History: c.store, Tenant: tenant, Context: "ctx1",
		HeadFunc: c.headFunc, Since: since,
		Out: func(m *events.Message) bool { r.Deliver(m); return true },
	})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(f.Close)
	return f, &r, recovered
}

func seqs(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func wantSeqs(t *testing.T, r *eventstest.Recorder, want []uint64) {
	t.Helper()
	testutil.CheckFor(t, 10*time.Second, func() error {
		if got := r.Seqs("ctx1"); !slices.Equal(got, want) {
			return fmt.Errorf("feed passed on %v, want %v", got, want)
		}
		return nil
	})
}

func ptr(v uint64) *uint64 { return &v }

func TestFeedFromNow(t *testing.T) {
	c := newChain(t, store.HistoryConfig{})
	for range 5 {
		c.commit(false)
	}
	_, r, recovered := c.open(nil)
	if !recovered {
		t.Error("a feed with no resume point: recovered = false")
	}
	for range 5 {
		c.commit(false)
	}
	wantSeqs(t, r, seqs(7, 11)) // genesis is 1, the first five commits 2..6
}

func TestFeedResumeWithinHistory(t *testing.T) {
	c := newChain(t, store.HistoryConfig{})
	for range 20 {
		c.commit(false)
	}
	_, r, recovered := c.open(ptr(5))
	if !recovered {
		t.Fatal("resume within history: recovered = false")
	}
	for range 5 {
		c.commit(false)
	}
	wantSeqs(t, r, seqs(6, 26))
}

// TestFeedResumeWhileCommitting: commits keep coming while the feed replays history;
// it passes on every event after the resume point exactly once, in order.
func TestFeedResumeWhileCommitting(t *testing.T) {
	c := newChain(t, store.HistoryConfig{MaxEvents: 100_000})
	for range 600 {
		c.commit(false)
	}
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			c.commit(false)
		}
	}()
	_, r, recovered := c.open(ptr(3))
	time.Sleep(50 * time.Millisecond)
	stop.Store(true)
	<-done
	if !recovered {
		t.Fatal("recovered = false")
	}
	wantSeqs(t, r, seqs(4, c.eventSeq()))
}

func TestFeedResumeBeyondHistory(t *testing.T) {
	c := newChain(t, store.HistoryConfig{MaxEvents: 10})
	for range 30 {
		c.commit(false)
	}
	head := c.eventSeq()
	_, r, recovered := c.open(ptr(2))
	if recovered {
		t.Error("resume from before history: recovered = true, want false")
	}
	c.commit(false)
	wantSeqs(t, r, seqs(head+1, head+1))

	_, _, recovered = c.open(ptr(head + 100))
	if recovered {
		t.Error("resume from past the head: recovered = true, want false")
	}
	_, r, recovered = c.open(ptr(c.eventSeq()))
	if !recovered {
		t.Error("resume from the head itself: recovered = false")
	}
	c.commit(false)
	wantSeqs(t, r, seqs(head+2, head+2))
}

// TestFeedFillsGap: an event the bus never delivered is read from history.
func TestFeedFillsGap(t *testing.T) {
	c := newChain(t, store.HistoryConfig{})
	_, r, _ := c.open(nil)
	c.commit(false)
	c.commit(true) // committed, never published
	c.commit(true)
	c.commit(false)
	wantSeqs(t, r, seqs(2, 5))
}

// TestFeedEnds: a subscriber that goes away ends its feed and its subscription.
func TestFeedEnds(t *testing.T) {
	c := newChain(t, store.HistoryConfig{})
	var gone atomic.Int32
	var n atomic.Int32
	f, _, err := events.Open(t.Context(), events.FeedConfig{
		Bus: c.bus, History: c.store, Tenant: tenant, Context: "ctx1", HeadFunc: c.headFunc,
		Out:  func(*events.Message) bool { return n.Add(1) < 2 },
		Gone: func() { gone.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for range 4 {
		c.commit(false)
	}
	testutil.CheckFor(t, 5*time.Second, func() error {
		if gone.Load() != 1 {
			return fmt.Errorf("Gone called %d times, want 1", gone.Load())
		}
		return nil
	})
	if got := n.Load(); got != 2 {
		t.Errorf("Out called %d times, want 2 (it refused the second)", got)
	}
	if got := f.Last(); got != 2 {
		t.Errorf("Last = %d, want 2 (the refused message is not passed on)", got)
	}
}
