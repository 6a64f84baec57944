package execution_test

import (
	"testing"

	"github.com/circlegate/circlegate/execution"
	"github.com/circlegate/circlegate/execution/queuetest"
)

func TestMemoryQueue(t *testing.T) {
	queuetest.Run(t, func(t *testing.T, capacity int) execution.Queue {
		q, err := execution.NewMemoryQueue(execution.MemoryQueueConfig{Capacity: capacity})
		if err != nil {
			t.Fatal(err)
		}
		return q
	})
}
