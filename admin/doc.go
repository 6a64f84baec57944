// Package admin serves the REST admin API under /admin-api, for operators and tenant
// owners, shaped after the Calimero node server's admin API. Successes are
// {"data": ...}; errors are the HTTP status of their kind and {"error": {"code",
// "message"}}, the codes of rpc/errors.go.
//
//   - Unprotected: health, request-challenge (a nonce signed by the node key) and
//     add-client-key (the client's EIP-191 signature of it, for a token), and the
//     node key (did).
//   - Root scope: the node's root keys (config, --root-key, POST root-key; trust on
//     first use only under --dev) manage root keys, tenants at run time (persisted as
//     store records and applied at once) and revoke every token.
//   - Owner scope: an owner token of the tenant in the path, or a root's, reads and
//     changes its applications and contexts through execution.Service, reads its
//     webhook configuration and deliveries through webhooks.Service, and lists and
//     revokes its client keys and tokens through tenant.Auth.
//
// Nothing here is a second implementation of an operation that JSON-RPC has: the
// handlers decode, call the service, and encode (routes_tenant.go). Service
// (service.go, keys.go) holds what only the admin API does: root keys, runtime
// tenants, admin logins and client keys.
//
// Concurrency: Service and Handler are safe for concurrent use. Changes of root keys
// and tenants are serialized with each other and with Sync, which reloads them (and
// revocations) from storage, so that a fleet's gateways converge.
package admin
