package events

import (
	"context"

	"github.com/circlegate/circlegate/store"
)

// Sink receives the messages of the contexts it subscribed to, one at a time per
// context and in the order the bus received them. Deliver is called on the bus's
// dispatch goroutine: it must not block (queue the message or drop the subscriber).
type Sink interface {
	Deliver(m *Message)
}

// Bus delivers the events of durable commits to the subscribers of their context on
// every node. Every backend passes the conformance suite in eventstest.
type Bus interface {
	// Publish hands over events of one tenant that are already durable, in seq order
	// per context. It does not wait for delivery.
	Publish(ctx context.Context, tenant string, events []store.Event)
	// Subscribe delivers the events of one context that reach this node from now on
	// to sink, until cancel is called. cancel is idempotent.
	Subscribe(tenant, contextID string, sink Sink) (cancel func())
	// Close stops delivery; Publish and Subscribe after Close do nothing.
	Close() error
}
