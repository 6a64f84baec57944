package execution

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/circlegate/circlegate/errs"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// engineApp is a compiled app, shared by the pools of every tenant that runs it.
// ready is closed once mod (or err) is set.
//
// An evicted app is closed only when its last instance and call are done: wazero must not free or
// recompile a module while instances of it run (its compiled code is shared), so a
// recompile of the same app waits for gone to close.
type engineApp struct {
	ready   chan struct{}
	mod     wazero.CompiledModule
	err     error
	methods map[string]struct{} // exports callable as methods
	reactor bool                // exports _initialize
	start   bool                // had a start function (exported as abiStart)
	minMem  uint32              // initial memory pages

	refs      atomic.Int64 // instances alive and calls holding the app
	evicted   atomic.Bool
	closeOnce sync.Once
	gone      chan struct{} // closed once the module is closed
}

func newEngineApp() *engineApp {
	return &engineApp{ready: make(chan struct{}), gone: make(chan struct{})}
}

// evict marks the app for closing once its last instance closes.
func (a *engineApp) evict() {
	a.evicted.Store(true)
	a.tryClose()
}

// ref counts an instance or a call that uses the app.
func (a *engineApp) ref() { a.refs.Add(1) }

// fits refuses limits under which no instance of the app can start.
func (a *engineApp) fits(lim *Limits) error {
	if a.minMem > lim.MemoryPages {
		return errs.E(errs.Execution, "the module needs %d pages of memory at start, over memory_pages (%d)", a.minMem, lim.MemoryPages)
	}
	return nil
}

// unref undoes ref, closing an evicted app with its last user.
func (a *engineApp) unref() {
	a.refs.Add(-1)
	a.tryClose()
}

func (a *engineApp) tryClose() {
	if !a.evicted.Load() || a.refs.Load() > 0 {
		return
	}
	a.closeOnce.Do(func() {
		<-a.ready
		if a.mod != nil {
			_ = a.mod.Close(context.Background())
		}
		close(a.gone)
	})
}

// app returns the compiled app, compiling it once however many calls ask at the same
// time. A failed compile is not cached.
func (e *Engine) app(ctx context.Context, c *Call) (*engineApp, error) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, errs.E(errs.Overloaded, "the execution engine is closed")
	}
	if old := e.dying[c.AppID]; old != nil {
		e.mu.Unlock()
		select { // instances of an evicted copy still run: wait for them to end
		case <-old.gone:
		case <-ctx.Done():
			return nil, errs.Wrap(errs.Overloaded, ctx.Err(), "gave up waiting for app %s to be unloaded", c.AppID)
		}
		e.mu.Lock()
		if e.dying[c.AppID] == old {
			delete(e.dying, c.AppID)
		}
		e.mu.Unlock()
		return e.app(ctx, c)
	}
	a, ok := e.apps[c.AppID]
	if !ok {
		a = newEngineApp()
		e.apps[c.AppID] = a
	}
	e.mu.Unlock()
	if ok {
		select {
		case <-a.ready:
			return a, a.err
		case <-ctx.Done():
			return nil, errs.Wrap(errs.Overloaded, ctx.Err(), "gave up waiting for app %s to compile", c.AppID)
		}
	}
	a.err = e.load(ctx, a, c)
	if a.err != nil {
		e.mu.Lock()
		if e.apps[c.AppID] == a {
			delete(e.apps, c.AppID)
		}
		e.mu.Unlock()
	}
	close(a.ready)
	return a, a.err
}

func (e *Engine) load(ctx context.Context, a *engineApp, c *Call) error {
	if c.Wasm == nil {
		return errs.E(errs.Internal, "app %s is not compiled and the call has no Wasm source", c.AppID)
	}
	wasm, err := c.Wasm()
	if err != nil {
		return err
	}
	start := time.Now()
	mod, err := e.compile(ctx, wasm)
	if err != nil {
		return err
	}
	a.mod = mod
	a.methods = map[string]struct{}{}
	for name, def := range mod.ExportedFunctions() {
		if isMethod(name, def) {
			a.methods[name] = struct{}{}
		}
	}
	_, a.reactor = mod.ExportedFunctions()[abiReactorInit]
	_, a.start = mod.ExportedFunctions()[abiStart]
	a.minMem = mod.ExportedMemories()[abiMemory].Min()
	e.compiled.Add(1)
	e.log.Info("app compiled", "app_id", c.AppID, "bytes", len(wasm), "methods", len(a.methods),
		"duration", time.Since(start))
	return nil
}

// isMethod reports whether an export may be called as a method: no params, no
// results, and not one of the reserved exports.
func isMethod(name string, def api.FunctionDefinition) bool {
	switch name {
	case abiMarker, abiReactorInit, abiCommandStart, abiStart:
		return false
	}
	return len(def.ParamTypes()) == 0 && len(def.ResultTypes()) == 0
}

// compile checks a module, instruments it so that a call can be stopped
// (engine_interrupt.go), compiles it and checks it against the ABI.
func (e *Engine) compile(ctx context.Context, wasm []byte) (wazero.CompiledModule, error) {
	if err := abiPrecheck(wasm); err != nil {
		return nil, errs.Wrap(errs.InvalidParams, err, "invalid wasm module: %s", truncate(err.Error(), 200))
	}
	wasm, err := instrument(wasm)
	if err != nil {
		return nil, errs.Wrap(errs.InvalidParams, err, "invalid wasm module: %s", truncate(err.Error(), 200))
	}
	mod, err := e.rt.CompileModule(ctx, wasm)
	if err != nil {
		return nil, errs.Wrap(errs.InvalidParams, err, "invalid wasm module: %s", firstLine(err.Error(), 200))
	}
	if err := e.check(mod); err != nil {
		_ = mod.Close(ctx)
		return nil, errs.E(errs.InvalidParams, "wasm module does not fit the circlegate ABI v1: %s", err)
	}
	return mod, nil
}

// check tells why a compiled module cannot run, or returns nil.
func (e *Engine) check(mod wazero.CompiledModule) error {
	mem, ok := mod.ExportedMemories()[abiMemory]
	if !ok {
		return fmt.Errorf("it must export its linear memory as %q", abiMemory)
	}
	if min, limit := mem.Min(), e.cfg.Limits.MemoryPages; min > limit {
		return fmt.Errorf("its memory starts at %d pages, over memory_pages (%d)", min, limit)
	}
	fns := mod.ExportedFunctions()
	marker, ok := fns[abiMarker]
	if !ok {
		return fmt.Errorf("it must export a function %q (Go apps get it by importing the sdk package)", abiMarker)
	}
	if !sameSignature(marker, nil, nil) {
		return fmt.Errorf("%s must take no params and return nothing", abiMarker)
	}
	if _, ok := fns[abiCommandStart]; ok {
		return fmt.Errorf("it exports %s, so it is a WASI command; build a reactor (Go: -buildmode=c-shared)", abiCommandStart)
	}
	if def, ok := fns[abiReactorInit]; ok && !sameSignature(def, nil, nil) {
		return fmt.Errorf("%s must take no params and return nothing", abiReactorInit)
	}
	if def, ok := fns[abiStart]; ok && !sameSignature(def, nil, nil) {
		return errors.New("its start function must take no params and return nothing")
	}
	if len(mod.ImportedMemories()) > 0 {
		return fmt.Errorf("it imports a memory; it must define and export its own")
	}
	for _, def := range mod.ImportedFunctions() {
		if err := e.checkImport(def); err != nil {
			return err
		}
	}
	return nil
}

func (e *Engine) checkImport(def api.FunctionDefinition) error {
	module, name, _ := def.Import()
	switch module {
	case abiModule:
		i := slices.IndexFunc(abiFuncs, func(f abiFunc) bool { return f.name == name })
		if i < 0 {
			return fmt.Errorf("it imports %s.%s, which ABI v1 does not have", module, name)
		}
		if f := abiFuncs[i]; !sameSignature(def, f.params, f.results) {
			return fmt.Errorf("it imports %s.%s as %s; ABI v1 has %s", module, name, signature(def.ParamTypes(), def.ResultTypes()), signature(f.params, f.results))
		}
	case abiWASI:
		w, ok := e.wasi[name]
		if !ok {
			return fmt.Errorf("it imports %s.%s, which is not a WASI preview 1 function", module, name)
		}
		if !sameSignature(def, w.ParamTypes(), w.ResultTypes()) {
			return fmt.Errorf("it imports %s.%s with the wrong signature", module, name)
		}
	default:
		return fmt.Errorf("it imports %s.%s; only %q (the ABI) and %q are available", module, name, abiModule, abiWASI)
	}
	return nil
}

func sameSignature(def api.FunctionDefinition, params, results []api.ValueType) bool {
	return slices.Equal(def.ParamTypes(), params) && slices.Equal(def.ResultTypes(), results)
}

func signature(params, results []api.ValueType) string {
	name := func(ts []api.ValueType) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = api.ValueTypeName(t)
		}
		return "(" + strings.Join(s, ", ") + ")"
	}
	return name(params) + " -> " + name(results)
}

// firstLine returns the first line of s, cut to at most n bytes.
func firstLine(s string, n int) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return truncate(s, n)
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut with "...".
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n - 3
	for i > 0 && s[i]&0xC0 == 0x80 {
		i--
	}
	return s[:i] + "..."
}
