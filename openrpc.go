// Package circlegate is the root of the circlegate module. It holds only what every
// layer shares and cannot live lower: the OpenRPC document that is the JSON-RPC
// contract of the gateway.
package circlegate

import _ "embed"

// OpenRPC is openrpc.json, the JSON-RPC contract. rpc.discover returns it and the rpc
// package's tests check it against the registered methods and wire errors.
//
//go:embed openrpc.json
var OpenRPC []byte
