package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/circlegate/circlegate/execution"
)

// With RPCFLOOR_FLEET_GUEST=1 the fleet floor's workers also do what a worker must
// do before any commit: read each job's state (one pipeline of HGETs per batch) and
// run the app's increment on it, on the gateway's engine (execution.Engine). The
// commit still increments with HINCRBY, which needs no check of the state read: the
// guest's run is its price, not its result. The gateway keeps the module
// app.install sends (or the one RPCFLOOR_WASM names) under floorApp for the workers
// to load.
var fleetGuest bool

const floorApp = "floor:app"

// install implements guestRunner: it keeps the module for the workers.
func (g *fleetGateway) install(wasm []byte) {
	if len(wasm) > 0 {
		_ = g.rdb.Set(context.Background(), floorApp, wasm, 0).Err()
	}
}

// floorGuest runs the installed app's increment for a worker's jobs.
type floorGuest struct {
	rdb    *redis.Client
	engine *execution.Engine

	mu   sync.Mutex
	app  string
	wasm []byte
}

// newEngineMu keeps engines from starting at once: wazero's compilation cache reads
// its version into a package variable without a lock (the tests start two workers in
// one process).
var newEngineMu sync.Mutex

func newFloorGuest(rdb *redis.Client, cacheDir string) (*floorGuest, error) {
	newEngineMu.Lock()
	defer newEngineMu.Unlock()
	e, err := execution.NewEngine(context.Background(), execution.EngineConfig{CacheDir: cacheDir}, nil)
	if err != nil {
		return nil, err
	}
	return &floorGuest{rdb: rdb, engine: e}, nil
}

// module returns the installed app, read from Redis the first time.
func (f *floorGuest) module(ctx context.Context) (string, []byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.app == "" {
		wasm, err := f.rdb.Get(ctx, floorApp).Bytes()
		if err != nil {
			return "", nil, errors.Join(errors.New("no app installed"), err)
		}
		sum := sha256.Sum256(wasm)
		f.app, f.wasm = hex.EncodeToString(sum[:]), wasm
	}
	return f.app, f.wasm, nil
}

// run reads the counters of a batch's contexts and runs the increment on each.
func (f *floorGuest) run(ctx context.Context, contexts []string) error {
	app, wasm, err := f.module(ctx)
	if err != nil {
		return err
	}
	pipe := f.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(contexts))
	for i, c := range contexts {
		cmds[i] = pipe.HGet(ctx, counterKey(c), "count")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	for i, c := range contexts {
		state := counterState{}
		if v, err := cmds[i].Int64(); err == nil {
			state["count"] = strconv.AppendInt(nil, v, 10)
		}
		_, err := f.engine.Run(ctx, execution.Call{
			Tenant: "rpcfloor", AppID: app, Wasm: func() ([]byte, error) { return wasm, nil },
			Method: "increment", ContextID: c, Time: time.Now(), State: state,
		})
		if err != nil {
			return err
		}
	}
	return nil
}
