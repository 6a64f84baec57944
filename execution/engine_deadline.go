package execution

import (
	"context"
	"sync"
	"time"

	"github.com/tetratelabs/wazero/api"
)

// engineCtx is the context a guest runs under: the caller's values and cancellation
// plus the call's timeout, and the instance for host functions to find. When it
// fires (the timeout, or the caller's context ends) it raises the instance's $stop
// and empties its $fuel, and the guest traps at its next loop header or function
// entry (engine_interrupt.go).
//
// It is reused from call to call of its instance, so a call allocates no context
// and no timer. Once it fires it is never reused: Done stays closed and a callback
// may still be running; the instance gets a new one. The globals are written only
// under mu and only while a call is armed, so a late timer never stops the next
// call.
type engineCtx struct {
	in     *engineInstance
	parent context.Context
	done   chan struct{}
	timer  *time.Timer
	unhook func() bool // stops the propagation of the parent's cancellation

	mu       sync.Mutex
	deadline time.Time
	err      error
	stop     engineStop // the running instance's globals; zero when none
}

// engineStop is an instance's $fuel and $stop.
type engineStop struct{ fuel, stop api.MutableGlobal }

// set raises or lowers $stop, emptying or filling $fuel.
func (s engineStop) set(stop bool) {
	if s.fuel == nil {
		return
	}
	if stop {
		s.stop.Set(1)
		s.fuel.Set(0)
		return
	}
	s.stop.Set(0)
	s.fuel.Set(fuelBudget)
}

func newEngineCtx(in *engineInstance) *engineCtx {
	x := &engineCtx{in: in, parent: context.Background(), done: make(chan struct{})}
	x.timer = time.AfterFunc(time.Hour, func() { x.fire(context.DeadlineExceeded) })
	x.timer.Stop()
	return x
}

// arm starts the timeout of a call on parent. stop holds the instance's globals,
// none while the instance is being created (attach gives them then).
func (x *engineCtx) arm(parent context.Context, timeout time.Duration, stop engineStop) {
	x.parent = parent
	x.mu.Lock()
	x.deadline = time.Now().Add(timeout)
	x.stop = stop
	stop.set(false)
	x.mu.Unlock()
	x.timer.Reset(timeout)
	if parent.Done() == nil {
		return
	}
	if err := parent.Err(); err != nil {
		x.fire(err)
		return
	}
	x.unhook = context.AfterFunc(parent, func() { x.fire(parent.Err()) })
}

// attach gives an armed context the globals of the instance just created, stopped
// at once if the context fired meanwhile.
func (x *engineCtx) attach(stop engineStop) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.stop = stop
	stop.set(x.err != nil)
}

// disarm ends a call and reports whether the context may serve another.
func (x *engineCtx) disarm() bool {
	ok := x.timer.Stop()
	if x.unhook != nil {
		ok = x.unhook() && ok
		x.unhook = nil
	}
	x.parent = context.Background()
	x.mu.Lock()
	x.stop = engineStop{}
	ok = ok && x.err == nil
	x.mu.Unlock()
	return ok
}

func (x *engineCtx) fire(err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.err == nil {
		x.err = err
		close(x.done)
		x.stop.set(true)
	}
}

func (x *engineCtx) Deadline() (time.Time, bool) {
	x.mu.Lock()
	d := x.deadline
	x.mu.Unlock()
	if pd, ok := x.parent.Deadline(); ok && pd.Before(d) {
		return pd, true
	}
	return d, true
}

func (x *engineCtx) Done() <-chan struct{} { return x.done }

func (x *engineCtx) Err() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.err
}

func (x *engineCtx) Value(key any) any {
	if key == (hostCtxKey{}) {
		return x.in
	}
	return x.parent.Value(key)
}
