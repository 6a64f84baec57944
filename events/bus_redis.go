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

// Redis is the fleet's bus: a node subscribes to the pub/sub channel of a context
// (store.RedisEventChannel) while it has local subscribers to it (the broker's hooks
// keep one Redis subscription per context per node, whatever the number of local
// subscribers), and feeds what arrives to its broker. The Redis store publishes the
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
	closed  bool
	done    sync.WaitGroup
}

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
	b := &Redis{rdb: cfg.Client, prefix: cfg.Prefix, log: cfg.Logger.With("component", "events")}
	b.cond = sync.NewCond(&b.mu)
	b.broker = NewBroker(Hooks{First: b.first, Last: b.last})
	b.sub = b.rdb.Subscribe(context.Background())
	msgs := b.sub.Channel(redis.WithChannelSize(4096))
	b.done.Add(2)
	go b.applyChanges()
	go b.receive(msgs)
	return b, nil
}

// first and last are the broker's hooks: called under its lock, they only queue.
func (b *Redis) first(_, contextID string) { b.queue(change{store.RedisEventChannel(b.prefix, contextID), true}) }
func (b *Redis) last(_, contextID string)  { b.queue(change{store.RedisEventChannel(b.prefix, contextID), false}) }

func (b *Redis) queue(c change) {
	b.mu.Lock()
	b.changes = append(b.changes, c)
	b.mu.Unlock()
	b.cond.Signal()
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

// receive hands what arrives on the subscription to the broker.
func (b *Redis) receive(msgs <-chan *redis.Message) {
	defer b.done.Done()
	for m := range msgs {
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
		ch := store.RedisEventChannel(b.prefix, events[from].ContextID)
		publishScript.Eval(ctx, pipe, []string{ch}, store.EncodeEventMessage(tenant, events[from:to]))
		from = to
	}
	if _, err := pipe.Exec(ctx); err != nil {
		b.log.Warn("publish events failed", "events", len(events), "err", err)
	}
}

// Subscribe adds sink to a context's subscribers on this node; the node subscribes to
// the context's channel with its first local subscriber, asynchronously.
func (b *Redis) Subscribe(tenant, contextID string, sink Sink) (cancel func()) {
	return b.broker.Subscribe(tenant, contextID, sink)
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
