package events

import (
	"context"

	"github.com/circlegate/circlegate/store"
)

// Memory is the bus of one process: events committed here reach subscribers here.
type Memory struct {
	broker *Broker
}

// NewMemory starts a memory bus.
func NewMemory() *Memory { return &Memory{broker: NewBroker(Hooks{})} }

// Publish queues events for this process's subscribers.
func (m *Memory) Publish(_ context.Context, tenant string, events []store.Event) {
	m.broker.Publish(tenant, events)
}

// Subscribe adds sink to a context's subscribers.
func (m *Memory) Subscribe(tenant, contextID string, sink Sink) func() {
	return m.broker.Subscribe(tenant, contextID, sink)
}

// Close stops delivery after what is queued.
func (m *Memory) Close() error {
	m.broker.Close()
	return nil
}
