//go:build wasip1

// Command slowcounter is a test guest for the fleet's fault tests: a counter whose
// increment first spins for a given number of iterations, so a test can kill the
// worker that runs it in the middle of the job.
//
// Methods: increment {spin?} -> {"value": N, "spun": S}, get -> {"value": N}.
package main

import "github.com/circlegate/circlegate/sdk"

// Args are the args of increment.
type Args struct {
	Spin int64 `json:"spin"`
}

// Value is what the methods return.
type Value struct {
	Value int64 `json:"value"`
	Spun  int64 `json:"spun,omitempty"`
}

// sink keeps the spinning loop from being optimized away.
var sink int64

//go:wasmexport increment
func increment() {
	sdk.Handle(func(a Args) (Value, error) {
		for i := int64(0); i < a.Spin; i++ {
			sink += i & 1
		}
		var v int64
		if _, err := sdk.GetJSON("count", &v); err != nil {
			return Value{}, err
		}
		v++
		sdk.SetJSON("count", v)
		return Value{Value: v, Spun: a.Spin}, nil
	})
}

//go:wasmexport get
func get() {
	sdk.Handle(func(struct{}) (Value, error) {
		var v int64
		_, err := sdk.GetJSON("count", &v)
		return Value{Value: v}, err
	})
}

func main() {}
