package execution

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"time"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/store"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
)

// engineInstance is one instantiated module. It serves one call at a time; between
// calls it sits in its pool.
type engineInstance struct {
	app  *engineApp // holds a reference on the app from instantiate to close
	mod  api.Module
	fns  map[string]api.Function // exported functions, looked up once
	stop engineStop              // its $fuel and $stop (engine_interrupt.go)

	call engineCall // the running call; zero between calls
	ctx  *engineCtx // the context of its calls

	// Deterministic clocks and randomness (WASI), set per call.
	txNanos  int64 // the call's tx time, unix nanoseconds
	monotime int64 // what the monotonic clock advanced within the call
	rng      rand.ChaCha8
	seeded   bool

	// Memory: the guest's linear memory grows only up to memLimit bytes.
	memLimit  uint64
	memDenied bool
	memory    *engineMemory
}

// engineCall is the state of one call: its registers, its writes laid over the
// committed state, and what it emitted, logged and returned.
type engineCall struct {
	c      Call
	lim    Limits
	active bool
	regs   []engineRegister
	output []byte
	writes []store.Write
	index  map[string]int // key -> position in writes
	events []Emitted
	logs   []string
	drops  int
	line   []byte // an unfinished stdout/stderr line
	stderr []byte // the first bytes the guest wrote to stderr
	fail   error  // why a host function trapped
}

type engineRegister struct {
	id   uint64
	data []byte
}

type hostCtxKey struct{}

// instantiate starts a new instance of the pool's app: WASI with deterministic clocks
// and randomness, no files, no args, no env; then the reactor's _initialize.
func (e *Engine) instantiate(ctx context.Context, p *enginePool, c *Call, lim *Limits) (*engineInstance, error) {
	if err := p.app.fits(lim); err != nil {
		return nil, err
	}
	in := &engineInstance{app: p.app, fns: map[string]api.Function{}}
	p.app.ref()
	in.call.index = map[string]int{}
	in.setTime(c.Time)
	in.memLimit = uint64(lim.MemoryPages) * pageBytes
	cfg := wazero.NewModuleConfig().WithName("").WithStartFunctions().
		WithWalltime(in.walltime, 1).WithNanotime(in.nanotime, 1).WithNanosleep(in.nanosleep).
		WithOsyield(func() {}).WithRandSource(engineRand{in}).
		WithStdout(engineStdio{in, false}).WithStderr(engineStdio{in, true})
	ctx = experimental.WithMemoryAllocator(ctx, experimental.MemoryAllocatorFunc(in.allocate))
	in.ctx = newEngineCtx(in)
	in.ctx.arm(ctx, lim.Timeout, c.Deadline, engineStop{})
	defer in.release()
	mod, err := e.rt.InstantiateModule(in.ctx, p.app.mod, cfg)
	defer in.leaveMemory() // after any close below: the start functions are done
	if err != nil {
		defer in.close() // no module: only gives back its reference on the app
		if in.memory != nil {
			in.memory.Free() // wazero frees only the memory of a module it made
		}
		if p.isEvicted() {
			return nil, errs.Wrap(errs.Overloaded, err, "app %s was evicted as the call started; try again", c.AppID)
		}
		return nil, in.startFailure(err, lim) // a trap or timeout in a start function
	}
	in.mod = mod
	e.instantiated.Add(1)
	fuel, ok1 := mod.ExportedGlobal(abiFuel).(api.MutableGlobal)
	stop, ok2 := mod.ExportedGlobal(abiStop).(api.MutableGlobal)
	if !ok1 || !ok2 { // compile adds them to every module
		in.close()
		return nil, errs.E(errs.Internal, "app %s has no fuel globals", c.AppID)
	}
	in.stop = engineStop{fuel, stop}
	in.ctx.attach(in.stop)
	for _, start := range []struct {
		name string
		has  bool
	}{{abiStart, p.app.start}, {abiReactorInit, p.app.reactor}} {
		if !start.has {
			continue
		}
		if err := mod.ExportedFunction(start.name).CallWithStack(in.ctx, nil); err != nil {
			err = in.startFailure(err, lim) // before release disarms the context
			in.close()
			e.discarded.Add(1)
			return nil, err
		}
	}
	in.end() // forget what start-up wrote to stderr
	return in, nil
}

// leaveMemory ends the start-up's hold on the memory, if it has one.
func (in *engineInstance) leaveMemory() {
	if in.memory != nil {
		in.memory.leave()
	}
}

func (in *engineInstance) startFailure(err error, lim *Limits) error {
	ferr := in.failure(err, lim)
	ferr.Message = "app failed to start: " + ferr.Message
	return ferr
}

// run runs one method on the instance.
func (in *engineInstance) run(ctx context.Context, c *Call, lim *Limits) (Result, error) {
	in.begin(c, lim)
	defer in.end()
	if in.memory != nil {
		in.memory.enter()
		defer in.memory.leave()
	}
	if in.ctx == nil || !in.ctx.usable(ctx) {
		in.ctx = newEngineCtx(in)
	}
	in.ctx.arm(ctx, lim.Timeout, c.Deadline, in.stop)
	err := in.fn(c.Method).CallWithStack(in.ctx, nil)
	if err != nil {
		err = in.failure(err, lim)
	}
	in.release()
	if err != nil {
		return Result{}, err
	}
	cl := &in.call
	in.flushLine()
	res := Result{Output: cl.output, Writes: cl.writes, Events: cl.events, Logs: cl.logs, Dropped: cl.drops}
	cl.output, cl.writes, cl.events, cl.logs = nil, nil, nil, nil
	return res, nil
}

func (in *engineInstance) fn(name string) api.Function {
	f, ok := in.fns[name]
	if !ok {
		f = in.mod.ExportedFunction(name)
		in.fns[name] = f
	}
	return f
}

// begin makes c the instance's call.
func (in *engineInstance) begin(c *Call, lim *Limits) {
	cl := &in.call
	cl.c, cl.lim, cl.active = *c, *lim, true
	in.setTime(c.Time)
	in.memLimit = uint64(lim.MemoryPages) * pageBytes
	in.memDenied = false
}

// end clears the call's state, keeping only buffers that hold nothing of it.
func (in *engineInstance) end() {
	cl := &in.call
	clear(cl.regs)
	clear(cl.index)
	*cl = engineCall{regs: cl.regs[:0], index: cl.index}
}

// release disarms the call's context, dropping it if it fired.
func (in *engineInstance) release() {
	if !in.ctx.disarm() {
		in.ctx = nil
	}
}

// close closes the instance, and its app too if the app was evicted and this was its
// last instance. It runs once per instance.
func (in *engineInstance) close() {
	if in.ctx != nil {
		in.ctx.unhookParent()
	}
	if in.mod != nil {
		_ = in.mod.Close(context.Background())
		in.mod = nil
	}
	if in.app != nil {
		in.app.unref()
		in.app = nil
	}
}

func (in *engineInstance) memPages() uint32 {
	if in.mod == nil {
		return 0
	}
	return in.mod.Memory().Size() / pageBytes
}

// setTime sets the clocks to the tx time; times before 1970 read as 1970.
func (in *engineInstance) setTime(t time.Time) {
	in.txNanos = 0
	if !t.IsZero() && t.UnixNano() > 0 {
		in.txNanos = t.UnixNano()
	}
	in.monotime = 0
	in.seeded = false
}

// walltime is the WASI realtime clock: always the tx time.
func (in *engineInstance) walltime() (sec int64, nsec int32) {
	return in.txNanos / 1e9, int32(in.txNanos % 1e9)
}

// nanotime is the WASI monotonic clock: the tx time plus one nanosecond per reading
// plus whatever the guest slept, so it moves, and moves the same way on every run.
func (in *engineInstance) nanotime() int64 {
	in.monotime++
	return in.txNanos + in.monotime
}

// nanosleep sleeps on the virtual clock: it returns at once.
func (in *engineInstance) nanosleep(ns int64) {
	if ns > 0 {
		in.monotime += ns
	}
}

// engineRand is the WASI random source: ChaCha8 seeded from the call, so the same
// call reads the same bytes. Before the first call (module start-up) it is seeded
// with zeros.
type engineRand struct{ in *engineInstance }

func (r engineRand) Read(p []byte) (int, error) {
	in := r.in
	if !in.seeded {
		in.rng.Seed(in.seed())
		in.seeded = true
	}
	return in.rng.Read(p)
}

// seed digests what identifies the call: tenant, app, context, method, caller, tx
// time and args.
func (in *engineInstance) seed() [32]byte {
	if !in.call.active {
		return [32]byte{}
	}
	c := &in.call.c
	h := sha256.New()
	for _, s := range []string{"circlegate-rand-v1", c.Tenant, c.AppID, c.ContextID, c.Method, c.Caller} {
		h.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(s))))
		h.Write([]byte(s))
	}
	h.Write(binary.LittleEndian.AppendUint64(nil, uint64(in.txNanos)))
	h.Write(c.Args)
	var seed [32]byte
	h.Sum(seed[:0])
	return seed
}
