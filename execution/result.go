package execution

import (
	"encoding/json"
	"strconv"

	"github.com/circlegate/circlegate/internal/jsonx"
)

// encodeMutateResult returns json.Marshal(r), byte for byte. When every string is
// plain (plainString) and every raw value is plain (plainJSON), as a counter's
// results are, it appends the fields itself: the reflective encoder was a visible
// part of a mutation's cost. Otherwise it calls json.Marshal.
func encodeMutateResult(r *MutateResult) []byte {
	plain := r.Output != nil && jsonx.PlainString(r.JobID) && jsonx.PlainString(r.TxID) && jsonx.PlainString(r.RootHash) &&
		plainJSON(r.Output)
	for i := range r.Events {
		plain = plain && jsonx.PlainString(r.Events[i].Kind) && plainJSON(r.Events[i].Data)
	}
	if !plain {
		b, _ := json.Marshal(r)
		return b
	}
	n := 90 + len(r.JobID) + len(r.TxID) + len(r.RootHash) + len(r.Output)
	for _, e := range r.Events {
		n += 40 + len(e.Kind) + len(e.Data)
	}
	b := make([]byte, 0, n)
	b = append(b, `{"jobId":"`...)
	b = append(b, r.JobID...)
	b = append(b, `","txId":"`...)
	b = append(b, r.TxID...)
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, r.Seq, 10)
	b = append(b, `,"rootHash":"`...)
	b = append(b, r.RootHash...)
	b = append(b, `","output":`...)
	b = append(b, r.Output...)
	b = append(b, `,"events":`...)
	if r.Events == nil {
		return append(b, "null}"...)
	}
	b = append(b, '[')
	for i, e := range r.Events {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"seq":`...)
		b = strconv.AppendUint(b, e.Seq, 10)
		b = append(b, `,"kind":"`...)
		b = append(b, e.Kind...)
		b = append(b, `","data":`...)
		b = append(b, e.Data...)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// plainJSON reports whether json.Marshal writes raw, valid JSON, unchanged: it has
// no whitespace (Marshal compacts it away), none of the characters Marshal escapes
// for HTML, and no byte 0xE2 (which starts U+2028 and U+2029, escaped too). An
// empty raw is not plain (Marshal refuses it).
func plainJSON(raw []byte) bool {
	if len(raw) == 0 {
		return false
	}
	for _, c := range raw {
		switch c {
		case ' ', '\t', '\n', '\r', '<', '>', '&', 0xE2:
			return false
		}
	}
	return true
}
