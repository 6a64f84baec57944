// Package eventstest is the conformance suite every events.Bus backend passes. It tests
// only what bus.go promises, through the Bus interface.
//
// A backend's test calls Run with a function that returns two buses of one
// deployment: pub publishes, sub subscribes (the memory bus returns itself twice; a
// fleet backend returns two nodes sharing one Redis).
package eventstest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/circlegate/circlegate/events"
	"github.com/circlegate/circlegate/internal/testutil"
	"github.com/circlegate/circlegate/store"
)

// Opener returns two buses of one fresh deployment and closes them in t.Cleanup.
type Opener func(t *testing.T) (pub, sub events.Bus)

const (
	tenantA = "02a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"
	tenantB = "03b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2"
)

// Run runs the suite.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"OrderedToEverySink", testOrdered},
		{"Isolation", testIsolation},
		{"Unsubscribe", testUnsubscribe},
		{"UnsubscribeOtherTenant", testUnsubscribeOtherTenant},
		{"ManyContexts", testManyContexts},
		{"MessageEncodedOnce", testEncodedOnce},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open) })
	}
}

// Recorder is a Sink that keeps what it receives.
type Recorder struct {
	mu   sync.Mutex
	msgs []*events.Message
}

// Deliver implements events.Sink.
func (r *Recorder) Deliver(m *events.Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
}

// Seqs returns the seqs received so far for contextID.
func (r *Recorder) Seqs(contextID string) []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []uint64
	for _, m := range r.msgs {
		if m.ContextID() == contextID {
			out = append(out, m.Seq())
		}
	}
	return out
}

// Messages returns what was received so far.
func (r *Recorder) Messages() []*events.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

// Events returns n events of contextID numbered from first.
func Events(contextID string, first uint64, n int) []store.Event {
	out := make([]store.Event, n)
	for i := range out {
		seq := first + uint64(i)
		out[i] = store.Event{ContextID: contextID, Seq: seq, TxID: fmt.Sprintf("tx%d", seq), TxSeq: seq,
			Kind: "Test", Data: []byte(fmt.Sprintf(`{"n":%d}`, seq)), Time: time.UnixMilli(1_700_000_000_000).UTC()}
	}
	return out
}

func seqRange(first uint64, n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = first + uint64(i)
	}
	return out
}

// waitSeqs waits until r holds want for contextID.
func waitSeqs(t *testing.T, r *Recorder, contextID string, want []uint64) {
	t.Helper()
	testutil.CheckFor(t, 10*time.Second, func() error {
		if got := r.Seqs(contextID); !slices.Equal(got, want) {
			return fmt.Errorf("context %s received %v, want %v", contextID, got, want)
		}
		return nil
	})
}

func testOrdered(t *testing.T, open Opener) {
	pub, sub := open(t)
	var rs [3]Recorder
	for i := range rs {
		defer sub.Subscribe(tenantA, "ctx1", &rs[i])()
	}
	settle(t, pub, sub)
	for i := 0; i < 200; i += 10 {
		pub.Publish(t.Context(), tenantA, Events("ctx1", uint64(i+1), 10))
	}
	for i := range rs {
		waitSeqs(t, &rs[i], "ctx1", seqRange(1, 200))
	}
	m := rs[0].Messages()[0]
	if m.Tenant != tenantA || m.Event.TxID != "tx1" || string(m.Event.Data) != `{"n":1}` || m.Event.Kind != "Test" {
		t.Errorf("first message = %+v, want the published event of tenant A", m.Event)
	}
}

func testIsolation(t *testing.T, open Opener) {
	pub, sub := open(t)
	var a, b, other Recorder
	defer sub.Subscribe(tenantA, "ctx1", &a)()
	defer sub.Subscribe(tenantB, "ctx1", &b)()
	defer sub.Subscribe(tenantA, "ctx2", &other)()
	settle(t, pub, sub)
	pub.Publish(t.Context(), tenantA, Events("ctx1", 1, 3))
	pub.Publish(t.Context(), tenantB, Events("ctx1", 1, 1))
	waitSeqs(t, &a, "ctx1", seqRange(1, 3))
	waitSeqs(t, &b, "ctx1", seqRange(1, 1))
	for _, m := range b.Messages() {
		if m.Tenant != tenantB {
			t.Errorf("tenant B's subscriber got a message of %s", m.Tenant)
		}
	}
	// A marker on ctx2 shows everything before it has been dispatched.
	pub.Publish(t.Context(), tenantA, Events("ctx2", 1, 1))
	waitSeqs(t, &other, "ctx2", seqRange(1, 1))
	if got := len(other.Messages()); got != 1 {
		t.Errorf("ctx2's subscriber got %d messages, want only its own 1", got)
	}
}

func testUnsubscribe(t *testing.T, open Opener) {
	pub, sub := open(t)
	var kept, gone Recorder
	defer sub.Subscribe(tenantA, "ctx1", &kept)()
	cancel := sub.Subscribe(tenantA, "ctx1", &gone)
	settle(t, pub, sub)
	pub.Publish(t.Context(), tenantA, Events("ctx1", 1, 2))
	waitSeqs(t, &gone, "ctx1", seqRange(1, 2))
	cancel()
	cancel() // idempotent
	pub.Publish(t.Context(), tenantA, Events("ctx1", 3, 2))
	waitSeqs(t, &kept, "ctx1", seqRange(1, 4))
	if got := gone.Seqs("ctx1"); !slices.Equal(got, seqRange(1, 2)) {
		t.Errorf("after cancel the sink received %v, want only [1 2]", got)
	}
}

// testUnsubscribeOtherTenant: when the last subscriber of one tenant's context id
// leaves, another tenant's subscribers of the same id still get their events.
func testUnsubscribeOtherTenant(t *testing.T, open Opener) {
	pub, sub := open(t)
	var a, b Recorder
	defer sub.Subscribe(tenantA, "ctx1", &a)()
	cancel := sub.Subscribe(tenantB, "ctx1", &b)
	settle(t, pub, sub)
	cancel()
	pub.Publish(t.Context(), tenantA, Events("ctx1", 1, 2))
	waitSeqs(t, &a, "ctx1", seqRange(1, 2))
	if got := b.Seqs("ctx1"); len(got) != 0 {
		t.Errorf("the unsubscribed tenant B received %v", got)
	}
}

func testManyContexts(t *testing.T, open Opener) {
	pub, sub := open(t)
	const contexts, each = 50, 20
	var r Recorder
	for c := range contexts {
		defer sub.Subscribe(tenantA, fmt.Sprintf("ctx%d", c), &r)()
	}
	settle(t, pub, sub)
	var wg sync.WaitGroup
	for c := range contexts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= each; i++ {
				pub.Publish(t.Context(), tenantA, Events(fmt.Sprintf("ctx%d", c), uint64(i), 1))
			}
		}()
	}
	wg.Wait()
	for c := range contexts {
		waitSeqs(t, &r, fmt.Sprintf("ctx%d", c), seqRange(1, each))
	}
}

var countEncoding = events.NewEncoding(func(m *events.Message) []byte {
	encoded.Add(1)
	return append([]byte("frame:"), m.JSON()...)
})

var encoded counter

type counter struct {
	mu sync.Mutex
	n  int
}

func (c *counter) Add(n int) { c.mu.Lock(); c.n += n; c.mu.Unlock() }
func (c *counter) Get() int  { c.mu.Lock(); defer c.mu.Unlock(); return c.n }

// encodingSink encodes every message it receives, as a transport would.
type encodingSink struct{ Recorder }

func (s *encodingSink) Deliver(m *events.Message) {
	m.Encode(countEncoding)
	s.Recorder.Deliver(m)
}

func testEncodedOnce(t *testing.T, open Opener) {
	pub, sub := open(t)
	sinks := make([]encodingSink, 100)
	for i := range sinks {
		defer sub.Subscribe(tenantA, "ctx1", &sinks[i])()
	}
	settle(t, pub, sub)
	before := encoded.Get()
	pub.Publish(t.Context(), tenantA, Events("ctx1", 1, 5))
	for i := range sinks {
		waitSeqs(t, &sinks[i].Recorder, "ctx1", seqRange(1, 5))
	}
	if got := encoded.Get() - before; got != 5 {
		t.Errorf("5 events to 100 subscribers were encoded %d times, want 5", got)
	}
	if got := string(sinks[7].Messages()[0].Encode(countEncoding)); got != `frame:`+string(sinks[0].Messages()[0].JSON()) {
		t.Errorf("encoding = %s", got)
	}
}

// settle makes sure subscriptions made on sub are in effect for pub's publishes: a
// fleet bus subscribes asynchronously. It publishes a probe on a context of its own
// until one arrives.
func settle(t *testing.T, pub, sub events.Bus) {
	t.Helper()
	var r Recorder
	defer sub.Subscribe(tenantA, "settle-probe", &r)()
	testutil.CheckFor(t, 10*time.Second, func() error {
		pub.Publish(t.Context(), tenantA, Events("settle-probe", 1, 1))
		time.Sleep(5 * time.Millisecond)
		if len(r.Messages()) == 0 {
			return fmt.Errorf("a probe published after subscribing never arrived")
		}
		return nil
	})
}
