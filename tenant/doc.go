// Package tenant holds the tenants ("circles") a gateway serves and everything about who
// a caller is: secp256k1 key parsing and normalization, EIP-191 personal_sign
// verification, single-use nonces, signed bearer tokens and their revocation, roles,
// the node's own key, and the authentication service that the JSON-RPC, HTTP and admin
// transports all call.
//
// Concurrency: Registry, Auth, Tokens and MemoryNonceStore are safe for concurrent use
// by any number of goroutines. A Principal is immutable once made.
package tenant
