package execution_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/execution"
	"github.com/circlegate/circlegate/internal/testapps"
)

// FuzzModule feeds arbitrary bytes to Validate and, when they validate, runs every
// method: nothing may panic, a refused module is invalid params, and a call fails
// only with the kinds a guest can cause.
func FuzzModule(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.wat")
	more, _ := filepath.Glob("testdata/invalid/*.wat")
	for _, file := range append(files, more...) {
		f.Add(testapps.BuildWAT(f, file))
	}
	f.Add(testapps.Build(f, "watcounter"))
	f.Add([]byte("\x00asm\x01\x00\x00\x00"))
	e := newEngine(f, execution.EngineConfig{CacheDir: f.TempDir(), PoolSize: 1})
	ctx := context.Background()
	lim := &execution.Limits{Timeout: 100 * time.Millisecond, MemoryPages: 64}
	f.Fuzz(func(t *testing.T, wasm []byte) {
		if err := e.Validate(ctx, wasm); err != nil {
			if !errs.Is(err, errs.InvalidParams) {
				t.Fatalf("Validate: %v (%s), want invalid params", err, errs.KindOf(err))
			}
			return
		}
		a := newApp(wasm)
		for _, m := range []string{"get", "increment", "ok", "trap", "panic", "nope"} {
			c := call(a, m, `{"a":1}`, newState())
			c.Limits = lim
			_, err := e.Run(ctx, c)
			if k := errs.KindOf(err); err != nil && !slices.Contains([]errs.Kind{errs.Execution, errs.Overloaded, errs.InvalidParams}, k) {
				t.Fatalf("%s: %v (%s)", m, err, k)
			}
		}
		e.Evict("tenant-a", a.id)
	})
}
