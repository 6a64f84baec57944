//go:build wasip1

// Command goprobe is a Go test guest for engine_test.go: it reports what the Go
// runtime sees (clocks, randomness) and misbehaves the ways only Go does.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/circlegate/circlegate/sdk"
)

// Seen is what the guest observed.
type Seen struct {
	Now      int64  `json:"now"`      // time.Now().UnixNano()
	SDKNow   int64  `json:"sdkNow"`   // sdk.Now().UnixNano()
	Rand     string `json:"rand"`     // 16 bytes of crypto/rand, hex
	Slept    bool   `json:"slept"`    // time.Sleep(time.Hour) returned
	Caller   string `json:"caller"`   // sdk.Caller()
	Context  string `json:"context"`  // sdk.ContextID()
	ArgsEcho string `json:"argsEcho"` // the raw args
}

//go:wasmexport observe
func observe() {
	sdk.Handle(func(struct{}) (Seen, error) {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return Seen{}, err
		}
		return Seen{
			Now: time.Now().UnixNano(), SDKNow: sdk.Now().UnixNano(), Rand: hex.EncodeToString(b),
			Caller: sdk.Caller(), Context: sdk.ContextID(), ArgsEcho: string(sdk.Input()),
		}, nil
	})
}

//go:wasmexport sleep
func sleep() {
	sdk.Handle(func(struct{}) (Seen, error) {
		time.Sleep(time.Hour)
		return Seen{Slept: true, Now: time.Now().UnixNano()}, nil
	})
}

// gopanic panics outside sdk.Handle: the Go runtime prints and exits with code 2.
//
//go:wasmexport gopanic
func gopanic() {
	var m map[string]int
	m["x"] = 1
}

// sdkpanic panics inside sdk.Handle, which turns it into panic_utf8.
//
//go:wasmexport sdkpanic
func sdkpanic() {
	sdk.Handle(func(struct{}) (int, error) { panic("boom") })
}

// fail returns an error from the handler.
//
//go:wasmexport fail
func fail() {
	sdk.Handle(func(struct{}) (int, error) { return 0, sdk.Error("not enough coins") })
}

// OverlayArgs drive overlay: set and delete keys, then list a prefix.
type OverlayArgs struct {
	Set    []string `json:"set"`
	Del    []string `json:"del"`
	Prefix string   `json:"prefix"`
}

// overlay writes, removes, then iterates: the listing must show the call's own
// writes merged with the committed state.
//
//go:wasmexport overlay
func overlay() {
	sdk.Handle(func(a OverlayArgs) ([]string, error) {
		for _, k := range a.Set {
			sdk.Set(k, []byte("new:"+k))
		}
		for _, k := range a.Del {
			sdk.Delete(k)
		}
		out := []string{}
		sdk.Iterate(a.Prefix, func(k string, v []byte) bool {
			out = append(out, k+"="+string(v))
			return true
		})
		return out, nil
	})
}

// RW is what rw saw.
type RW struct {
	ReadBack   string `json:"readBack"`
	BExisted   bool   `json:"bExisted"`
	CExisted   bool   `json:"cExisted"`
	CAfter     bool   `json:"cAfter"`
	AExistedAt bool   `json:"aExistedAt"`
}

// rw sets a, reads it back, sets then removes b, removes c (committed).
//
//go:wasmexport rw
func rw() {
	sdk.Handle(func(struct{}) (RW, error) {
		var r RW
		_, r.AExistedAt = sdk.Get("a")
		sdk.Set("a", []byte("1"))
		v, _ := sdk.Get("a")
		r.ReadBack = string(v)
		sdk.Set("b", []byte("2"))
		r.BExisted = sdk.Delete("b")
		r.CExisted = sdk.Delete("c")
		_, r.CAfter = sdk.Get("c")
		return r, nil
	})
}

var sink [][]byte

// oom allocates without bound.
//
//go:wasmexport oom
func oom() {
	for {
		sink = append(sink, make([]byte, 1<<20))
	}
}

// spin loops forever in Go.
//
//go:wasmexport spin
func spin() {
	for i := 0; ; i++ {
		if i < 0 {
			return
		}
	}
}

func main() {}
