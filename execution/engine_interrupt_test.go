package execution

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/circlegate/circlegate/internal/testapps"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

var opcodesExports = []string{"control", "calls", "mem", "numbers", "simd", "fib"}

// instantiateOpcodes instantiates testdata/opcodes.wat (original or instrumented) on
// a plain runtime, running the start function itself when instrument moved it.
func instantiateOpcodes(t *testing.T, wasm []byte) api.Module {
	t.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	t.Cleanup(func() { _ = rt.Close(ctx) })
	env := testapps.BuildWAT(t, "testdata/opcodes_env.wat")
	if _, err := rt.InstantiateWithConfig(ctx, env, wazero.NewModuleConfig().WithName("env")); err != nil {
		t.Fatal(err)
	}
	mod, err := rt.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		t.Fatal(err)
	}
	if f := mod.ExportedFunction(abiStart); f != nil {
		if _, err := f.Call(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return mod
}

func callAll(t *testing.T, mod api.Module) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for _, name := range opcodesExports {
		res, err := mod.ExportedFunction(name).Call(context.Background())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = res[0]
	}
	return out
}

// TestInstrumentKeepsBehaviour: every family of instructions computes the same
// results once instrumented, the start function still runs first, and raising the
// flag stops every function, loops or not.
func TestInstrumentKeepsBehaviour(t *testing.T) {
	orig := testapps.BuildWAT(t, "testdata/opcodes.wat")
	inst, err := instrument(orig)
	if err != nil {
		t.Fatal(err)
	}
	secs, err := splitSections(inst)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secs {
		if s.id == secStart {
			t.Fatal("the start section is still there")
		}
	}
	want := callAll(t, instantiateOpcodes(t, orig))
	mod := instantiateOpcodes(t, inst)
	if got := callAll(t, mod); len(got) != len(want) {
		t.Fatalf("got %v", got)
	} else {
		for name := range want {
			if got[name] != want[name] {
				t.Errorf("%s = %d, want %d", name, got[name], want[name])
			}
		}
	}
	if want["calls"] < 1000 {
		t.Fatalf("calls = %d: the start function did not run", want["calls"])
	}
	fuel, ok1 := mod.ExportedGlobal(abiFuel).(api.MutableGlobal)
	stop, ok2 := mod.ExportedGlobal(abiStop).(api.MutableGlobal)
	if !ok1 || !ok2 {
		t.Fatal("no mutable fuel and stop globals exported")
	}
	s := engineStop{fuel, stop}
	s.set(true)
	for _, name := range opcodesExports {
		if _, err := mod.ExportedFunction(name).Call(context.Background()); err == nil || !strings.Contains(err.Error(), "unreachable") {
			t.Errorf("%s once stopped: %v, want a trap", name, err)
		}
	}
	s.set(false)
	for _, name := range []string{"control", "fib"} { // the others drop segments: once only
		if res, err := mod.ExportedFunction(name).Call(context.Background()); err != nil || res[0] != want[name] {
			t.Errorf("%s once started again: %v, %v", name, res, err)
		}
	}
}

// TestInstrumentGoGuest: a Go guest loses its DWARF sections and keeps its name
// section.
func TestInstrumentGoGuest(t *testing.T) {
	inst, err := instrument(testapps.Build(t, "counter"))
	if err != nil {
		t.Fatal(err)
	}
	secs, err := splitSections(inst)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range secs {
		if s.id == secCustom {
			r := &wasmReader{b: s.payload, known: true}
			names = append(names, r.name())
		}
	}
	if strings.Contains(strings.Join(names, " "), debugPrefix) || !strings.Contains(strings.Join(names, " "), "name") {
		t.Fatalf("custom sections after instrumenting: %v", names)
	}
}

// TestInstrumentRefuses: modules that would reach the interrupt flag, or that use
// what the rewrite does not know, are refused.
func TestInstrumentRefuses(t *testing.T) {
	const (
		header = "\x00asm\x01\x00\x00\x00"
		typ    = "\x01\x04\x01\x60\x00\x00" // one type: () -> ()
		fn     = "\x03\x02\x01\x00"         // one function of type 0
	)
	for _, tc := range []struct {
		name, wasm, want string
	}{
		{"global.get past the globals", header + typ + fn + "\x0a\x07\x01\x05\x00\x23\x00\x1a\x0b", "global 0 does not exist"},
		{"global.set past the globals", header + typ + fn + "\x0a\x08\x01\x06\x00\x41\x01\x24\x00\x0b", "global 0 does not exist"},
		{"export of a global past the globals", header + "\x07\x05\x01\x01g\x03\x00", `export "g" names global 0`},
		{"reserved export name", header + typ + fn + "\x07\x14\x01\x10circlegate:start\x00\x00" + "\x0a\x04\x01\x02\x00\x0b", "is reserved"},
		{"tail call", header + typ + fn + "\x0a\x06\x01\x04\x00\x12\x00\x0b", "instruction 0x12 is not supported"},
		{"two start sections", header + typ + fn + "\x08\x01\x00\x08\x01\x00\x0a\x04\x01\x02\x00\x0b", "more than one start section"},
		{"truncated body", header + typ + fn + "\x0a\x05\x01\x03\x00\x41\x80", "unexpected end"},
	} {
		if _, err := instrument([]byte(tc.wasm)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// FuzzInstrument: instrumenting never panics, and a module that wazero compiles
// instruments into one it compiles too.
func FuzzInstrument(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.wat")
	more, _ := filepath.Glob("testdata/invalid/*.wat")
	for _, file := range append(files, more...) {
		f.Add(testapps.BuildWAT(f, file))
	}
	f.Add([]byte("\x00asm\x01\x00\x00\x00"))
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCompilationCache(wazero.NewCompilationCache()))
	f.Cleanup(func() { _ = rt.Close(ctx) })
	compiles := func(wasm []byte) bool {
		m, err := rt.CompileModule(ctx, wasm)
		if err == nil {
			_ = m.Close(ctx)
		}
		return err == nil
	}
	f.Fuzz(func(t *testing.T, wasm []byte) {
		out, err := instrument(wasm)
		if abiPrecheck(wasm) != nil || !compiles(wasm) {
			return
		}
		if err != nil {
			t.Fatalf("wazero compiles the module, instrument refuses it: %v", err)
		}
		if !compiles(out) {
			t.Fatal("the instrumented module does not compile")
		}
	})
}
