package storetest

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circlegate/circlegate/store"
)

// testParallelContexts: 8 writers, each committing 200 txs to its own context.
func testParallelContexts(t *testing.T, open Opener) {
	const writers, txs = 8, 200
	s := newStore(t, open, store.HistoryConfig{})
	app := installApp(t, s, tenantA, "app")
	heads := make([]store.Context, writers)
	for i := range heads {
		heads[i] = createContext(t, s, tenantA, app.ID)
	}
	var wg sync.WaitGroup
	for i := range heads {
		wg.Go(func() {
			for n := range txs {
				tx := NextTx(heads[i], time.Now(), []store.Write{Set("n", fmt.Sprint(n)), Set(fmt.Sprint("k", n%10), "v")}, "Mutated")
				c := store.Commit{Tenant: tenantA, ContextID: heads[i].ID, ExpectedSeq: heads[i].Seq, Tx: tx}
				if err := s.Commit(t.Context(), c); err != nil {
					t.Errorf("writer %d: Commit %d: %v", i, n, err)
					return
				}
				heads[i] = Advance(heads[i], tx)
			}
		})
	}
	wg.Wait()
	for i, h := range heads {
		got := mustGetContext(t, s, tenantA, h.ID)
		sameContext(t, fmt.Sprint("writer ", i), got, h)
		if got.Seq != txs {
			t.Errorf("writer %d: seq %d, want %d", i, got.Seq, txs)
		}
		if keys, _, err := s.StateSize(t.Context(), h.ID); err != nil || keys != 11 {
			t.Errorf("writer %d: %d keys, err %v; want 11", i, keys, err)
		}
	}
}

// testRacingCommits: 8 writers race to commit on one context, each reading the head
// first; exactly one wins each seq, the others get ErrStale.
func testRacingCommits(t *testing.T, open Opener) {
	const writers, tries = 8, 40
	s := newStore(t, open, store.HistoryConfig{})
	app := installApp(t, s, tenantA, "app")
	c0 := createContext(t, s, tenantA, app.ID)
	var (
		mu      sync.Mutex
		winners = map[uint64]int{} // seq -> wins
		stale   int
		wg      sync.WaitGroup
	)
	for w := range writers {
		wg.Go(func() {
			for range tries {
				head, err := s.GetContext(t.Context(), tenantA, c0.ID)
				if err != nil {
					t.Errorf("GetContext: %v", err)
					return
				}
				tx := NextTx(head, time.Now(), []store.Write{Set("winner", fmt.Sprint(w))}, "Mutated")
				err = s.Commit(t.Context(), store.Commit{Tenant: tenantA, ContextID: head.ID, ExpectedSeq: head.Seq, Tx: tx})
				mu.Lock()
				switch {
				case err == nil:
					winners[tx.Seq]++
				case errors.Is(err, store.ErrStale):
					stale++
				default:
					t.Errorf("writer %d: Commit: %v", w, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	head := mustGetContext(t, s, tenantA, c0.ID)
	t.Logf("%d commits won, %d stale", len(winners), stale)
	if head.Seq != uint64(len(winners)) || len(winners)+stale != writers*tries {
		t.Errorf("seq %d, %d seqs won, %d stale, %d tries", head.Seq, len(winners), stale, writers*tries)
	}
	for seq := uint64(1); seq <= head.Seq; seq++ {
		if winners[seq] != 1 {
			t.Errorf("seq %d won %d times", seq, winners[seq])
		}
	}
	verifyChain(t, s, head)
	if evs, _, err := s.Events(t.Context(), c0.ID, 0, 1000); err != nil || uint64(len(evs)) != head.EventSeq {
		t.Errorf("history holds %d events, eventSeq %d, err %v", len(evs), head.EventSeq, err)
	}
}

// testReadsSeeCommits: while a writer commits 1, 2, 3, ... to a key, a Get that
// starts after the commit of n returned never reads less than n, and the key reads
// the last value once the writer is done.
func testReadsSeeCommits(t *testing.T, open Opener) {
	const txs, readers = 200, 4
	s := newStore(t, open, store.HistoryConfig{})
	app := installApp(t, s, tenantA, "app")
	h := createContext(t, s, tenantA, app.ID, Set("n", "0"))
	id := h.ID
	var committed atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range readers {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				low := committed.Load()
				v, ok, err := s.Get(t.Context(), id, []byte("n"))
				n, perr := strconv.ParseInt(string(v), 10, 64)
				if err != nil || !ok || perr != nil || n < low {
					t.Errorf("Get(n) = %q, %v, %v after %d was committed", v, ok, err, low)
					return
				}
			}
		})
	}
	for n := int64(1); n <= txs; n++ {
		h = commitNext(t, s, h, []store.Write{Set("n", fmt.Sprint(n))})
		committed.Store(n)
	}
	close(done)
	wg.Wait()
	if v, _, err := s.Get(t.Context(), h.ID, []byte("n")); err != nil || string(v) != fmt.Sprint(txs) {
		t.Fatalf("Get(n) at the end = %q, %v; want %d", v, err, txs)
	}
}
