//go:build wasip1

package sdk

import (
	"time"
)

// Caller returns the public key (hex) of who made the call.
func Caller() string {
	abiCaller(scratch)
	b, _ := readRegister(scratch)
	return string(b)
}

// ContextID returns the id of the context the call runs in.
func ContextID() string {
	abiContextID(scratch)
	b, _ := readRegister(scratch)
	return string(b)
}

// Now returns the tx time: the time the job was accepted, the same on every node and
// every replay. time.Now returns the same instant.
func Now() time.Time { return time.Unix(0, int64(abiTxTime())).UTC() }

// Log adds a line to the call's logs (at most max_log_lines are kept).
func Log(msg string) { abiLog(stringPtr(msg), uint32(len(msg))) }

// Emit emits an event of kind with v encoded as JSON as its data. A kind is 1 to 64
// letters, digits, '_', '-', '.' or ':' and starts with a lowercase letter
// (capitalized kinds such as StateMutation belong to the node).
func Emit(kind string, v any) {
	b, err := marshalJSON(v)
	if err != nil {
		Fail("encoding event " + kind + ": " + err.Error())
	}
	EmitRaw(kind, b)
}

// EmitRaw emits an event whose data is already JSON.
func EmitRaw(kind string, data []byte) {
	abiEmit(stringPtr(kind), uint32(len(kind)), bytesPtr(data), uint32(len(data)))
}
