package execution

import (
	"errors"
	"fmt"
	"strings"

	"github.com/circlegate/circlegate/errs"
	"github.com/tetratelabs/wazero/sys"
)

// failure turns the error of a guest function into the call's error: a host
// function's own reason if one trapped, the timeout, the memory limit, an exit, or
// a trap. It must run before the call's context is disarmed. A Go guest that panics
// or throws prints the reason to stderr and traps (runtime.abort): the first line of
// stderr then explains the failure better than the trap.
func (in *engineInstance) failure(err error, lim *Limits) *errs.Error {
	if e, ok := in.call.fail.(*errs.Error); ok {
		return e
	}
	if in.call.fail != nil {
		return errs.Wrap(errs.Internal, in.call.fail, "reading state")
	}
	switch in.ctx.stopped() {
	case causeCanceled:
		return errs.Wrap(errs.Overloaded, err, "execution canceled")
	case causeDeadline:
		return errs.Wrap(errs.Overloaded, err, "execution stopped at the call's deadline")
	case causeTimeout:
		return errs.Wrap(errs.Overloaded, err, "execution timed out after %s", lim.Timeout)
	}
	if in.memDenied {
		return errs.Wrap(errs.Execution, err, "memory limit exceeded: memory_pages is %d (%d MiB)", lim.MemoryPages, uint64(lim.MemoryPages)*pageBytes>>20)
	}
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		msg := fmt.Sprintf("app exited with code %d", exit.ExitCode())
		if s := in.stderrLine(); s != "" {
			msg += ": " + s
		}
		return errs.Wrap(errs.Execution, err, "%s", msg)
	}
	if s := in.stderrLine(); s != "" {
		return errs.Wrap(errs.Execution, err, "app trapped: %s", s)
	}
	return errs.Wrap(errs.Execution, err, "app trapped: %s", firstLine(err.Error(), 200))
}

// stderrLine returns the first line the guest wrote to stderr that says what went
// wrong (a Go panic prints "panic: ..." and then goroutine dumps).
func (in *engineInstance) stderrLine() string {
	for _, l := range strings.Split(string(in.call.stderr), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return truncate(strings.ToValidUTF8(l, "\uFFFD"), abiMaxPanicBytes)
		}
	}
	return ""
}

// trap records why a host function fails the call and aborts the guest.
func (in *engineInstance) trap(format string, args ...any) {
	err := errs.E(errs.Execution, format, args...)
	if in.call.fail == nil {
		in.call.fail = err
	}
	panic(err)
}

// trapState aborts the guest because the committed state could not be read; the
// call fails with the reader's error, which is not the app's fault.
func (in *engineInstance) trapState(err error) {
	var e *errs.Error
	if !errors.As(err, &e) {
		e = errs.Wrap(errs.Internal, err, "reading state")
	}
	if in.call.fail == nil {
		in.call.fail = e
	}
	panic(e)
}
