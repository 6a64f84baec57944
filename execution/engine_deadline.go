package execution

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/tetratelabs/wazero/api"
)

// engineCtx is the context a guest runs under: the caller's values and cancellation
// plus the call's timeout (and its deadline, Call.Deadline), and the instance for
// host functions to find. When it fires (the timeout, the deadline, or the caller's
// context ends) it raises the instance's $stop and empties its $fuel, and the guest
// traps at its next loop header or function entry (engine_interrupt.go).
//
// It is reused from call to call of its instance, so a call allocates no context
// and no timer. Its hook on the caller's cancellation stays in place while calls come
// with the same Done channel (a queue worker's calls share one), so those calls do
// not register and remove a callback each; the hook goes when a call comes with
// another one, when the context fires, and when the instance closes. Once it fires
// it is never reused: Done stays closed and a callback may still be running; the
// instance gets a new one. The globals are written only under mu and only while a
// call is armed, so a late timer never stops the next call.
type engineCtx struct {
	in     *engineInstance
	parent context.Context
	done   chan struct{}
	timer  *time.Timer
	hooked <-chan struct{} // the Done channel unhook stops watching; nil when none
	unhook func() bool     // stops the propagation of that channel's cancellation

	mu       sync.Mutex
	deadline time.Time
	timed    engineCause // what the timer means for this call
	cause    engineCause // why it fired; zero until then
	stop     engineStop  // the running instance's globals; zero when none
}

// engineCause is why an engineCtx fired.
type engineCause uint8

const (
	causeTimeout  engineCause = iota + 1 // the call's time limit (Limits.Timeout)
	causeDeadline                        // the call's deadline, or its context's
	causeCanceled                        // the caller's context was canceled
)

func causeOf(err error) engineCause {
	if errors.Is(err, context.DeadlineExceeded) {
		return causeDeadline
	}
	return causeCanceled
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
	x.timer = time.AfterFunc(time.Hour, x.fireTimer)
	x.timer.Stop()
	return x
}

// usable reports whether the context may serve a call on parent: it has not fired,
// and it no longer watches another parent whose cancellation may be on its way.
func (x *engineCtx) usable(parent context.Context) bool {
	if x.hooked != nil && x.hooked != parent.Done() && !x.unhookParent() {
		return false
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.cause == 0
}

// arm starts a call on parent with its time limit and, unless zero, its deadline.
// stop holds the instance's globals, none while the instance is being created
// (attach gives them then).
func (x *engineCtx) arm(parent context.Context, timeout time.Duration, deadline time.Time, stop engineStop) {
	x.parent = parent
	now := time.Now()
	x.mu.Lock()
	x.deadline, x.timed = now.Add(timeout), causeTimeout
	if !deadline.IsZero() && deadline.Before(x.deadline) {
		x.deadline, x.timed = deadline, causeDeadline
	}
	wait := x.deadline.Sub(now)
	x.stop = stop
	stop.set(false)
	x.mu.Unlock()
	x.timer.Reset(wait)
	done := parent.Done()
	if done == nil {
		return
	}
	if err := parent.Err(); err != nil {
		x.fire(causeOf(err))
		return
	}
	if done != x.hooked {
		x.unhookParent()
		x.hooked, x.unhook = done, context.AfterFunc(parent, func() { x.fire(causeOf(parent.Err())) })
	}
}

// unhookParent stops watching the parent's cancellation and reports whether the
// hook had not run.
func (x *engineCtx) unhookParent() bool {
	if x.unhook == nil {
		return true
	}
	ok := x.unhook()
	x.hooked, x.unhook = nil, nil
	return ok
}

// attach gives an armed context the globals of the instance just created, stopped
// at once if the context fired meanwhile.
func (x *engineCtx) attach(stop engineStop) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.stop = stop
	stop.set(x.cause != 0)
}

// disarm ends a call and reports whether the context may serve another; one that
// may not has stopped watching its parent.
func (x *engineCtx) disarm() bool {
	ok := x.timer.Stop()
	x.parent = context.Background()
	x.mu.Lock()
	x.stop = engineStop{}
	ok = ok && x.cause == 0
	x.mu.Unlock()
	if !ok {
		x.unhookParent()
	}
	return ok
}

// stopped is why the context fired; zero if it has not.
func (x *engineCtx) stopped() engineCause {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.cause
}

func (x *engineCtx) fireTimer() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.fireLocked(x.timed)
}

func (x *engineCtx) fire(c engineCause) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.fireLocked(c)
}

func (x *engineCtx) fireLocked(c engineCause) {
	if x.cause == 0 {
		x.cause = c
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
	switch x.stopped() {
	case 0:
		return nil
	case causeCanceled:
		return context.Canceled
	}
	return context.DeadlineExceeded
}

func (x *engineCtx) Value(key any) any {
	if key == (hostCtxKey{}) {
		return x.in
	}
	return x.parent.Value(key)
}
