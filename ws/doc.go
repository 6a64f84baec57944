// Package ws serves WebSocket sessions: one reader goroutine per connection, a bounded
// outbound queue drained by a writer goroutine that runs only while there is something
// to write, ping/pong with a pong deadline, a read limit, an authentication timeout,
// per-tenant and global connection limits, and a reason code for every close. A
// session or SSE stream ends when its token expires (4501) or, through CloseRevoked,
// is revoked (4502).
//
// Concurrency: a Hub is safe for concurrent use. A session's outbound queue may be fed
// from any goroutine (replies, and later event fan-out); frames are written by one
// writer goroutine at a time. Control frames (ping, close) use gorilla's WriteControl,
// which is safe alongside the writer.
package ws
