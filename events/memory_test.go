package events_test

import (
	"testing"

	"github.com/circlegate/circlegate/events"
	"github.com/circlegate/circlegate/events/eventstest"
)

func TestMemory(t *testing.T) {
	eventstest.Run(t, func(t *testing.T) (events.Bus, events.Bus) {
		b := events.NewMemory()
		t.Cleanup(func() { b.Close() })
		return b, b
	})
}
