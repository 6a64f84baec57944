package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/circlegate/circlegate/execution"
	"github.com/circlegate/circlegate/store"
)

// durableCounters is the floor of the embedded mode's mutate (a config with a data
// dir and no [redis] url): each mutate increments its context's counter in Pebble,
// opened with the gateway's own options (store.OpenPebbleDB), writing the counter
// and a tx record of txBytes in one batch synced before the answer, as the gateway's
// commit does. A counter's lock, held from reading the counter to the end of its
// commit, keeps each context's mutations in order.
//
// No queue, no hash chain, no job record, and by default no guest. Three settings
// add what the gateway does:
//
//   - RPCFLOOR_MUTATE_ROUNDS=1: the connections hand their mutations to one goroutine,
//     which runs whatever is waiting in turn and commits it as one batch and one
//     sync (a round), as the gateway's worker does; without it each connection runs
//     its own and commits its own batch, and Pebble's commit pipeline shares a log
//     sync among those that commit at once;
//   - RPCFLOOR_MUTATE_GUEST=1: each mutation runs the installed app's increment on
//     the gateway's engine (execution.Engine) and commits the state it wrote;
//   - RPCFLOOR_MUTATE_WORK (a duration): each mutate spins that long before its
//     commit, as the rest of a mutation's work would.
type durableCounters struct {
	db     *pebble.DB
	tx     []byte
	rounds chan *durableCall // nil unless RPCFLOOR_MUTATE_ROUNDS=1
	engine *execution.Engine // nil unless RPCFLOOR_MUTATE_GUEST=1

	mu       sync.Mutex
	counters map[string]*durableCounter
	app      string // the installed app's id (its sha256) and module
	wasm     []byte
}

type durableCounter struct {
	mu    sync.Mutex
	v     int64
	state map[string][]byte // what the guest wrote, with RPCFLOOR_MUTATE_GUEST
}

// durableCall is a mutation waiting for the committer's round, and its outcome.
type durableCall struct {
	contextID string
	c         *durableCounter // locked by the caller until done
	v         int64
	writes    []store.Write
	err       error
	done      chan struct{}
}

// txBytes is the size of the tx record each mutate writes: about what the gateway's
// tx log entry for the counter's increment takes.
const txBytes = 250

var (
	mutateRounds bool          // RPCFLOOR_MUTATE_ROUNDS=1
	mutateGuest  bool          // RPCFLOOR_MUTATE_GUEST=1
	mutateWork   time.Duration // RPCFLOOR_MUTATE_WORK
)

// openDurable opens the floor's database in dir; the engine (RPCFLOOR_MUTATE_GUEST)
// keeps its compiled modules in cacheDir.
func openDurable(dir, cacheDir string) (*durableCounters, error) {
	db, err := store.OpenPebbleDB(store.PebbleConfig{Dir: filepath.Join(dir, "rpcfloor")})
	if err != nil {
		return nil, err
	}
	tx := make([]byte, txBytes)
	for i := range tx {
		tx[i] = 'a' + byte(i%26)
	}
	d := &durableCounters{db: db, tx: tx, counters: map[string]*durableCounter{}}
	if mutateGuest {
		cfg := execution.EngineConfig{CacheDir: cacheDir}
		if d.engine, err = execution.NewEngine(context.Background(), cfg, nil); err != nil {
			return nil, errors.Join(err, db.Close())
		}
	}
	if mutateRounds {
		d.rounds = make(chan *durableCall, 4096)
		go d.commitRounds()
	}
	return d, nil
}

// guestRunner is a counter store that runs the app that app.install sends (or the
// module RPCFLOOR_WASM names).
type guestRunner interface{ install(wasm []byte) }

// install keeps wasm as the app that mutate runs (with RPCFLOOR_MUTATE_GUEST).
func (d *durableCounters) install(wasm []byte) {
	if d.engine == nil || len(wasm) == 0 {
		return
	}
	sum := sha256.Sum256(wasm)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.app, d.wasm = hex.EncodeToString(sum[:]), wasm
}

func (d *durableCounters) counter(contextID string) *durableCounter {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.counters[contextID]
	if c == nil {
		c = &durableCounter{state: map[string][]byte{}}
		d.counters[contextID] = c
	}
	return c
}

// mutate increments contextID's counter durably and returns its new value.
func (d *durableCounters) mutate(contextID string) (int64, error) {
	c := d.counter(contextID)
	c.mu.Lock()
	defer c.mu.Unlock()
	spin(mutateWork)
	var v int64
	var writes []store.Write
	var err error
	if d.rounds != nil {
		call := &durableCall{contextID: contextID, c: c, done: make(chan struct{})}
		d.rounds <- call
		<-call.done
		v, writes, err = call.v, call.writes, call.err
	} else {
		v, writes, err = d.apply(contextID, c, nil)
	}
	if err != nil {
		return 0, err
	}
	c.v = v
	for _, w := range writes {
		c.state[string(w.Key)] = w.Value
	}
	return v, nil
}

// apply runs the increment of counter c (the guest's, or one more) and adds its
// records to b, or commits them with their own sync when b is nil. It returns the
// new value and the guest's writes.
func (d *durableCounters) apply(contextID string, c *durableCounter, b *pebble.Batch) (int64, []store.Write, error) {
	v := c.v + 1
	var writes []store.Write
	if d.engine != nil {
		var err error
		if v, writes, err = d.runGuest(contextID, c); err != nil {
			return 0, nil, err
		}
	}
	own := b == nil
	if own {
		b = d.db.NewBatch()
		defer b.Close()
	}
	if err := d.write(b, contextID, v, writes); err != nil {
		return 0, nil, err
	}
	if own {
		if err := b.Commit(pebble.Sync); err != nil {
			return 0, nil, err
		}
	}
	return v, writes, nil
}

// runGuest runs the app's increment on the counter's state and returns the value it
// answered and what it wrote.
func (d *durableCounters) runGuest(contextID string, c *durableCounter) (int64, []store.Write, error) {
	d.mu.Lock()
	app, wasm := d.app, d.wasm
	d.mu.Unlock()
	if app == "" {
		return 0, nil, errors.New("no app installed")
	}
	res, err := d.engine.Run(context.Background(), execution.Call{
		Tenant: "rpcfloor", AppID: app, Wasm: func() ([]byte, error) { return wasm, nil },
		Method: "increment", ContextID: contextID, Time: time.Now(), State: counterState(c.state),
	})
	if err != nil {
		return 0, nil, err
	}
	var out struct {
		Value int64 `json:"value"`
	}
	if err := json.Unmarshal(res.Output, &out); err != nil {
		return 0, nil, fmt.Errorf("the app's increment answered %q: %w", res.Output, err)
	}
	return out.Value, res.Writes, nil
}

// counterState is a counter's state as the engine reads it.
type counterState map[string][]byte

func (s counterState) Get(key []byte) ([]byte, bool, error) {
	v, ok := s[string(key)]
	return v, ok, nil
}

func (s counterState) Scan(_, _ []byte, _ int) ([]store.KV, error) {
	return nil, errors.New("rpcfloor: no scans")
}

// write adds a mutation's records to b: the guest's writes (or the counter's new
// value v) and a tx.
func (d *durableCounters) write(b *pebble.Batch, contextID string, v int64, writes []store.Write) error {
	for _, w := range writes {
		if err := b.Set([]byte("s/"+contextID+"/"+string(w.Key)), w.Value, nil); err != nil {
			return err
		}
	}
	if writes == nil {
		var state [8]byte
		binary.BigEndian.PutUint64(state[:], uint64(v))
		if err := b.Set([]byte("s/"+contextID), state[:], nil); err != nil {
			return err
		}
	}
	return b.Set(fmt.Appendf(nil, "t/%s/%016x", contextID, v), d.tx, nil)
}

// commitRounds runs the waiting mutations in rounds: each one's increment in turn,
// on this goroutine, then one batch and one sync for all of them. Each caller holds
// its counter's lock, so a round has at most one mutation per counter.
func (d *durableCounters) commitRounds() {
	var round []*durableCall
	for {
		round = drain(d.rounds, append(round[:0], <-d.rounds), 1024)
		b := d.db.NewBatch()
		for _, c := range round {
			c.v, c.writes, c.err = d.apply(c.contextID, c.c, b)
		}
		err := b.Commit(pebble.Sync)
		b.Close()
		for _, c := range round {
			if c.err == nil {
				c.err = err
			}
			close(c.done)
		}
	}
}

// get reads a counter.
func (d *durableCounters) get(contextID string) (int64, error) {
	c := d.counter(contextID)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.v, nil
}

// close closes the engine and the database (for tests; the server never closes).
func (d *durableCounters) close() error {
	var err error
	if d.engine != nil {
		err = d.engine.Close(context.Background())
	}
	return errors.Join(err, d.db.Close())
}
