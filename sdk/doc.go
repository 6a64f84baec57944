// Package sdk is the guest SDK for circlegate applications written in Go. It wraps the
// host ABI (docs/abi.md, imports from module "env") in typed calls: JSON args and
// results, storage, events, logs, the caller, the context and the tx time.
//
// It builds only for GOOS=wasip1 GOARCH=wasm. An app is a package main whose methods
// are exports with no parameters and no results, built as a reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o app.wasm .
//
// A method is one line:
//
//	//go:wasmexport increment
//	func increment() { sdk.Handle(func(a IncArgs) (Value, error) { ... }) }
//
// Importing sdk exports the ABI marker circlegate_abi_v1, which the host requires.
//
// Determinism: every call must compute its result from its args, its state and what
// the host gives it (caller, context id, tx time). time.Now returns the tx time and
// crypto/rand is seeded from the call, so both are safe. Package-level variables may or
// may not survive from one call to the next (instances are pooled and discarded at
// will): keep state in storage, never in globals. The seed of math/rand's global
// functions and map iteration order are fixed per instance, not per call: do not let
// them shape a result.
package sdk
