// Package webhooks turns signed HTTP callbacks from external services into context
// mutations: Stripe (stripe-go's ConstructEventWithOptions), iDenfy (Idenfy-Signature,
// a hex HMAC-SHA256 of the body) and Standard Webhooks (webhook-id, webhook-timestamp,
// webhook-signature). It holds the verifiers (verify_*.go), the per-tenant secrets,
// routes and delivery log, kept as store records (secrets.go, routes.go,
// deliveries.go), the delivery path (service.go), its HTTP handler (handler.go) and the
// owner's JSON-RPC methods (methods.go).
//
// A verified event whose type has a route becomes a mutation of the route's context
// through execution.Service.Mutate, with the tenant key as the (owner) caller and the
// idempotency key "<provider>:<eventId>", so a provider's retries apply once.
//
// Concurrency: Service and Handler are safe for concurrent use. Concurrent deliveries
// of one event become jobs of one context, which run one after the other: the first
// applies the event, the others replay its result, and each reply says which
// (execution.Service.MutateOnce). The verifiers are pure functions.
package webhooks
