package execution

import (
	"sync"
	"time"
)

// The embedded queue's workers take turns: one worker at a time takes a batch and
// runs it (executes its jobs on up to GOMAXPROCS goroutines, commits them with one
// storage sync), while the jobs submitted meanwhile wait for the next batch. One
// batch in flight makes batches as large as the load allows, and every sync and
// memtable batch is shared by more jobs: on two cores a Stripe webhook costs the
// gateway about 10% less CPU than with two batches in flight, and mutations likewise.
//
// A batch that runs longer than longBatch (a guest spinning until its time limit,
// a slow disk) hands the turn on, so the other workers carry on with the other
// contexts: the workers setting still bounds how many batches run at once.
const longBatch = 20 * time.Millisecond

// batchTurn is whose turn it is to take a batch.
type batchTurn chan struct{}

func newBatchTurn() batchTurn { return make(batchTurn, 1) }

// take waits for the turn and returns its release, which may be called more than
// once (the first call counts).
func (t batchTurn) take() (release func()) {
	t <- struct{}{}
	var once sync.Once
	return func() { once.Do(func() { <-t }) }
}
