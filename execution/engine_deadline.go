package execution

import (
	"context"
	"sync"
	"time"
)

// engineCtx is the context a guest runs under: the caller's values and cancellation
// plus the call's timeout, and the instance for host functions to find. wazero
// closes the module when Done is closed (WithCloseOnContextDone).
//
// It is reused from call to call of its instance, so a call allocates no context
// and no timer. Once it fires (a timeout or a canceled caller) it is never reused:
// Done stays closed and a callback may still be running; the instance gets a new
// one. Done is immutable, so wazero's watcher goroutine, which may outlive the call,
// never races with the next call.
type engineCtx struct {
	in     *engineInstance
	parent context.Context
	done   chan struct{}
	timer  *time.Timer
	unhook func() bool // stops the propagation of the parent's cancellation

	mu       sync.Mutex
	deadline time.Time
	err      error
}

func newEngineCtx(in *engineInstance) *engineCtx {
	x := &engineCtx{in: in, parent: context.Background(), done: make(chan struct{})}
	x.timer = time.AfterFunc(time.Hour, func() { x.fire(context.DeadlineExceeded) })
	x.timer.Stop()
	return x
}

// arm starts the timeout of a call on parent.
func (x *engineCtx) arm(parent context.Context, timeout time.Duration) {
	x.parent = parent
	x.mu.Lock()
	x.deadline = time.Now().Add(timeout)
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

// disarm ends a call and reports whether the context may serve another.
func (x *engineCtx) disarm() bool {
	ok := x.timer.Stop()
	if x.unhook != nil {
		ok = x.unhook() && ok
		x.unhook = nil
	}
	x.parent = context.Background()
	return ok && x.Err() == nil
}

func (x *engineCtx) fire(err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.err == nil {
		x.err = err
		close(x.done)
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
