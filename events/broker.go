package events

import (
	"hash/maphash"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/circlegate/circlegate/store"
)

// Broker is one node's registry of subscribers: it fans out the events a Bus hands it
// to the sinks of their context. Fan-out runs on a few dispatch goroutines, one per
// shard of contexts, so a context's messages keep their order and Publish never waits
// for a subscriber.
type Broker struct {
	mu      sync.Mutex // topics' membership and the hooks
	topics  map[topicKey]*topic
	hooks   Hooks
	seed    maphash.Seed
	shards  []chan batch
	wg      sync.WaitGroup
	closeMu sync.RWMutex // held to send on shards, so Close never closes under a send
	closed  atomic.Bool

	delivered atomic.Uint64
}

// Hooks let a Bus follow which contexts have subscribers on this node, to listen to
// them only while they do. They are called with the broker's lock held, in order, so
// a First is always followed by its Last before the next First of that context; they
// must not block on the network (queue the change instead).
type Hooks struct {
	First func(tenant, contextID string)
	Last  func(tenant, contextID string)
}

type topicKey struct{ tenant, contextID string }

// topic is one context's subscribers on this node. Dispatch reads an immutable
// snapshot; a change marks it stale, and the next dispatch rebuilds it once, so a
// burst of many unsubscribes costs one copy, not one each.
type topic struct {
	members  map[Sink]struct{} // under Broker.mu
	snapshot atomic.Pointer[[]Sink]
}

// sinks returns the current subscribers.
func (b *Broker) sinks(t *topic) []Sink {
	if p := t.snapshot.Load(); p != nil {
		return *p
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if p := t.snapshot.Load(); p != nil {
		return *p
	}
	list := make([]Sink, 0, len(t.members))
	for s := range t.members {
		list = append(list, s)
	}
	t.snapshot.Store(&list)
	return list
}

type batch struct {
	tenant string
	events []store.Event
}

// dispatchQueue is the number of batches a shard holds before Publish waits.
const dispatchQueue = 4096

// NewBroker starts a broker with one dispatch goroutine per CPU.
func NewBroker(h Hooks) *Broker {
	b := &Broker{topics: make(map[topicKey]*topic), hooks: h, seed: maphash.MakeSeed()}
	b.shards = make([]chan batch, runtime.GOMAXPROCS(0))
	for i := range b.shards {
		ch := make(chan batch, dispatchQueue)
		b.shards[i] = ch
		b.wg.Add(1)
		go b.dispatch(ch)
	}
	return b
}

// Subscribe adds sink to a context's subscribers; cancel removes it.
func (b *Broker) Subscribe(tenant, contextID string, sink Sink) (cancel func()) {
	k := topicKey{tenant, contextID}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return func() {}
	}
	t := b.topics[k]
	if t == nil {
		t = &topic{members: make(map[Sink]struct{})}
		b.topics[k] = t
		if b.hooks.First != nil {
			b.hooks.First(tenant, contextID)
		}
	}
	t.members[sink] = struct{}{}
	t.snapshot.Store(nil)
	var once sync.Once
	return func() { once.Do(func() { b.unsubscribe(k, t, sink) }) }
}

func (b *Broker) unsubscribe(k topicKey, t *topic, sink Sink) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := t.members[sink]; !ok {
		return
	}
	delete(t.members, sink)
	t.snapshot.Store(nil)
	if len(t.members) == 0 && b.topics[k] == t {
		delete(b.topics, k)
		if b.hooks.Last != nil {
			b.hooks.Last(k.tenant, k.contextID)
		}
	}
}

// Has reports whether a context has subscribers on this node.
func (b *Broker) Has(tenant, contextID string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.topics[topicKey{tenant, contextID}] != nil
}

// Publish queues events of one tenant for fan-out. Events of one context must come in
// seq order; events of contexts nobody here subscribed to are dropped cheaply.
func (b *Broker) Publish(tenant string, events []store.Event) {
	if len(events) == 0 {
		return
	}
	b.closeMu.RLock()
	defer b.closeMu.RUnlock()
	if b.closed.Load() {
		return
	}
	// One shard per context keeps its order; a batch spanning contexts is split.
	first := b.shard(events[0].ContextID)
	same := true
	for _, ev := range events[1:] {
		if b.shard(ev.ContextID) != first {
			same = false
			break
		}
	}
	if same {
		b.send(first, batch{tenant: tenant, events: events})
		return
	}
	for _, ev := range events {
		b.send(b.shard(ev.ContextID), batch{tenant: tenant, events: []store.Event{ev}})
	}
}

func (b *Broker) send(shard int, bt batch) { b.shards[shard] <- bt }

func (b *Broker) shard(contextID string) int {
	return int(maphash.String(b.seed, contextID) % uint64(len(b.shards)))
}

func (b *Broker) dispatch(ch chan batch) {
	defer b.wg.Done()
	for bt := range ch {
		for _, ev := range bt.events {
			t := b.lookup(bt.tenant, ev.ContextID)
			if t == nil {
				continue
			}
			sinks := b.sinks(t)
			if len(sinks) == 0 {
				continue
			}
			m := NewMessage(bt.tenant, ev)
			for _, s := range sinks {
				s.Deliver(m)
			}
			b.delivered.Add(uint64(len(sinks)))
		}
	}
}

func (b *Broker) lookup(tenant, contextID string) *topic {
	b.mu.Lock()
	t := b.topics[topicKey{tenant, contextID}]
	b.mu.Unlock()
	return t
}

// Delivered returns the number of deliveries made so far.
func (b *Broker) Delivered() uint64 { return b.delivered.Load() }

// Close stops the dispatch goroutines after they deliver what is queued.
func (b *Broker) Close() {
	b.closeMu.Lock()
	b.mu.Lock()
	already := b.closed.Swap(true)
	b.mu.Unlock()
	if !already {
		for _, ch := range b.shards {
			close(ch)
		}
	}
	b.closeMu.Unlock()
	b.wg.Wait()
}
