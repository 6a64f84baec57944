package events

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/circlegate/circlegate/internal/redisx"
	"github.com/circlegate/circlegate/store"
)

// RedisConfig configures the fleet's event bus.
type RedisConfig struct {
	// Client is the connection to Redis. Required; the caller closes it after the bus.
	Client redis.UniversalClient
	// Prefix starts every channel, as in store.RedisConfig. Empty means "cg".
	Prefix string
	// Logger receives the bus's warnings. Nil discards them.
	Logger *slog.Logger
}

// Redis is the fleet's bus: a node subscribes to the pub/sub channel of a tenant's
// context (store.RedisEventChannel) while it has local subscribers to it (the
// broker's hooks keep one Redis subscription per context per node, whatever the
// number of local subscribers), and feeds what arrives to its broker. The Redis store publishes the
// events of each write on that channel from the write's own script, so events reach
// every node in commit order; Publish is for events no write stores (ContextDeleted)
// and for tests.
//
// Pub/sub delivers at most once: messages published while a node's subscription
// reconnects are lost to it. A Feed notices the gap at the next event and reads it
// from the history stream.
type Redis struct {
	rdb    redis.UniversalClient
	prefix string
	log    *slog.Logger
	broker *Broker
	sub    *redis.PubSub

	mu      sync.Mutex
	cond    *sync.Cond
	changes []change // subscription changes for the Redis connection, in order
	states  map[string]*channelState
	closed  bool
	done    sync.WaitGroup
}

// channelState follows one channel's subscription until Redis confirms it.
type channelState struct {
	subscribed bool          // the broker wants it (between its first and last hook)
	pending    int           // subscribe confirmations still to come
	ready      chan struct{} // closed once confirmed while subscribed
}

// readyTimeout bounds how long Subscribe waits for Redis to confirm a subscription.
const readyTimeout = 3 * time.Second

type change struct {
	channel   string
	subscribe bool
}

var _ Bus = (*Redis)(nil)

// NewRedis starts a node's Redis bus.
func NewRedis(cfg RedisConfig) (*Redis, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = "cg"
	}
	if err := redisx.CheckPrefix(cfg.Prefix); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	b := &Redis{rdb: cfg.Client, prefix: cfg.Prefix, log: cfg.Logger.With("component", "events"), states: make(map[string]*channelState)}
	b.cond = sync.NewCond(&b.mu)
	b.broker = NewBroker(Hooks{First: b.first, Last: b.last})
	b.sub = b.rdb.Subscribe(context.Background())
	msgs := b.sub.ChannelWithSubscriptions(redis.WithChannelSize(4096))
	b.done.Add(2)
	go b.applyChanges()
	go b.receive(msgs)
	return b, nil
}

// first and last are the broker's hooks: called under its lock, they only queue.
func (b *Redis) first(tenant, contextID string) {
	ch := store.RedisEventChannel(b.prefix, tenant, contextID)
	b.mu.Lock()
	st := b.states[ch]
	if st == nil || isClosed(st.ready) {
		st = &channelState{ready: make(chan struct{}), pending: stPending(st)}
		b.states[ch] = st
	}
	st.subscribed = true
	st.pending++
	b.changes = append(b.changes, change{ch, true})
	b.mu.Unlock()
	b.cond.Signal()
}

func (b *Redis) last(tenant, contextID string) {
	ch := store.RedisEventChannel(b.prefix, tenant, contextID)
	b.mu.Lock()
	if st := b.states[ch]; st != nil {
		st.subscribed = false
		if st.pending == 0 {
			delete(b.states, ch)
		}
	}
	b.changes = append(b.changes, change{ch, false})
	b.mu.Unlock()
	b.cond.Signal()
}

func stPending(st *channelState) int {
	if st == nil {
		return 0
	}
	return st.pending
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// confirmed records Redis's confirmation of a subscribe command.
func (b *Redis) confirmed(ch string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.states[ch]
	if st == nil || st.pending == 0 { // a resubscription after a reconnect
		return
	}
	st.pending--
	switch {
	case st.pending > 0:
	case st.subscribed:
		if !isClosed(st.ready) {
			close(st.ready)
		}
	default:
		delete(b.states, ch)
	}
}

// waitReady waits until Redis confirmed the subscription to ch, or readyTimeout.
func (b *Redis) waitReady(ch string) {
	b.mu.Lock()
	st := b.states[ch]
	b.mu.Unlock()
	if st == nil {
		return
	}
	select {
	case <-st.ready:
	case <-time.After(readyTimeout):
		b.log.Warn("Redis did not confirm an event subscription in time; events until it does are read from history at the next one", "channel", ch)
	}
}

// applyChanges sends the queued subscription changes to Redis in order, several
// channels per command. A failed command needs no retry: the subscription keeps its
// channel set and subscribes to all of it again when it reconnects.
func (b *Redis) applyChanges() {
	defer b.done.Done()
	for {
		b.mu.Lock()
		for len(b.changes) == 0 && !b.closed {
			b.cond.Wait()
		}
		if b.closed {
			b.mu.Unlock()
			return
		}
		batch := b.changes
		b.changes = nil
		b.mu.Unlock()
		for len(batch) > 0 {
			n := 1
			for n < len(batch) && batch[n].subscribe == batch[0].subscribe {
				n++
			}
			channels := make([]string, n)
			for i := range n {
				channels[i] = batch[i].channel
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			var err error
			if batch[0].subscribe {
				err = b.sub.Subscribe(ctx, channels...)
			} else {
				err = b.sub.Unsubscribe(ctx, channels...)
			}
			cancel()
			if err != nil {
				b.log.Warn("event subscription change failed; it is made again on reconnect", "channels", n, "err", err)
			}
			batch = batch[n:]
		}
	}
}

// receive hands what arrives on the subscription to the broker, and notes Redis's
// confirmations of subscriptions.
func (b *Redis) receive(msgs <-chan any) {
	defer b.done.Done()
	for v := range msgs {
		m, ok := v.(*redis.Message)
		if !ok {
			if s, ok := v.(*redis.Subscription); ok && s.Kind == "subscribe" {
				b.confirmed(s.Channel)
			}
			continue
		}
		tenant, evs, err := store.DecodeEventMessage([]byte(m.Payload))
		if err != nil {
			b.log.Error("undecodable event message", "channel", m.Channel, "err", err)
			continue
		}
		b.broker.Publish(tenant, evs)
	}
}

// publishScript publishes ARGV[2] on the channel ARGV[1] == KEYS[1]. Naming the
// channel as a key routes the command to the node that owns the context's slot in a
// cluster: the one whose commit scripts publish the context's events, so that this
// message keeps its place among theirs (PUBLISH calls sent to different cluster nodes
// reach subscribers in no set order).
var publishScript = redis.NewScript(`return redis.call('PUBLISH', KEYS[1], ARGV[1])`)

// Publish publishes events on their contexts' channels (one message per context, in
// one pipeline); every node subscribed to them, this one included, delivers them.
func (b *Redis) Publish(ctx context.Context, tenant string, events []store.Event) {
	if len(events) == 0 {
		return
	}
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	pipe := b.rdb.Pipeline()
	for from := 0; from < len(events); {
		to := from + 1
		for to < len(events) && events[to].ContextID == events[from].ContextID {
			to++
		}
		ch := store.RedisEventChannel(b.prefix, tenant, events[from].ContextID)
		publishScript.Eval(ctx, pipe, []string{ch}, store.EncodeEventMessage(tenant, events[from:to]))
		from = to
	}
	if _, err := pipe.Exec(ctx); err != nil {
		b.log.Warn("publish events failed", "events", len(events), "err", err)
	}
}

// Subscribe adds sink to a context's subscribers on this node; the node subscribes to
// the context's channel with its first local subscriber. It returns once Redis has
// confirmed that subscription (waiting at most a few seconds), so every event
// committed after Subscribe returns reaches sink.
func (b *Redis) Subscribe(tenant, contextID string, sink Sink) (cancel func()) {
	cancel = b.broker.Subscribe(tenant, contextID, sink)
	b.waitReady(store.RedisEventChannel(b.prefix, tenant, contextID))
	return cancel
}

// Broker returns the node's broker (for its metrics).
func (b *Redis) Broker() *Broker { return b.broker }

// Close unsubscribes the node and stops delivery after what was received.
func (b *Redis) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	b.cond.Broadcast()
	err := b.sub.Close() // ends receive's channel
	b.done.Wait()
	b.broker.Close()
	return err
}
