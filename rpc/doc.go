// Package rpc is the JSON-RPC 2.0 layer of circlegate: the codec (single and batch
// requests, notifications, params by name or by position), the dispatcher that runs
// registered methods with a deadline and panic recovery, the method handlers (thin
// wrappers over the service layer), the registry of wire errors, and the HTTP
// transports (POST /<tenant>/jsonrpc and the browser auth forms).
//
// Concurrency: a Server is safe for concurrent use once all methods are registered;
// Handle may be called from any number of goroutines. A Peer is shared by the calls of
// one connection; its principal is swapped atomically.
package rpc
