package execution

import (
	"bytes"
	"encoding/json"
	"testing"
)

// TestEncodeMutateResult: the result encoder writes exactly what json.Marshal writes,
// on the fast path (plain values) and off it (whitespace, HTML characters, U+2028,
// escapes, no events, odd kinds).
func TestEncodeMutateResult(t *testing.T) {
	base := MutateResult{JobID: "0a1b", TxID: "0a1b", Seq: 18446744073709551615, RootHash: "ff00",
		Output: json.RawMessage(`{"value":42}`), Events: []AppEvent{}}
	cases := map[string]func(r *MutateResult){
		"plain, no events": func(*MutateResult) {},
		"nil events":       func(r *MutateResult) { r.Events = nil },
		"plain events": func(r *MutateResult) {
			r.Events = []AppEvent{{Seq: 1, Kind: "Moved", Data: json.RawMessage(`[1,"a",null]`)}, {Seq: 2, Kind: "", Data: json.RawMessage(`"x"`)}}
		},
		"output with spaces":   func(r *MutateResult) { r.Output = json.RawMessage("{ \"value\" :\n 42 }") },
		"output with html":     func(r *MutateResult) { r.Output = json.RawMessage(`{"s":"<b>&</b>"}`) },
		"output with U+2028":   func(r *MutateResult) { r.Output = json.RawMessage("\"a\u2028b\"") },
		"output with escapes":  func(r *MutateResult) { r.Output = json.RawMessage(`"a\"b\\c\u00e9"`) },
		"output null":          func(r *MutateResult) { r.Output = json.RawMessage(`null`) },
		"output unicode":       func(r *MutateResult) { r.Output = json.RawMessage(`"héllo"`) },
		"kind with quote":      func(r *MutateResult) { r.Events = []AppEvent{{Seq: 3, Kind: `a"b`, Data: json.RawMessage(`{}`)}} },
		"kind with html":       func(r *MutateResult) { r.Events = []AppEvent{{Seq: 3, Kind: `<k>`, Data: json.RawMessage(`{}`)}} },
		"kind with control":    func(r *MutateResult) { r.Events = []AppEvent{{Seq: 3, Kind: "a\tb", Data: json.RawMessage(`{}`)}} },
		"kind non-ascii":       func(r *MutateResult) { r.Events = []AppEvent{{Seq: 3, Kind: "é", Data: json.RawMessage(`{}`)}} },
		"data with spaces":     func(r *MutateResult) { r.Events = []AppEvent{{Seq: 3, Kind: "k", Data: json.RawMessage(`{"a": 1}`)}} },
		"job id not plain":     func(r *MutateResult) { r.JobID = "a&b" },
		"root hash empty":      func(r *MutateResult) { r.RootHash = "" },
		"seq zero":             func(r *MutateResult) { r.Seq = 0 },
		"output number":        func(r *MutateResult) { r.Output = json.RawMessage(`-1.5e3`) },
		"output nested arrays": func(r *MutateResult) { r.Output = json.RawMessage(`[[],{},[{"a":[true,false]}]]`) },
	}
	for name, change := range cases {
		r := base
		change(&r)
		want, err := json.Marshal(&r)
		if err != nil {
			t.Fatalf("%s: json.Marshal: %v", name, err)
		}
		if got := encodeMutateResult(&r); !bytes.Equal(got, want) {
			t.Errorf("%s:\n got  %s\n want %s", name, got, want)
		}
	}
}
