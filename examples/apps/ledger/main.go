//go:build wasip1

// Command ledger records the webhook events routed to it, one per event id.
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o ledger.wasm ./examples/apps/ledger
//
// Methods: record {provider, id, type, created, data} -> {"id", "count", "recorded"}
// (the args a webhook route passes, stored as they came; an id seen before keeps its
// first event and is not counted again), count -> {"count": N}, get {id} -> the event
// as recorded.
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

// Recorded is what record returns.
type Recorded struct {
	ID    string `json:"id"`
	Count int64  `json:"count"`
	// Recorded is false when an event with this id was recorded before.
	Recorded bool `json:"recorded"`
}

// AppendJSON encodes r as encoding/json does; the SDK uses it instead of
// encoding/json's reflection, which is slow in a wasm guest (sdk.JSONAppender).
func (r Recorded) AppendJSON(b []byte) []byte {
	start := len(b)
	b = append(b, `{"id":`...)
	b, plain := sdk.AppendJSONString(b, r.ID)
	if !plain { // an id encoding/json escapes
		out, _ := json.Marshal(struct {
			ID       string `json:"id"`
			Count    int64  `json:"count"`
			Recorded bool   `json:"recorded"`
		}(r))
		return append(b[:start], out...)
	}
	b = strconv.AppendInt(append(b, `,"count":`...), r.Count, 10)
	b = strconv.AppendBool(append(b, `,"recorded":`...), r.Recorded)
	return append(b, '}')
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

// record stores the event under its id. It reads only the id out of the args with
// topLevelString instead of decoding the whole event with encoding/json: inside a
// wasm guest, encoding/json costs about 150 µs for a 450-byte Stripe event, several
// times the rest of the call.
//
//go:wasmexport record
func record() {
	defer func() {
		if r := recover(); r != nil {
			sdk.Fail("panic")
		}
	}()
	in := sdk.Input()
	id, ok := topLevelString(in, "id")
	if !ok || id == "" {
		sdk.Fail("id is required: the args are {provider, id, type, created, data}")
	}
	n := count()
	if _, seen := sdk.Get(eventNS + id); seen {
		sdk.Return(Recorded{ID: id, Count: n})
		return
	}
	sdk.Set(eventNS+id, in)
	n++
	sdk.Set(countKey, []byte(strconv.FormatInt(n, 10)))
	sdk.Return(Recorded{ID: id, Count: n, Recorded: true})
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

// topLevelString returns the string value of key in the JSON object doc (valid JSON,
// as the host passes args), or false when doc is not an object or key is absent or
// not a string. Only the strings it returns or compares are decoded.
func topLevelString(doc []byte, key string) (string, bool) {
	i := skipSpace(doc, 0)
	if i >= len(doc) || doc[i] != '{' {
		return "", false
	}
	i++
	for {
		i = skipSpace(doc, i)
		if i >= len(doc) || doc[i] != '"' {
			return "", false // '}' or malformed: no such key
		}
		end := skipString(doc, i)
		k, err := unquote(doc[i:end])
		if err != nil {
			return "", false
		}
		i = skipSpace(doc, end)
		if i >= len(doc) || doc[i] != ':' {
			return "", false
		}
		i = skipSpace(doc, i+1)
		if i >= len(doc) {
			return "", false
		}
		if k == key {
			if doc[i] != '"' {
				return "", false
			}
			v, err := unquote(doc[i:skipString(doc, i)])
			return v, err == nil
		}
		i = skipSpace(doc, skipValue(doc, i))
		if i >= len(doc) || doc[i] != ',' {
			return "", false
		}
		i++
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] == '"'.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipValue returns the index after the value starting at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	}
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
		i++
	}
	return i
}

// unquote decodes a JSON string token; without escapes it is a plain copy.
func unquote(tok []byte) (string, error) {
	if len(tok) < 2 {
		return "", strconv.ErrSyntax
	}
	for _, c := range tok[1 : len(tok)-1] {
		if c == '\\' {
			var s string
			err := json.Unmarshal(tok, &s)
			return s, err
		}
	}
	return string(tok[1 : len(tok)-1]), nil
}

func main() {}
