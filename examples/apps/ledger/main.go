//go:build wasip1

// Command ledger records the webhook events routed to it, one per event id.
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o ledger.wasm ./examples/apps/ledger
//
// Methods: record {provider, id, type, created, data} -> {"id", "count", "recorded"}
// (the args a webhook route passes; an id seen before is kept as first recorded and
// not counted again), count -> {"count": N}, get {id} -> the event as recorded.
package main

import (
	"encoding/json"
	"strconv"

	"github.com/circlegate/circlegate/sdk"
)

const (
	countKey = "count"
	eventNS  = "event/"
)

// Event is a delivered webhook event, as webhook routes pass it.
type Event struct {
	Provider string          `json:"provider"`
	ID       string          `json:"id"`
	Type     string          `json:"type"`
	Created  int64           `json:"created"`
	Data     json.RawMessage `json:"data"`
}

// Recorded is what record returns.
type Recorded struct {
	ID    string `json:"id"`
	Count int64  `json:"count"`
	// Recorded is false when an event with this id was recorded before.
	Recorded bool `json:"recorded"`
}

// Count is what count returns.
type Count struct {
	Count int64 `json:"count"`
}

func count() int64 {
	b, ok := sdk.Get(countKey)
	if !ok {
		return 0
	}
	n, _ := strconv.ParseInt(string(b), 10, 64)
	return n
}

//go:wasmexport record
func record() {
	sdk.Handle(func(e Event) (Recorded, error) {
		if e.ID == "" {
			return Recorded{}, sdk.Error("id is required")
		}
		n := count()
		if _, seen := sdk.Get(eventNS + e.ID); seen {
			return Recorded{ID: e.ID, Count: n}, nil
		}
		b, err := json.Marshal(e)
		if err != nil {
			return Recorded{}, err
		}
		sdk.Set(eventNS+e.ID, b)
		n++
		sdk.Set(countKey, []byte(strconv.FormatInt(n, 10)))
		return Recorded{ID: e.ID, Count: n, Recorded: true}, nil
	})
}

//go:wasmexport count
func countMethod() {
	sdk.Handle(func(struct{}) (Count, error) { return Count{Count: count()}, nil })
}

//go:wasmexport get
func get() {
	sdk.Handle(func(a struct {
		ID string `json:"id"`
	}) (json.RawMessage, error) {
		if a.ID == "" {
			return nil, sdk.Error("id is required")
		}
		b, ok := sdk.Get(eventNS + a.ID)
		if !ok {
			return nil, sdk.Error("no event with id " + strconv.Quote(a.ID))
		}
		return b, nil
	})
}

func main() {}
