//go:build wasip1

// Command kv is a key-value store app: any JSON value under a string key.
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o kv.wasm ./examples/apps/kv
//
// Methods: set {key, value}, get {key} -> {key, value, found},
// delete {key} -> {deleted}, list {prefix?} -> {items: [{key, value}]}.
package main

import (
	"encoding/json"
	"errors"

	"github.com/circlegate/circlegate/sdk"
)

// ns is the storage prefix of the entries.
const ns = "kv/"

// KeyArgs name one key.
type KeyArgs struct {
	Key string `json:"key"`
}

// SetArgs are the args of set.
type SetArgs struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

// Item is one entry.
type Item struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

// GetResult is what get returns.
type GetResult struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
	Found bool            `json:"found"`
}

var errNoKey = errors.New("key is required")

//go:wasmexport set
func set() {
	sdk.Handle(func(a SetArgs) (Item, error) {
		if a.Key == "" {
			return Item{}, errNoKey
		}
		if len(a.Value) == 0 {
			a.Value = json.RawMessage("null")
		}
		sdk.Set(ns+a.Key, a.Value)
		return Item(a), nil
	})
}

//go:wasmexport get
func get() {
	sdk.Handle(func(a KeyArgs) (GetResult, error) {
		if a.Key == "" {
			return GetResult{}, errNoKey
		}
		v, ok := sdk.Get(ns + a.Key)
		if !ok {
			v = json.RawMessage("null")
		}
		return GetResult{Key: a.Key, Value: v, Found: ok}, nil
	})
}

//go:wasmexport delete
func del() {
	sdk.Handle(func(a KeyArgs) (map[string]bool, error) {
		if a.Key == "" {
			return nil, errNoKey
		}
		return map[string]bool{"deleted": sdk.Delete(ns + a.Key)}, nil
	})
}

//go:wasmexport list
func list() {
	sdk.Handle(func(a struct {
		Prefix string `json:"prefix"`
	}) (map[string][]Item, error) {
		items := []Item{}
		sdk.Iterate(ns+a.Prefix, func(k string, v []byte) bool {
			items = append(items, Item{Key: k[len(ns):], Value: v})
			return true
		})
		return map[string][]Item{"items": items}, nil
	})
}

func main() {}
