package execution

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circlegate/circlegate/internal/testutil"
)

// TestGoPool: every function runs once, pooled goroutines are reused up to max, and
// an idle pool ends its goroutines.
func TestGoPool(t *testing.T) {
	p := newGoPool(4)
	var ran atomic.Int32
	for range 3 {
		var wg sync.WaitGroup
		for range 10 {
			p.Go(&wg, func() { ran.Add(1); time.Sleep(time.Millisecond) })
		}
		wg.Wait()
	}
	if ran.Load() != 30 {
		t.Fatalf("ran %d functions, want 30", ran.Load())
	}
	p.mu.Lock()
	n := p.n
	p.mu.Unlock()
	if n < 1 || n > 4 {
		t.Fatalf("%d pooled goroutines, want 1 to 4", n)
	}
	testutil.CheckFor(t, 10*time.Second, func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.n != 0 {
			return errNotIdle
		}
		return nil
	})
}

var errNotIdle = errors.New("pooled goroutines remain after the idle time")
