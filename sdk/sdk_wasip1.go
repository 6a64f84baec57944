//go:build wasip1

package sdk

import (
	"errors"
)

// Input returns the call's args: JSON bytes, empty when the caller sent none.
func Input() []byte {
	abiInput(scratch)
	b, _ := readRegister(scratch)
	return b
}

// Args decodes the call's JSON args into v. Empty args and null leave v unchanged.
func Args(v any) error {
	in := Input()
	if len(in) == 0 || string(in) == "null" {
		return nil
	}
	return unmarshalJSON(in, v)
}

// Return sets the method's output to v encoded as JSON. A later Return replaces it.
func Return(v any) {
	b, err := marshalJSON(v)
	if err != nil {
		Fail("encoding the result: " + err.Error())
	}
	ReturnRaw(b)
}

// ReturnRaw sets the method's output to b, which must be valid JSON.
func ReturnRaw(b []byte) { abiValueReturn(bytesPtr(b), uint32(len(b))) }

// Fail aborts the call with msg: nothing it wrote or emitted is kept, and the caller
// gets an execution error carrying msg. It does not return.
func Fail(msg string) {
	abiPanic(stringPtr(msg), uint32(len(msg)))
	panic("unreachable: panic_utf8 returned")
}

// Handle runs a method: it decodes the args into an A (missing args leave it zero),
// calls fn, and returns its result as JSON. An error from fn, or a panic, fails the
// call with its text (see Fail).
func Handle[A, R any](fn func(A) (R, error)) {
	defer recoverFail()
	var a A
	if err := Args(&a); err != nil {
		Fail("invalid args: " + err.Error())
	}
	r, err := fn(a)
	if err != nil {
		Fail(err.Error())
	}
	Return(r)
}

// Exec is Handle for a method without a result: its output is null.
func Exec[A any](fn func(A) error) {
	defer recoverFail()
	var a A
	if err := Args(&a); err != nil {
		Fail("invalid args: " + err.Error())
	}
	if err := fn(a); err != nil {
		Fail(err.Error())
	}
}

// Error returns an error whose text is msg, for the functions given to Handle.
func Error(msg string) error { return errors.New(msg) }

func recoverFail() {
	r := recover()
	if r == nil {
		return
	}
	switch v := r.(type) {
	case error:
		Fail("panic: " + v.Error())
	case string:
		Fail("panic: " + v)
	default:
		Fail("panic")
	}
}
