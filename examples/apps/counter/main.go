//go:build wasip1

// Command counter is the smallest circlegate app: one counter per context.
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o counter.wasm ./examples/apps/counter
//
// Methods: increment {by?} -> {"value": N} (by defaults to 1), get -> {"value": N},
// noop (does nothing; for benchmarks).
package main

import (
	"strconv"

	"github.com/circlegate/circlegate/sdk"
)

const key = "count"

// IncArgs are the args of increment.
type IncArgs struct {
	By *int64 `json:"by"`
}

// Value is what increment and get return.
type Value struct {
	Value int64 `json:"value"`
}

// AppendJSON encodes v as encoding/json does, without its reflection, which is slow
// in a wasm guest (sdk.JSONAppender).
func (v Value) AppendJSON(b []byte) []byte {
	b = append(b, `{"value":`...)
	return append(strconv.AppendInt(b, v.Value, 10), '}')
}

//go:wasmexport increment
func increment() {
	sdk.Handle(func(a IncArgs) (Value, error) {
		by := int64(1)
		if a.By != nil {
			by = *a.By
		}
		v := load() + by
		sdk.SetJSON(key, v)
		return Value{Value: v}, nil
	})
}

//go:wasmexport get
func get() {
	sdk.Handle(func(struct{}) (Value, error) { return Value{Value: load()}, nil })
}

//go:wasmexport noop
func noop() {}

func load() int64 {
	var v int64
	if _, err := sdk.GetJSON(key, &v); err != nil {
		sdk.Fail("corrupt counter: " + err.Error())
	}
	return v
}

func main() {}
